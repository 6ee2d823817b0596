"""Does the default fit pass its convergence gate on every seed and on other tables?

Run from the repository root::

    nice .venv/bin/python benchmarks/gate_seeds.py [--seeds 0 1 2 3 4]
        [--tables shipped leaderboard_v2 simulated] [--spec default]
        [--draws N] [--tune N] [--chains N] [--resume DIR | --no-resume] [--out FILE]

For each table and seed it fits the spec exactly as ``obscale-bayes fit`` does (the fit
defaults of :meth:`CapabilityModel.fit`: 4 chains, 1500 tune + 3000 draws, the default target
acceptance, one retry at target acceptance 0.99 with twice the warm-up when the first run
fails the gate, ``--no-retry`` to keep it; anchors chosen for the table by
:func:`obscale_bayes.cli.fit.table_anchors`, as the CLI does) and records the gate's figures: max R-hat, min bulk and tail ESS, divergences, min
E-BFMI, the worst parameter and the sampling time.  The gate is R-hat <= 1.01, bulk ESS >= 400,
no divergences, E-BFMI >= 0.3; the *margin* columns say how far each fit is from failing.

Tables:

- ``shipped``: the shipped base table (128 models x 8 standard benchmarks);
- ``leaderboard_v2``: the shipped Open LLM Leaderboard v2 table (55 models x 6 tasks);
- ``simulated``: the shipped table's models, FLOPs, families and missing cells, with eight
  *other* benchmarks (:func:`other_benchmarks_table`: new names, other chance floors and item
  counts, loadings and intercepts drawn from the spec's priors), simulated from the model.

Fits run one after the other (each uses ``min(chains, CPUs)`` cores) through
:func:`obscale_bayes.fit.runner.run_fits` with a job store (default ``runs/jobs``), so a killed
run resumes.  Results go to ``benchmarks/results/gate_seeds.json``; rows of tables not run
this time are kept from it, so one table can be re-run alone.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout

from obscale_bayes.cli.fit import table_anchors  # noqa: E402
from obscale_bayes.data.tables import BenchmarkData, load_shipped  # noqa: E402
from obscale_bayes.fit.runner import FitJob, run_fits  # noqa: E402
from obscale_bayes.io import atomic_write  # noqa: E402
from obscale_bayes.model.simulate import simulate  # noqa: E402
from obscale_bayes.spec.spec import load_spec  # noqa: E402

DEFAULT_OUT = ROOT / "benchmarks" / "results" / "gate_seeds.json"
TABLES = ("shipped", "leaderboard_v2", "simulated")
# Chance floors and item counts of the simulated table's eight benchmarks: a mix unlike the
# shipped one (two free-response, a 5-way and a 10-way choice, one fitted floor).
OTHER_FLOORS = (0.0, 0.0, 0.2, 0.1, 0.25, 0.5, np.nan, 0.25)
OTHER_ITEMS = (500, 2000, 800, 12000, 300, 1500, 700, 5000)


def other_benchmarks_table(seed: int = 0) -> BenchmarkData:
    """The shipped table's layout with eight other benchmarks, simulated from the default model
    (anchors chosen for the renamed layout; unknown benchmarks' loadings from the priors)."""
    tmpl = load_shipped()
    names = {b: f"sim_{chr(ord('a') + i)}" for i, b in enumerate(tmpl.benchmark_ids)}
    bm = tmpl.benchmarks.copy()
    bm["benchmark"] = bm["benchmark"].map(names)
    bm["display_name"] = bm["benchmark"].str.upper()
    bm["floor"] = list(OTHER_FLOORS[: len(bm)])
    bm["n_items"] = [float(n) for n in OTHER_ITEMS[: len(bm)]]
    scores = tmpl.scores.assign(benchmark=tmpl.scores["benchmark"].map(names))
    renamed = BenchmarkData(tmpl.models, scores, bm, source="simulated (other benchmarks)")
    spec = table_anchors(load_spec("default"), renamed)
    data, _ = simulate(renamed, spec, seed=seed)
    return data


def load_table(name: str) -> BenchmarkData:
    """One of :data:`TABLES`."""
    if name == "simulated":
        return other_benchmarks_table(0)
    return load_shipped() if name == "shipped" else load_shipped(name)


def first_run(fit) -> list[str]:
    """The first run's gate failures where the fit was sampled twice (``retry``), else []."""
    return list(fit.meta.get("retried", []))


def _num(v: float, nd: int | None = None) -> float | int | None:
    """Rounded for the table; None where undefined (R-hat and ESS of a single short chain)."""
    v = float(v)
    return None if not np.isfinite(v) else round(v) if nd is None else round(v, nd)


def row(table: str, seed: int, diag, spec, retried: list[str], retry: bool) -> dict:
    """One result row from a fit's :class:`~obscale_bayes.fit.diagnostics.Diagnostics`."""
    worst = diag.worst[0] if diag.worst else {}
    return {
        "table": table,
        "seed": seed,
        "anchors": list(spec.anchors),
        "retry": retry,
        "first_run_failures": retried,
        "passed": bool(diag.passed),
        "max_rhat": _num(diag.max_rhat, 4),
        "min_ess_bulk": _num(diag.min_ess_bulk),
        "min_ess_tail": _num(diag.min_ess_tail),
        "divergences": int(diag.divergences),
        "min_bfmi": _num(diag.min_bfmi, 3),
        "rhat_margin": _num(1.01 - float(diag.max_rhat), 4),
        "ess_margin": _num(float(diag.min_ess_bulk) / 400, 2),
        "sampling_s": round(float(diag.sampling_seconds), 1),
        "worst": worst.get("parameter"),
        "failures": diag.failures(),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--tables", nargs="+", choices=TABLES, default=list(TABLES))
    ap.add_argument("--spec", default="default")
    ap.add_argument("--draws", type=int, help="draws per chain (default: the fit default)")
    ap.add_argument("--tune", type=int, help="warm-up per chain (default: the fit default)")
    ap.add_argument("--chains", type=int, help="chains (default: the fit default)")
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--resume", default=str(ROOT / "runs" / "jobs"), metavar="DIR")
    g.add_argument("--no-resume", action="store_true")
    ap.add_argument(
        "--no-retry",
        dest="retry",
        action="store_false",
        help="keep a first run that fails the gate (obscale-bayes fit --no-retry)",
    )
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    a = ap.parse_args(argv)

    kw = {k: getattr(a, k) for k in ("draws", "tune", "chains") if getattr(a, k) is not None}
    kw["retry"] = a.retry  # as `obscale-bayes fit` does: one retry of a failed gate by default
    jobs, specs = [], {}
    for t in a.tables:
        data = load_table(t)
        specs[t] = table_anchors(load_spec(a.spec), data)
        for s in a.seeds:
            jobs.append(FitJob(f"{t}/seed{s}", data, specs[t], {**kw, "seed": s},
                               post=first_run))  # fmt: skip
    t0 = time.perf_counter()
    res = run_fits(jobs, max_workers=1, store=None if a.no_resume else a.resume)
    rows = []
    for job in jobs:
        t, s = job.name.split("/seed")
        rows.append(row(t, int(s), res[job.name].diagnostics, specs[t], res[job.name].value,
                        a.retry))  # fmt: skip
    head = f"{'table':16}{'seed':>5}{'gate':>6}{'R-hat':>8}{'ESS':>6}{'div':>5}{'BFMI':>6}{'s':>7}"
    print(head + "  worst / first run")

    def f(v, spec: str) -> str:  # None (undefined R-hat / ESS) prints as n/a
        return format(v, spec) if v is not None else format("n/a", ">" + spec.split(".")[0][1:])

    for r in rows:
        print(f"{r['table']:16}{r['seed']:>5}{'PASS' if r['passed'] else 'FAIL':>6}"
              f"{f(r['max_rhat'], '>8.4f')}{f(r['min_ess_bulk'], '>6')}{r['divergences']:>5}"
              f"{f(r['min_bfmi'], '>6.2f')}{r['sampling_s']:>7.0f}  {r['worst']}"
              f"{' / retried: ' + '; '.join(r['first_run_failures']) if r['first_run_failures'] else ''}")  # fmt: skip
    for t in a.tables:
        sub = [r for r in rows if r["table"] == t]
        rh = [r["max_rhat"] for r in sub if r["max_rhat"] is not None]
        es = [r["min_ess_bulk"] for r in sub if r["min_ess_bulk"] is not None]
        print(f"{t}: {sum(r['passed'] for r in sub)}/{len(sub)} pass; worst R-hat "
              f"{f(max(rh) if rh else None, '.4f')}, min ESS {f(min(es) if es else None, '')}, "
              f"divergences {sum(r['divergences'] for r in sub)}")  # fmt: skip
    # Rows of tables not run this time are kept from the results file (one table re-run alone).
    if a.out.exists():
        old = json.loads(a.out.read_text()).get("rows", [])
        rows = [r for r in old if r["table"] not in a.tables] + rows
    out = {
        "what": "convergence gate of the default fit per table and seed",
        "spec": a.spec,
        "fit_kwargs": kw or "CapabilityModel.fit defaults",
        "rows": rows,
        "wall_s": round(time.perf_counter() - t0, 1),
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
        },  # fmt: skip
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    text = json.dumps(out, indent=1) + "\n"
    atomic_write(a.out, lambda f: f.write(text), binary=False, what="the results")
    print(f"written {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
