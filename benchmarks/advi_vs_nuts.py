"""The approximate mode against NUTS on the shipped table: the standard preset, same cells.

Run from the repository root::

    .venv/bin/python benchmarks/advi_vs_nuts.py [--seed 0] [--draws 1000] [--tune 1000]
        [--chains 4] [--iterations N] [--protocols P,Q] [--resume DIR | --no-resume] [--out FILE]

Runs ``obscale-bayes backtest --preset standard`` (:func:`obscale_bayes.evaluation.standard.run_standard`:
the ``compute_cutoff``, ``family_k1`` and ``fill_half`` protocols on the shipped base table)
twice in one process, with the default model fitted by NUTS (nutpie, ``--chains x (--tune +
--draws)``) and by mean-field ADVI (``inference="advi"``, then ``--chains x --draws``
independent draws), and prints the Bayesian rows side by side with the simple baselines of the
same run: MAE, MSE, 50% / 90% coverage and mean 90% width per protocol, the wall time of each
inference's fits.  Results go to ``benchmarks/results/advi_vs_nuts.json``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout

from obscale_bayes.evaluation.standard import run_standard  # noqa: E402
from obscale_bayes.io import write_json  # noqa: E402
from obscale_bayes.progress import enable  # noqa: E402

DEFAULT_OUT = ROOT / "benchmarks" / "results" / "advi_vs_nuts.json"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--protocols", default=None, help="comma-separated (default: all three)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--tune", type=int, default=1000)
    ap.add_argument("--chains", type=int, default=4)
    ap.add_argument("--iterations", type=int, default=None, help="ADVI steps (package default)")
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--resume", default=str(ROOT / "runs" / "jobs"))
    g.add_argument("--no-resume", action="store_true")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    a = ap.parse_args(argv)
    enable()
    store = None if a.no_resume else a.resume
    rows, seconds = [], {}
    for inference in ("nuts", "advi"):
        t0 = time.perf_counter()
        rec, _ = run_standard(a.protocols, draws=a.draws, tune=a.tune, chains=a.chains, seed=a.seed,
                              store=store, inference=inference,
                              iterations=a.iterations if inference == "advi" else None)  # fmt: skip
        seconds[inference] = time.perf_counter() - t0
        for r in rec[rec["benchmark"] == "all"].to_dict("records"):
            if r["method"] == "bayes" or inference == "nuts":
                rows.append({**r, "inference": inference if r["method"] == "bayes" else "-"})
    print()
    print(f"standard preset, shipped base table, seed {a.seed}; NUTS {a.chains} x ({a.tune} + "
          f"{a.draws}), ADVI then {a.chains} x {a.draws} draws; {os.cpu_count()} CPUs")  # fmt: skip
    head = ["protocol", "method", "inference", "cells", "MAE pp", "MSE 1e-3", "cov50", "cov90",
            "width90", "max R-hat"]  # fmt: skip
    print("  ".join(f"{h:>14}" for h in head))
    for r in sorted(rows, key=lambda r: (r["protocol"], r["method"] != "bayes", r["method"])):
        rh = r["max_rhat"]
        cells = [r["protocol"], r["method"], r["inference"], f"{int(r['n'])}",
                 f"{r['mae'] * 100:.2f}", f"{r['mse'] * 1e3:.2f}", f"{r['coverage50']:.2f}",
                 f"{r['coverage90']:.2f}", f"{r['width90']:.3f}",
                 "" if rh != rh else f"{rh:.3f}"]  # fmt: skip
        print("  ".join(f"{c:>14}" for c in cells))
    print(f"\nwall time of the preset: NUTS {seconds['nuts']:.0f} s, ADVI {seconds['advi']:.0f} s"
          " (fits taken from the job store count as ~0)")  # fmt: skip
    out = {"settings": vars(a) | {"out": str(a.out)}, "seconds": seconds, "rows": rows}
    write_json(a.out, out)
    print(f"written {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
