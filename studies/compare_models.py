"""Which K (and which likelihood) do the data support?  PSIS-LOO comparison of spec variants.

Run from the repository root::

    .venv/bin/python studies/compare_models.py [--specs k1 k2 default k4 student_t]
        [--draws 1000] [--tune 1000] [--chains 4] [--seed 0] [--out FILE]

Fits every spec on the full shipped standard base table (``load_shipped()``: 128 models,
8 benchmarks) one after another with nutpie, prints each fit's convergence gate, then

* the :func:`arviz.compare` table of all fits (stacking weights),
* the K comparison (fits with the normal likelihood) and the verdict of
  :func:`obscale_bayes.checks.comparison.k_verdict`: the simplest K whose elpd_loo is within
  2 SE (of the paired difference) of the best,
* the likelihood comparison (default vs student_t, both K = 3),
* the models the default fit explains worst,

and writes all of it to ``studies/results/compare_models.json``.

PSIS-LOO is unreliable for cells with Pareto k > 0.7 (many here: each model's capabilities
rest on its own handful of scores).  ``--kfold default k4 [--folds 5]`` instead runs K-fold
cross-validation of those specs on the same folds (cells dealt to folds within each model;
``folds`` refits per spec, with the same sampler settings) and adds a ``kfold`` section to the
existing JSON file, leaving the LOO results in it as they are.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout

from obscale_bayes.checks.comparison import (  # noqa: E402
    PARETO_K_BAD,
    compare_fits,
    k_verdict,
    pointwise_loo,
    simplest_supported,
    worst_explained,
)
from obscale_bayes.checks.kfold import kfold_compare, kfold_elpd  # noqa: E402
from obscale_bayes.data.tables import load_shipped  # noqa: E402
from obscale_bayes.fit.fitted import CapabilityModel  # noqa: E402
from obscale_bayes.spec.spec import load_spec  # noqa: E402

DEFAULT_OUT = ROOT / "studies" / "results" / "compare_models.json"
SPECS = ("k1", "k2", "default", "k4", "student_t")
COLS = ["rank", "n_factors", "likelihood", "elpd", "se", "p", "elpd_diff", "dse", "weight"]
COLS += ["n_bad_k", "warning"]


def _records(table: pd.DataFrame) -> list[dict]:
    t = table.reset_index()
    keep = ["fit"] + [c for c in COLS if c in t.columns]
    out = t[keep].to_dict(orient="records")
    for r in out:
        for k, v in r.items():
            if isinstance(v, np.generic):
                r[k] = v.item()
    return out


def _show(table: pd.DataFrame) -> str:
    return table[[c for c in COLS if c in table.columns]].round(2).to_string()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--specs", nargs="+", default=list(SPECS))
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--tune", type=int, default=1000)
    ap.add_argument("--chains", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--z", type=float, default=2.0, help="SE multiple of the verdict rule")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--kfold", nargs="+", default=None, help="K-fold CV of these specs only")
    ap.add_argument("--folds", type=int, default=5)
    args = ap.parse_args(argv)

    data = load_shipped()
    print(f"data: {data}", flush=True)
    if args.kfold:
        return run_kfold(data, args)
    fits: dict[str, CapabilityModel] = {}
    per_fit = {}
    for name in args.specs:
        t0 = time.perf_counter()
        fit = CapabilityModel.fit(
            data, name, draws=args.draws, tune=args.tune, chains=args.chains, seed=args.seed,
            progress=False,
        )  # fmt: skip
        fits[name] = fit
        lo = pointwise_loo(fit)
        k = np.asarray(lo.pareto_k)
        d = fit.diagnostics
        per_fit[name] = {
            "n_factors": fit.spec.n_factors,
            "likelihood": fit.spec.structure["likelihood"],
            "gate_passed": bool(d.passed),
            "failures": d.failures(),
            "max_rhat": d.max_rhat,
            "min_ess_bulk": d.min_ess_bulk,
            "min_ess_tail": d.min_ess_tail,
            "divergences": d.divergences,
            "min_bfmi": d.min_bfmi,
            "sampling_seconds": d.sampling_seconds,
            "elpd_loo": float(lo.elpd),
            "se": float(lo.se),
            "p_loo": float(lo.p),
            "n_cells": int(k.size),
            "pareto_k_gt_0.7": int((k > PARETO_K_BAD).sum()),
            "pareto_k_gt_1": int((k > 1.0).sum()),
            "seconds_total": time.perf_counter() - t0,
        }
        r = per_fit[name]
        print(
            f"{name:10s} K={r['n_factors']} {r['likelihood']:9s} gate "
            f"{'PASS' if r['gate_passed'] else 'FAIL ' + '; '.join(r['failures'])}: "
            f"R-hat {d.max_rhat:.3f}, bulk ESS {d.min_ess_bulk:.0f}, {d.divergences} div, "
            f"E-BFMI {d.min_bfmi:.2f}, {d.sampling_seconds:.0f} s sampling | elpd_loo "
            f"{r['elpd_loo']:.1f} (SE {r['se']:.1f}), p_loo {r['p_loo']:.1f}, Pareto k > 0.7: "
            f"{r['pareto_k_gt_0.7']}/{r['n_cells']} (> 1: {r['pareto_k_gt_1']})",
            flush=True,
        )

    out: dict = {
        "settings": {
            "data": str(data),
            "specs": list(args.specs),
            "draws": args.draws,
            "tune": args.tune,
            "chains": args.chains,
            "seed": args.seed,
            "z": args.z,
        },
        "fits": per_fit,
    }
    if len(fits) >= 2:
        table = compare_fits(fits)
        print("\naz.compare, all fits (stacking):\n" + _show(table))
        out["compare_all"] = _records(table)
    normal = {n: f for n, f in fits.items() if f.spec.structure["likelihood"] == "normal"}
    if len(normal) >= 2:
        kt = compare_fits(normal)
        v = k_verdict(kt, z=args.z)
        print("\nK comparison (normal likelihood):\n" + _show(kt))
        print(f"\nverdict (simplest K within {args.z:g} SE of the best): {v.text}")
        out["compare_k"] = _records(kt)
        out["k_verdict"] = {
            "rule": f"simplest K whose elpd_loo is within {args.z:g} dse of the best",
            "supported_fit": v.choice,
            "supported_k": int(v.table.loc[v.choice, "complexity"]),
            "best_fit": v.best,
            "candidates": v.candidates,
            "text": v.text,
        }
    lik = {n: f for n, f in fits.items() if f.spec.n_factors == 3}
    if len({f.spec.structure["likelihood"] for f in lik.values()}) > 1:
        lt = compare_fits(lik)
        # complexity: the normal likelihood is the special case nu -> infinity of Student-t
        cx = {n: float(f.spec.structure["likelihood"] != "normal") for n, f in lik.items()}
        lv = simplest_supported(lt, cx, z=args.z, label="heavy tails")
        print("\nlikelihood comparison (K = 3):\n" + _show(lt))
        print(f"\nverdict: {lv.text}")
        out["compare_likelihood"] = _records(lt)
        out["likelihood_verdict"] = {"supported_fit": lv.choice, "text": lv.text}
    if "default" in fits:
        w = worst_explained(fits["default"], n=10)
        print("\nworst-explained models (default):\n" + w.round(2).to_string(index=False))
        out["worst_explained_default"] = json.loads(w.to_json(orient="records"))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(f"\nwrote {args.out}")
    return 0


def kfold_verdict(table: pd.DataFrame, z: float = 2.0):
    """The K rule of :func:`simplest_supported` applied to a :func:`kfold_compare` table."""
    k = {n: load_spec(n).n_factors for n in table.index}
    v = simplest_supported(table, k, z=z, label="K")
    return replace(v, text=v.text.replace("elpd_loo", "elpd_kfold"))


def run_kfold(data, args) -> int:
    """K-fold CV of ``args.kfold`` specs; merges a ``kfold`` section into ``args.out``."""
    fit_kw = dict(draws=args.draws, tune=args.tune, chains=args.chains, seed=args.seed)
    results, info = {}, {}
    for name in args.kfold:
        t0 = time.perf_counter()
        r = kfold_elpd(data, name, folds=args.folds, fold_seed=args.seed, progress=False, **fit_kw)
        results[name] = r
        info[name] = {
            "elpd_kfold": float(r["elpd"].sum()),
            "fold_gates_passed": r.attrs["gates"],
            "seconds": time.perf_counter() - t0,
        }
        print(
            f"{name:10s} K-fold ({args.folds} folds): elpd {r['elpd'].sum():.1f} over "
            f"{len(r)} cells; fold fits passing the gate: {sum(r.attrs['gates'])}/{args.folds} "
            f"({info[name]['seconds']:.0f} s)",
            flush=True,
        )
    table = kfold_compare(results)
    print(f"\nK-fold comparison ({args.folds} folds):\n" + table.round(2).to_string())
    verdict = kfold_verdict(table, z=args.z)
    print(f"\nverdict (simplest K within {args.z:g} SE of the best): {verdict.text}")
    out = json.loads(args.out.read_text()) if args.out.exists() else {}
    out["kfold"] = {
        "settings": {"folds": args.folds, "fold_seed": args.seed, **fit_kw},
        "fits": info,
        "compare": [{"fit": i, **{k: float(v) for k, v in r.items()}} for i, r in table.iterrows()],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
