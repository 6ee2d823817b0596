"""Parameter recovery: simulate tables like the shipped one, fit them, measure interval coverage.

Run from the repository root::

    .venv/bin/python studies/recovery.py [--seeds 1 2 3] [--draws N] [--tune N] [--chains N]
                                            [--spec NAME] [--out FILE]

For each seed, :func:`obscale_bayes.model.simulate.simulate` draws a table with the layout of the
shipped base table (128 models, 40 families, 8 benchmarks, the same missing cells and unknown
FLOPs; realistic population and benchmark parameters), the model is fitted with nutpie (default:
4 chains and the fit's default draws), and the script prints the convergence gate and the share
of true values inside the central 50/80/90/95% posterior intervals per parameter group
(capabilities, family efficiencies and slopes, non-anchor loadings and intercepts, misfits,
latent FLOPs), with the 3-sd binomial band of each (see ``tests/test_recovery.py``).  With
several seeds it also prints the coverage pooled over seeds.  Everything is written to
``studies/results/recovery.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout

from obscale_bayes.checks.recovery import RECOVERY_GROUPS, binomial_band, interval_coverage  # noqa: E402
from obscale_bayes.data.tables import load_shipped  # noqa: E402
from obscale_bayes.fit.fitted import CapabilityModel  # noqa: E402
from obscale_bayes.model.simulate import simulate  # noqa: E402
from obscale_bayes.spec.spec import load_spec  # noqa: E402

PROBS = (0.5, 0.8, 0.9, 0.95)
DEFAULT_OUT = ROOT / "studies" / "results" / "recovery.json"


def coverage_table(cov: pd.DataFrame) -> pd.DataFrame:
    """Wide table: one row per group, ``n`` and one coverage column per interval level."""
    wide = cov.pivot(index="group", columns="prob", values="coverage")
    wide.columns = [f"{q:.0%}" for q in wide.columns]
    n = cov.groupby("group")["n"].first()
    out = pd.concat([n, wide], axis=1)
    order = [g for g in RECOVERY_GROUPS if g in out.index]
    return out.loc[order]


def band_table(cov: pd.DataFrame) -> pd.DataFrame:
    """The 3-sd binomial band of each figure, as 'lo-hi' strings."""
    rows = {}
    for g, sub in cov.groupby("group"):
        n = int(sub["n"].iloc[0])
        rows[g] = {f"{q:.0%}": "{:.2f}-{:.2f}".format(*binomial_band(n, q)) for q in PROBS}
    out = pd.DataFrame(rows).T
    return out.loc[[g for g in RECOVERY_GROUPS if g in out.index]]


def run_seed(template, spec, seed: int, draws: int, tune: int, chains: int) -> dict:
    data, truth = simulate(template, spec, seed=seed)
    t0 = time.perf_counter()
    fit = CapabilityModel.fit(
        data, spec, draws=draws, tune=tune, chains=chains, seed=seed, progress=False
    )
    wall = time.perf_counter() - t0
    cov = interval_coverage(fit.idata, truth, RECOVERY_GROUPS, PROBS)
    return {"seed": seed, "wall_s": wall, "diagnostics": fit.diagnostics, "coverage": cov}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--seeds", type=int, nargs="+", default=[1], help="simulation/fit seeds (default: 1)"
    )
    ap.add_argument("--draws", type=int, default=3000)
    ap.add_argument("--tune", type=int, default=1500)
    ap.add_argument("--chains", type=int, default=4)
    ap.add_argument("--spec", default="default")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    a = ap.parse_args(argv)

    template = load_shipped()
    spec = load_spec(a.spec)
    fmt = {"float_format": lambda v: f"{v:.3f}"}
    runs = []
    for seed in a.seeds:
        print(
            f"seed {seed}: simulating and fitting '{spec.name}' "
            f"({a.chains} chains x ({a.tune} tune + {a.draws} draws)) ...",
            flush=True,
        )
        r = run_seed(template, spec, seed, a.draws, a.tune, a.chains)
        d = r["diagnostics"]
        print(
            f"  fit {r['wall_s']:.1f} s; gate {'PASS' if d.passed else 'FAIL'}: max R-hat "
            f"{d.max_rhat:.4f}, min bulk ESS {d.min_ess_bulk:.0f}, min tail ESS {d.min_ess_tail:.0f}, "
            f"divergences {d.divergences}, min E-BFMI {d.min_bfmi:.2f}"
        )
        if not d.passed:
            print("  " + "; ".join(d.failures()))
        print(coverage_table(r["coverage"]).to_string(**fmt))
        print(flush=True)
        runs.append(r)

    pooled = (
        pd.concat([r["coverage"] for r in runs])
        .groupby(["group", "prob"], as_index=False)[["n", "covered"]]
        .sum()
    )
    pooled["coverage"] = pooled["covered"] / pooled["n"]
    if len(runs) > 1:
        print(f"pooled over seeds {a.seeds}:")
        print(coverage_table(pooled).to_string(**fmt))
        print()
    print("3-sd binomial bands (per seed; see tests/test_recovery.py):")
    print(band_table(runs[0]["coverage"]).to_string())

    out = {
        "settings": {
            "template": "load_shipped() (128 base models x 8 standard benchmarks)",
            "spec": spec.name,
            "seeds": a.seeds,
            "draws": a.draws,
            "tune": a.tune,
            "chains": a.chains,
            "sampler": "nutpie",
            "intervals": "central (equal-tailed) posterior quantile intervals",
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        },
        "runs": [
            {
                "seed": r["seed"],
                "fit_wall_s": r["wall_s"],
                "gate": {
                    "passed": r["diagnostics"].passed,
                    "max_rhat": r["diagnostics"].max_rhat,
                    "min_ess_bulk": r["diagnostics"].min_ess_bulk,
                    "min_ess_tail": r["diagnostics"].min_ess_tail,
                    "divergences": r["diagnostics"].divergences,
                    "min_bfmi": r["diagnostics"].min_bfmi,
                },
                "coverage": r["coverage"].to_dict(orient="records"),
            }
            for r in runs
        ],
        "pooled": pooled.to_dict(orient="records"),
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    print(f"\nwritten {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
