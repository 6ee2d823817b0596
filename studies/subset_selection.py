"""Which models to evaluate on a new task: expected variance reduction vs the paper's selection.

Setting (the paper's Sec. 5 evaluation, ``model_subset_selection_eval.ipynb`` of
ryoungj/ObsScaling): GSM8K with chain-of-thought (``gsm8k_cot`` of
:mod:`obscale_bayes.evaluation.presets`), the 21 default families, the 7 standard benchmarks without
GSM8K as inputs, train = FLOPs <= 84e21 (47 models), test = the 28 others.  The candidate pool is
the training models without a missing input (45 models, 14 families, as in the paper's code).

Every model keeps its 7 standard-benchmark scores in every fit; only the *target* task is
observed on a chosen subset of the pool.  Each fit (2 chains x 500 draws) is scored on the test
models' target forecasts: MSE of the posterior mean, CRPS, 50%/90% interval coverage.  Methods,
for budgets B:

* ``ours``: greedy expected reduction of the summed predictive variance of the 28 test models'
  target cells (:func:`obscale_bayes.next_eval.select_batch`), *sequential*: the first batch
  comes from a fit with the target observed nowhere (the target's parameters then have their
  prior as posterior), each later batch from the fit of the previous budget; the sets are nested.
* ``ours_oneshot``: the same criterion, every pick from the target-free fit (no target value is
  used to choose, as in the paper's selection); budget B takes the first B greedy picks.
* ``paper``: V-optimal family combination on 3 PCs with <= B models
  (:mod:`obscale_bayes.evaluation.subset_selection`).
* ``random``: the paper's random family combinations with max(B - 2, 3)..B models.
* ``all``: the target observed on all 47 training models.

Every fit is also scored with the paper's own point estimate (PCA + least-squares sigmoid on
the selected models, ``paper_mse``), for reference.

Run: ``.venv/bin/python studies/subset_selection.py`` (about 35 min on 2 shared cores, one
fit after another); ``--methods ours_oneshot --merge`` reruns only the named methods and keeps the
others' runs in the results file; ``--fast`` for a smoke run.  Writes
``studies/results/subset_selection.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from obscale_bayes.data.tables import BenchmarkData, load_benchmark_metadata
from obscale_bayes.evaluation import metrics
from obscale_bayes.evaluation.baselines import PaperPCAMethod
from obscale_bayes.evaluation.cases import paper_case
from obscale_bayes.evaluation.subset_selection import (
    paper_pc_features,
    random_family_subsets,
    v_optimal_subsets,
)
from obscale_bayes.fit.fitted import CapabilityModel
from obscale_bayes.forecast.joint import joint_draws
from obscale_bayes.forecast.next_eval import reweighted_variance_reduction, select_batch

OUT = Path(__file__).resolve().parent / "results" / "subset_selection.json"
METHODS = ("all", "ours", "ours_oneshot", "paper", "random")


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


class Experiment:
    def __init__(self, key: str, draws: int, tune: int, chains: int, seed: int):
        self.case = paper_case(key)
        self.fit_kw = dict(draws=draws, tune=tune, chains=chains, seed=seed, cores=1)
        c, m = self.case, self.case.models
        self.pool = list(m.index[c.train & m[list(c.inputs)].notna().all(axis=1)])
        self.test = list(m.index[c.test])
        self.targets = [(x, c.target) for x in self.test]
        self.truth = pd.Series(c.transform(m.loc[self.test, "raw_target"]), index=self.test)
        meta = load_benchmark_metadata()
        self.meta = meta[meta["benchmark"].isin(list(c.inputs) + [c.target])]
        long = m[list(c.inputs)].reset_index().melt(id_vars="model").dropna()
        self.inputs_long = long.rename(columns={"variable": "benchmark"})
        models = m[["family", "params_b", "tokens_t", "flops_1e21"]].reset_index()
        models["kind"] = np.nan
        self.models = models

    def data(self, observed: list[str]) -> BenchmarkData:
        """All models' input scores, plus the target on ``observed``."""
        c = self.case
        t = c.models.loc[list(observed), ["raw_target"]].reset_index()
        t = t.rename(columns={"raw_target": "value"}).assign(benchmark=c.target)
        long = pd.concat([self.inputs_long, t[["model", "benchmark", "value"]]])
        return BenchmarkData(self.models, long, self.meta, source=f"{c.name}: {len(observed)} obs")

    def fit(self, observed: list[str]) -> tuple[CapabilityModel, float]:
        t0 = time.perf_counter()
        fit = CapabilityModel.fit(self.data(observed), "default", progress=False, **self.fit_kw)
        return fit, time.perf_counter() - t0

    def score(self, fit: CapabilityModel, observed: list[str]) -> dict:
        jd = joint_draws(fit, self.targets, seed=1, max_draws=None)
        draws = self.case.transform(jd.metric())
        s = metrics.summarize(metrics.score_draws(self.truth, draws)).iloc[0]
        out = {k: float(s[k]) for k in ("mse", "mae", "crps", "coverage50", "coverage90",
                                         "width90")}  # fmt: skip
        out["mean_pred_var"] = float(draws.var(axis=0).mean())
        out["max_rhat"] = float(fit.diagnostics.max_rhat)
        out["divergences"] = int(fit.diagnostics.divergences)
        out["paper_mse"] = self.paper_point_mse(observed)
        return out

    def paper_point_mse(self, observed: list[str]) -> float | None:
        """The paper's estimator (PCA + sigmoid) fitted on the observed models only."""
        c = self.case
        if len(observed) < 4:
            return None
        try:
            pred = PaperPCAMethod(link=c.link).fit(c.frame(observed)).predict(c.frame(self.test))
        except Exception as exc:  # tiny subsets can leave a singular fit; record, do not crash
            log(f"  paper estimator failed on {len(observed)} models: {exc}")
            return None
        return float(np.mean((pred - self.truth.to_numpy()) ** 2))

    def run(self, method: str, budget: int | None, observed: list[str], extra=None) -> tuple:
        fit, secs = self.fit(observed)
        row = {"method": method, "budget": budget, "n_models": len(observed),
               "families": sorted(self.case.models.loc[observed, "family"].unique().tolist()),
               "models": list(observed), **self.score(fit, observed), "seconds": secs,
               **(extra or {})}  # fmt: skip
        log(f"{method:>7} B={budget} n={len(observed):2d}: mse {row['mse']:.4g} "
            f"cov90 {row['coverage90']:.2f} paper-est mse {row['paper_mse']} ({secs:.0f} s)")  # fmt: skip
        return row, fit


def ours_oneshot(exp: Experiment, budgets: list[int], rows: list) -> None:
    """All picks from the target-free fit (no refits, no target values used): nested prefixes."""
    cands = [(m, exp.case.target) for m in exp.pool]
    fit0, secs = exp.fit([])
    log(f"   ours_oneshot: target-free fit ({secs:.0f} s)")
    batch = select_batch(fit0, exp.targets, max(budgets), cands, seed=0)
    for b in budgets:
        observed = list(batch["model"][:b])
        extra = {"predicted_fraction_removed": float(batch["fraction_removed"].iloc[b - 1]),
                 "selected_from": "target-free fit"}  # fmt: skip
        row, _ = exp.run("ours_oneshot", b, observed, extra)
        rows.append(row)


def ours(exp: Experiment, budgets: list[int], rows: list, checks: list) -> None:
    cands = [(m, exp.case.target) for m in exp.pool]
    fit0, secs = exp.fit([])
    log(f"   ours: target-free fit ({secs:.0f} s)")
    fit, observed, prev = fit0, [], 0
    for b in budgets:
        left = [c for c in cands if c[0] not in set(observed)]
        batch = select_batch(fit, exp.targets, b - prev, left, seed=b)
        if b == budgets[0] or len(checks) < 2:
            chk = reweighted_variance_reduction(fit, exp.targets, left[:40] if b > 4 else left,
                                                n_outcomes=150, seed=b)  # fmt: skip
            checks.append({"n_observed": len(observed), "table": chk.round(6).to_dict("records"),
                           "target_variance": chk.attrs["target_variance"]})  # fmt: skip
        observed = observed + list(batch["model"])
        extra = {"predicted_fraction_removed": float(batch["fraction_removed"].iloc[-1]),
                 "selected_from": "target-free fit" if prev == 0 else f"fit at B={prev}"}  # fmt: skip
        row, fit = exp.run("ours", b, observed, extra)
        rows.append(row)
        prev = b


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--analysis", default="gsm8k_cot")
    ap.add_argument("--budgets", type=int, nargs="+", default=[4, 8, 12, 16, 24])
    ap.add_argument("--n-random", type=int, default=3)
    ap.add_argument("--draws", type=int, default=500)
    ap.add_argument("--tune", type=int, default=500)
    ap.add_argument("--chains", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--fast", action="store_true", help="smoke run: 2 budgets, tiny fits")
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    ap.add_argument(
        "--merge",
        action="store_true",
        help="keep the other methods' runs already in --out (rerun only --methods)",
    )
    a = ap.parse_args(argv)
    if a.fast:
        a.budgets, a.n_random, a.draws, a.tune = [4, 8], 1, 100, 150
    t_start = time.perf_counter()
    exp = Experiment(a.analysis, a.draws, a.tune, a.chains, a.seed)
    m = exp.case.models
    feats = paper_pc_features(m.loc[exp.pool, list(exp.case.inputs)])
    fams = m.loc[exp.pool, "family"]
    log(f"{a.analysis}: pool {len(exp.pool)} models / {fams.nunique()} families, "
        f"test {len(exp.test)}")  # fmt: skip
    rows: list[dict] = []
    checks: list[dict] = []
    old = json.loads(a.out.read_text()) if a.merge and a.out.exists() else None
    if old is not None:
        rows = [r for r in old["runs"] if r["method"] not in a.methods]
        checks = [] if "ours" in a.methods else old["approximation_checks"]
    if "all" in a.methods:
        row, _ = exp.run("all", None, list(m.index[exp.case.train]))
        rows.append(row)
    if "ours" in a.methods:
        ours(exp, a.budgets, rows, checks)
    if "ours_oneshot" in a.methods:
        ours_oneshot(exp, a.budgets, rows)
    if "paper" in a.methods:
        for b, sub in v_optimal_subsets(feats, fams, a.budgets).items():
            row, _ = exp.run("paper", b, list(sub.models), {"v_objective": sub.objective})
            rows.append(row)
    if "random" in a.methods:
        for b in a.budgets:
            for r, sub in enumerate(random_family_subsets(feats, fams, b, a.n_random, seed=b)):
                extra = {"v_objective": sub.objective, "replicate": r}
                row, _ = exp.run("random", b, list(sub.models), extra)
                rows.append(row)
    df = pd.DataFrame(rows)
    summary = []
    for b in a.budgets:
        d = df[df["budget"] == b].groupby("method")
        for meth, g in d:
            summary.append({"budget": b, "method": meth, "n": len(g),
                            "n_models": float(g["n_models"].mean()),
                            "mse": float(g["mse"].mean()), "mse_min": float(g["mse"].min()),
                            "mse_max": float(g["mse"].max()),
                            "coverage90": float(g["coverage90"].mean()),
                            "crps": float(g["crps"].mean()),
                            "paper_mse": float(g["paper_mse"].astype(float).mean())})  # fmt: skip
    all_row = df[df["method"] == "all"].iloc[0]
    wall = time.perf_counter() - t_start + (old["wall_seconds"] if old is not None else 0.0)
    out = {
        "analysis": a.analysis,
        "target": exp.case.target,
        "settings": {
            "budgets": a.budgets,
            "n_random": a.n_random,
            "draws": a.draws,
            "tune": a.tune,
            "chains": a.chains,
            "seed": a.seed,
            "fast": a.fast,
            "pool_models": len(exp.pool),
            "pool_families": int(fams.nunique()),
            "n_test": len(exp.test),
            "n_train": int(exp.case.train.sum()),
        },
        "all_models": {
            k: all_row[k] for k in ("mse", "coverage90", "crps", "paper_mse", "n_models")
        },
        "summary": summary,
        "runs": df.replace({np.nan: None}).to_dict("records"),
        "approximation_checks": checks,
        "wall_seconds": wall,
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(out, indent=1, default=float))
    log(pd.DataFrame(summary).to_string())
    log(f"wrote {a.out} ({out['wall_seconds'] / 60:.1f} min)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
