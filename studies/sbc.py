"""Simulation-based calibration (Talts et al. 2018) of the default model at reduced size.

Run from the repository root::

    nice -n 10 .venv/bin/python studies/sbc.py [--reps 200] [--models 40] [--families 12]
        [--draws 1000] [--tune 500] [--chains 2] [--ranks 99] [--seed 0] [--workers 2]
        [--out studies/results/sbc.json] [--figure docs/sbc_ecdf.png]

Layout: ``--models`` real models of ``--families`` families of the shipped base table
(:func:`obscale_bayes.checks.sbc.sbc_template`: their FLOPs, known or not, and missing cells).
Each replication draws every parameter and every score from the model's prior predictive
(the PyMC graph itself, unclipped), leaves out one model (known FLOPs) and one cell of another
model, fits the rest with nutpie through :func:`obscale_bayes.fit.runner.run_fits` (a process
pool, one sampler thread per fit) and ranks each true value among ``--ranks`` evenly thinned
posterior draws (the held-out scores among their predictive draws).  Per group the script prints
the Rao-Scott chi-square p and the cluster-bootstrap ECDF (weighted KS) p of all ranks, the
Bonferroni per-element p and the verdict (:func:`obscale_bayes.checks.sbc.group_tests`), over
all replications (the SBC result: fits that fail the convergence gate are *kept*, as dropping
them selects on the data) and, for information, over the fits that pass the gate and those
without divergences.  It writes the ranks and tests to ``--out`` (also after every batch,
marked incomplete) and the ECDF-difference figure with 95% simultaneous bands to ``--figure``;
``--from-json FILE`` re-tests and redraws the ranks of a result file without fitting.
"""

from __future__ import annotations

import argparse
import functools
import json
import multiprocessing
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout

from obscale_bayes.checks.sbc import (  # noqa: E402
    FORECAST_GROUPS,
    PARAMETER_GROUPS,
    ecdf_difference,
    group_tests,
    hold_out,
    prior_replications,
    rank_matrix,
    sbc_post,
    sbc_template,
)
from obscale_bayes.data.tables import load_shipped  # noqa: E402
from obscale_bayes.fit.runner import FitJob, run_fits  # noqa: E402
from obscale_bayes.io import atomic_write  # noqa: E402
from obscale_bayes.spec.spec import load_spec  # noqa: E402

GROUPS = PARAMETER_GROUPS + FORECAST_GROUPS
DEFAULT_OUT = ROOT / "studies" / "results" / "sbc.json"
DEFAULT_FIGURE = ROOT / "docs" / "sbc_ecdf.png"


def parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=200, help="replications (default 200)")
    ap.add_argument("--models", type=int, default=40, help="models in the layout (default 40)")
    ap.add_argument("--families", type=int, default=12, help="families in the layout (12)")
    ap.add_argument("--draws", type=int, default=1000, help="draws per chain (default 1000)")
    ap.add_argument("--tune", type=int, default=500, help="warm-up per chain (default 500)")
    ap.add_argument("--chains", type=int, default=2)
    ap.add_argument("--ranks", type=int, default=99, help="thinned draws L: ranks 0..L (99)")
    ap.add_argument("--bins", type=int, default=10, help="chi-square bins (default 10)")
    ap.add_argument("--alpha", type=float, default=0.01, help="level of each test (0.01)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=2, help="fit processes (default 2)")
    ap.add_argument("--batch", type=int, default=20, help="fits per run_fits call (20)")
    ap.add_argument("--spec", default="default")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--figure", type=Path, default=DEFAULT_FIGURE)
    ap.add_argument("--resume", action="store_true", help="keep the fits already in --out")
    ap.add_argument(
        "--from-json", type=Path, help="re-test and redraw the ranks of a result file (no fits)"
    )
    return ap.parse_args(argv)


def gate_record(res) -> dict:
    if not res.ok:
        return {"error": res.error}
    d = res.diagnostics
    return {"passed": d.passed, "failures": d.failures(), "max_rhat": d.max_rhat,
            "min_ess_bulk": d.min_ess_bulk, "divergences": d.divergences,
            "min_bfmi": d.min_bfmi, "seconds": res.seconds}  # fmt: skip


def summarise(runs: list[dict], a: argparse.Namespace) -> dict[str, dict]:
    """Tests of every group over ``runs`` (records with ``ranks``)."""
    ranks = [r["ranks"] for r in runs]
    out = {}
    for i, g in enumerate(GROUPS):
        _, mat = rank_matrix(ranks, g)
        if mat.size and np.isfinite(mat).any():
            out[g] = group_tests(mat, a.ranks, bins=a.bins, alpha=a.alpha, seed=a.seed + i)
    return out


def table(tests: dict[str, dict]) -> pd.DataFrame:
    cols = ["elements", "ranks", "reps", "chi2_p", "delta", "ks_p", "element_p", "outside_band",
            "verdict"]  # fmt: skip
    return pd.DataFrame({g: {c: t[c] for c in cols} for g, t in tests.items()}).T[cols]


def gate_counts(runs: list[dict], failed: int) -> dict:
    gates = [r["gate"] for r in runs]
    out = {"fits": len(gates), "errors": failed, "passed": sum(g["passed"] for g in gates)}
    for key, word in (("rhat", "R-hat"), ("ess", "ESS"), ("divergences", "divergent"),
                      ("bfmi", "E-BFMI")):  # fmt: skip
        out[f"failed_{key}"] = sum(any(word in f for f in g["failures"]) for g in gates)
    return out


def figure(tests: dict[str, dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from obscale_bayes.plots.common import save_figure

    n = len(tests)
    ncol = 4
    nrow = -(-n // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.2 * ncol, 2.5 * nrow), squeeze=False)
    ref = {}
    for ax, (g, t) in zip(axes.flat, tests.items(), strict=False):
        b = t["band"]
        if t["reps"] not in ref:  # ArviZ's band for as many independent ranks as replications
            ref[t["reps"]] = ecdf_difference((np.arange(t["reps"]) + 0.5) / t["reps"])
        r = ref[t["reps"]]
        ax.fill_between(b["z"], b["lower"], b["upper"], color="0.85", lw=0,
                        label="95% band (replications as clusters)")  # fmt: skip
        for key in ("lower", "upper"):
            ax.plot(r["z"], r[key], color="0.4", lw=0.6, ls=":",
                    label="ArviZ band, one rank per rep." if key == "lower" else None)  # fmt: skip
        ax.step(b["z"], b["diff"], where="post", color="C0", lw=1.2, label="all ranks")
        ax.axhline(0, color="k", lw=0.5)
        bad = t["verdict"] != "uniform"
        ax.set_title(f"{g}{'  FAIL' if bad else ''}", fontsize=9, color="C3" if bad else "k")
        ax.text(0.02, 0.04, f"chi2 p {t['chi2_p']:.2g}  KS p {t['ks_p']:.2g}\nelem p "
                f"{t['element_p']:.2g}  n {t['reps']}x{t['elements']}", fontsize=6.5,
                transform=ax.transAxes)  # fmt: skip
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=6, loc="upper right")
    fig.suptitle(title, fontsize=10)
    fig.supxlabel("fractional rank (PIT)", fontsize=9)
    fig.supylabel("ECDF - uniform (95% simultaneous band)", fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)


def clean(o):
    """Strict-JSON form: NumPy scalars as Python ones, NaN / inf as None."""
    if isinstance(o, dict):
        return {str(k): clean(v) for k, v in o.items()}
    if isinstance(o, list | tuple):
        return [clean(v) for v in o]
    if isinstance(o, np.generic):
        o = o.item()
    if isinstance(o, float) and not np.isfinite(o):
        return None
    return o


def write(path: Path, settings: dict, runs: list, errors: list, done: dict | None) -> None:
    """The JSON result: settings, tests, gate counts and, one line per fit, its ranks (lists
    aligned with ``labels[group]``; null = element absent from that fit)."""
    tests = {k: {g: {c: v for c, v in t.items() if c != "band"}
                 for g, t in d.items()} for k, d in (done or {}).items()}  # fmt: skip
    labels, rows = {}, [{k: v for k, v in r.items() if k != "ranks"} for r in runs]
    for g in GROUPS:
        labels[g], mat = rank_matrix([r["ranks"] for r in runs], g)
        for row, ranks in zip(rows, mat, strict=True):
            row.setdefault("ranks", {})[g] = [int(v) if np.isfinite(v) else None for v in ranks]
    # complete: every replication asked for was run and tested (a partial run can be re-tested
    # with --from-json, and says how many it has)
    full = len(runs) + len(errors) >= int(settings.get("reps", 0))
    obj = {"settings": settings, "complete": done is not None and full,
           "replications": len(runs), "tests": tests,
           "gate": gate_counts(runs, len(errors)), "errors": errors, "labels": labels,
           "runs": "@RUNS@"}  # fmt: skip
    text = json.dumps(clean(obj), indent=1, allow_nan=False)
    lines = ",\n".join("  " + json.dumps(clean(r), allow_nan=False) for r in rows)
    text = text.replace('"@RUNS@"', "[\n" + lines + "\n ]") + "\n"
    atomic_write(path, lambda f: f.write(text), binary=False, what="the SBC results")


TRUTH_KEYS = ("efficiency_mean", "efficiency_sd", "slope_mean", "slope_sd", "residual_sd")
SUBSETS = {
    "all": ("all fits (the SBC result)", lambda r: True),
    "gate_passed": ("fits that pass the gate", lambda r: r["gate"]["passed"]),
    "no_divergences": ("fits without divergences", lambda r: r["gate"]["divergences"] == 0),
}


def fit_all(a: argparse.Namespace, t_start: float) -> tuple[dict, list, list]:
    """Simulate, fit and rank every replication; (settings, runs, errors)."""
    spec = load_spec(a.spec)
    template = sbc_template(load_shipped(), a.models, a.families, a.seed)
    reps = prior_replications(template, spec, a.reps, seed=a.seed)
    holdouts = [hold_out(r, a.seed) for r in reps]
    n_missing = len(template.model_ids) * len(template.benchmark_ids) - len(template.scores)
    settings = {
        "spec": spec.name, "reps": a.reps, "models": len(template.model_ids),
        "families": len(template.families), "benchmarks": len(template.benchmark_ids),
        "scores": len(template.scores), "missing_cells": n_missing,
        "unknown_flops": int(template.models["flops_1e21"].isna().sum()),
        "template_models": template.model_ids, "draws": a.draws, "tune": a.tune,
        "chains": a.chains, "ranks_L": a.ranks, "bins": a.bins, "alpha": a.alpha,
        "seed": a.seed, "workers": a.workers, "sampler": "nutpie",
        "simulator": "pm.sample_prior_predictive on build_model (unclipped scores)",
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }  # fmt: skip
    print(
        f"SBC of '{spec.name}': {a.reps} replications of {settings['models']} models "
        f"({settings['families']} families, {settings['unknown_flops']} with unknown FLOPs) x "
        f"{settings['benchmarks']} benchmarks, {settings['scores']} scores ({n_missing} missing);"
        f" fits {a.chains} x ({a.tune} + {a.draws}), L = {a.ranks}",
        flush=True,
    )
    jobs = []
    for rep, h in zip(reps, holdouts, strict=True):
        post = functools.partial(sbc_post, truth=rep.truth, cells=h.cells, n_ranks=a.ranks,
                                 seed=a.seed * 100_003 + rep.index)  # fmt: skip
        kw = {"draws": a.draws, "tune": a.tune, "chains": a.chains, "cores": 1,
              "seed": a.seed * 100_003 + rep.index}  # fmt: skip
        jobs.append(FitJob(f"rep{rep.index:04d}", h.train, spec, kw, post))
    runs, errors = [], []
    if a.resume and a.out.exists():  # keep the fits of an interrupted run with these settings
        old, runs, _ = read_runs(a.out)  # failed fits are retried
        same = ("reps", "draws", "tune", "chains", "ranks_L", "seed", "template_models")
        if any(old[k] != settings[k] for k in same):
            raise SystemExit(f"--resume: {a.out} has other settings; remove it or drop --resume")
        print(f"  resuming: {len(runs)} fits read from {a.out}", flush=True)
    have = {r["rep"] for r in runs}
    todo = [i for i in range(len(jobs)) if i not in have]
    ctx = multiprocessing.get_context("spawn")
    for start in range(0, len(todo), a.batch):
        ids = todo[start : start + a.batch]
        batch = [jobs[i] for i in ids]
        # Fresh workers for every batch: each compiled model stays in its worker's memory
        # (~45 MB). Not max_tasks_per_child: on Python 3.12.1 the pool then stopped replacing
        # the workers that had retired and the run waited for ever after 40-50 fits.
        with ProcessPoolExecutor(a.workers, mp_context=ctx) as ex:
            # one compiled model per replication: warming the cache would compile each twice
            res = run_fits(batch, ex, on_error="collect", progress=False, warm_cache=False)
        for i, r in zip(ids, res.values(), strict=True):
            cells = [{"group": g, "cell": list(c), "y": y} for g, c, y in holdouts[i].cells]
            truth = {k: reps[i].truth[k].values.tolist() for k in TRUTH_KEYS if k in reps[i].truth}
            if r.ok:
                runs.append({"rep": i, "gate": gate_record(r), "cells": cells,
                             "truth": truth, "ranks": r.value})  # fmt: skip
            else:
                errors.append({"rep": i, "error": r.error})
        secs = [r["gate"]["seconds"] for r in runs]
        print(
            f"  {len(runs) + len(errors)}/{len(jobs)} fits, {len(errors)} errors, "
            f"{sum(r['gate']['passed'] for r in runs)} pass the gate; median fit "
            f"{np.median(secs) if secs else float('nan'):.1f} s; "
            f"{time.perf_counter() - t_start:.0f} s so far",
            flush=True,
        )
        write(a.out, settings, runs, errors, None)
    settings["wall_s"] = time.perf_counter() - t_start  # of this call (with --resume: its part)
    runs.sort(key=lambda r: r["rep"])
    return settings, runs, errors


def read_runs(path: Path) -> tuple[dict, list, list]:
    """(settings, runs, errors) of a result file, ranks back as ``{group: {label: rank}}``."""
    d = json.loads(path.read_text(encoding="utf-8"))
    runs = []
    for r in d["runs"]:
        ranks = {g: {lab: v for lab, v in zip(d["labels"][g], r["ranks"][g], strict=True)
                     if v is not None} for g in r["ranks"]}  # fmt: skip
        runs.append({**r, "ranks": {g: v for g, v in ranks.items() if v}})
    return d["settings"], runs, d["errors"]


def main(argv: list[str] | None = None) -> int:
    a = parse(argv)
    t_start = time.perf_counter()
    if a.from_json is not None:
        settings, runs, errors = read_runs(a.from_json)
        for key in ("ranks_L", "bins", "alpha", "seed"):  # the ranks' own settings
            setattr(a, {"ranks_L": "ranks"}.get(key, key), settings[key])
    else:
        settings, runs, errors = fit_all(a, t_start)
    done = {}
    for key, (_, keep) in SUBSETS.items():
        sub = [r for r in runs if keep(r)]
        if len(sub) > 1:
            done[key] = summarise(sub, a)
    g = gate_counts(runs, len(errors))
    wall = settings.get("wall_s")  # absent from an interrupted run's file
    spent = f"{wall / 60:.1f} min of fitting" if wall is not None else "fitting time not recorded"
    print(f"\ndone ({len(runs)} replications, {spent}); gate: {g}")
    fmt = {"float_format": lambda v: f"{v:.3g}"}
    for key, (label, _) in SUBSETS.items():
        if key in done:
            n = next(iter(done[key].values()))["reps"]
            print(f"\n{label} ({n}):")
            print(table(done[key]).to_string(**fmt))
    write(a.out, settings, runs, errors, done)
    print(f"\nwritten {a.out}")
    title = (f"SBC of '{settings['spec']}': {len(runs)} replications, {settings['models']} "
             f"models x {settings['benchmarks']} benchmarks, L = {a.ranks}")  # fmt: skip
    figure(done["all"], a.figure, title)
    print(f"written {a.figure}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
