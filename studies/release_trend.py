"""Does a release-date trend of family efficiency help?  Decided on training models only.

Run from the repository root::

    .venv/bin/python studies/release_trend.py [--specs default release] [--draws 1000]
        [--tune 1000] [--chains 4] [--seed 0] [--resume DIR | --no-resume] [--out FILE]

The question is asked *inside* the standard preset's ``compute_cutoff`` training set (the
shipped base table's models with known FLOPs <= 84e21), so that no model the preset holds out
is looked at: on that set the ``family_k1`` protocol is run as the preset runs it (families with
>= 3 models of known FLOPs, 5 folds of families, each held-out family keeps its smallest
model, its larger ones are forecast from family + FLOPs) for every spec, on the same cells, with
the same seed, and printed side by side: MAE, MSE, 50% / 90% coverage, mean 90% width, the gate.

The rule, written before the first run: the ``release`` spec becomes the package default only
if, on these training-only folds, its pooled MAE is lower than the default's **and** its pooled
90% coverage is no further from 0.90 than the default's, with every fit passing the gate.
Otherwise the default stays and ``release`` remains a named variant.  Results go to
``studies/results/release_trend.json``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout

from obscale_bayes.data.tables import load_shipped  # noqa: E402
from obscale_bayes.evaluation.standard import CUTOFF_1E21, run_standard  # noqa: E402
from obscale_bayes.io import write_json  # noqa: E402
from obscale_bayes.progress import enable  # noqa: E402

DEFAULT_OUT = ROOT / "studies" / "results" / "release_trend.json"
COLS = ["mae", "mse", "coverage50", "coverage90", "width90", "n"]


def training_table():
    """The compute_cutoff training models (known FLOPs <= the cutoff) of the shipped table."""
    data = load_shipped()
    m = data.models
    keep = m.loc[m["flops_1e21"].notna() & (m["flops_1e21"] <= CUTOFF_1E21), "model"].tolist()
    return data.subset(models=keep)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--specs", nargs="+", default=["default", "release"])
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--tune", type=int, default=1000)
    ap.add_argument("--chains", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--resume", default=str(ROOT / "runs" / "jobs"))
    g.add_argument("--no-resume", action="store_true")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    a = ap.parse_args(argv)
    enable()
    table = training_table()
    store = None if a.no_resume else a.resume
    print(f"training-only table: {len(table.models)} models (known FLOPs <= {CUTOFF_1E21:g}e21), "
          f"{table.models['family'].nunique()} families", flush=True)  # fmt: skip
    rows = []
    for spec in a.specs:
        t0 = time.perf_counter()
        rec, _ = run_standard("family_k1", spec, "bayes,family_flops,flops_only", table=table,
                              draws=a.draws, tune=a.tune, chains=a.chains, seed=a.seed,
                              store=store)  # fmt: skip
        pooled = rec[rec["benchmark"] == "all"]
        for r in pooled.to_dict("records"):
            r["spec"] = spec if r["method"] == "bayes" else "-"
            r["seconds"] = time.perf_counter() - t0
            rows.append(r)
    bayes = {r["spec"]: r for r in rows if r["method"] == "bayes"}
    base = {r["method"]: r for r in rows if r["method"] != "bayes"}
    print()
    heads = ["MAE pp", "MSE 1e-3", "cov50", "cov90", "width90", "cells"]
    print(f"{'method':>14} {'spec':>8} " + " ".join(f"{c:>8}" for c in heads) + "  gate")
    for r in [*bayes.values(), *base.values()]:
        vals = (f"{r['mae'] * 100:8.2f} {r['mse'] * 1e3:8.2f} {r['coverage50']:8.2f} "
                f"{r['coverage90']:8.2f} {r['width90']:8.3f} {int(r['n']):8d}")  # fmt: skip
        gate = "" if r["method"] != "bayes" else (
            f"max R-hat {r['max_rhat']:.3f}, {r['divergences']} div")  # fmt: skip
        print(f"{r['method']:>14} {r['spec']:>8} {vals}  {gate}")
    verdict = None
    if {"default", "release"} <= set(bayes):
        d, rl = bayes["default"], bayes["release"]
        gates = all(r["max_rhat"] <= 1.01 and r["divergences"] == 0 for r in bayes.values())
        better = rl["mae"] < d["mae"] and (
            abs(rl["coverage90"] - 0.9) <= abs(d["coverage90"] - 0.9)
        )
        verdict = "release" if better and gates else "default"
        print(f"\nrule: release becomes the default iff MAE lower and 90% coverage no further "
              f"from 0.90, every fit passing -> {verdict} "
              f"(MAE {rl['mae'] * 100:.2f} vs {d['mae'] * 100:.2f} pp, cov90 "
              f"{rl['coverage90']:.2f} vs {d['coverage90']:.2f}, R-hat and divergences "
              f"{'pass' if gates else 'FAIL'}; bulk ESS is not pooled here)")  # fmt: skip
    out = {"settings": vars(a) | {"out": str(a.out)}, "rows": rows, "verdict": verdict}
    write_json(a.out, out)
    print(f"written {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
