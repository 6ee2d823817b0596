"""Backtests: fit on a training split, score forecasts of held-out models, side by side.

The Bayesian model is fitted on the training models only (their input benchmarks *and* the
target task, which joins the factor model as one more output with its own floor, range and
misfit).  Each held-out model is then forecast from its observed input scores with
:meth:`~obscale_bayes.fit.CapabilityModel.forecast_from_scores` -- the user's own situation:
a new, stronger model whose standard benchmark scores are known.  The baselines of
:mod:`obscale_bayes.evaluation.baselines` are scored on the same split and the same (transformed) target.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from obscale_bayes.data.tables import BenchmarkData, load_benchmark_metadata
from obscale_bayes.errors import UsageError
from obscale_bayes.evaluation import metrics
from obscale_bayes.evaluation.baselines import (
    FamilyInterceptFlops,
    FlopsOnly,
    PaperPCAMethod,
    TrainingFrame,
)
from obscale_bayes.evaluation.presets import ANALYSES, build_analysis, read_raw_tables
from obscale_bayes.fit.fitted import CapabilityModel
from obscale_bayes.forecast.conditional import forecast_from_scores
from obscale_bayes.spec.spec import ModelSpec, load_spec

#: Spec the backtests use unless told otherwise: the default model with every capability residual
#: non-centred.  Training sets of weak models (most near chance on MMLU) leave the centred
#: residuals in a funnel; the default spec gave R-hat up to 1.59 there.  (The `downstream`
#: variant is closer on 6 of the 9 paper analyses but far worse on 2: README, Backtests.)
BACKTEST_SPEC = "noncentered"

METHODS = ("bayes", "paper_pca3", "flops_only", "family_flops")
RECORD_COLUMNS = ["analysis", "task", "method", "split", "n_train", "n_test", "mse", "mae", "crps",
                  "coverage50", "coverage80", "coverage90", "coverage95", "width90"]  # fmt: skip


@dataclass(frozen=True)
class BacktestCase:
    """One backtest: a table of models, the inputs, the target and the split."""

    name: str
    models: pd.DataFrame  # index model; family, params_b, tokens_t, flops_1e21, inputs, raw_target
    inputs: tuple[str, ...]
    target: str
    train: pd.Series  # bool, aligned to models.index
    test: pd.Series
    split: str
    link: str = "floored_sigmoid"
    chance: float = 0.0
    max_value: float = 1.0
    benchmarks: pd.DataFrame | None = None  # metadata of inputs + target (default: shipped)

    def transform(self, y: np.ndarray | pd.Series) -> np.ndarray:
        """The scale errors are measured on: ``(y - chance) / (max - chance)``."""
        return (np.asarray(y, dtype=float) - self.chance) / (self.max_value - self.chance)


def _benchmark_data(
    case: BacktestCase, rows: pd.Series, with_target: bool, source: str
) -> BenchmarkData:
    m = case.models[rows]
    cols = list(case.inputs) + (["raw_target"] if with_target else [])
    long = m[cols].rename(columns={"raw_target": case.target}).reset_index().melt(id_vars="model")
    long = long.dropna().rename(columns={"variable": "benchmark"})
    meta = load_benchmark_metadata() if case.benchmarks is None else case.benchmarks
    meta = meta[meta["benchmark"].isin(list(case.inputs) + [case.target])]
    models = m[["family", "params_b", "tokens_t", "flops_1e21"]].reset_index()
    models["kind"] = np.nan
    return BenchmarkData(models, long[["model", "benchmark", "value"]], meta, source=source)


def bayes_forecast(
    case: BacktestCase, spec: ModelSpec, *, draws: int, tune: int, chains: int, seed: int
) -> tuple[np.ndarray, CapabilityModel]:
    """Predictive draws (n_draws, n_test) of the transformed target, and the training fit."""
    train = _benchmark_data(case, case.train, True, f"{case.name} (train)")
    test = _benchmark_data(case, case.test, False, f"{case.name} (test inputs)")
    fit = CapabilityModel.fit(
        train, spec, draws=draws, tune=tune, chains=chains, seed=seed, progress=False
    )
    fc = forecast_from_scores(fit, test, seed=seed)
    d = fc.draws.sel(benchmark=case.target, model=list(case.models.index[case.test]))
    return case.transform(d.transpose("sample", "model").to_numpy()), fit


def _frame(case: BacktestCase, rows: pd.Series) -> TrainingFrame:
    m = case.models[rows]
    return TrainingFrame(
        inputs=m[list(case.inputs)],
        target=pd.Series(case.transform(m["raw_target"]), index=m.index),
        family=m["family"],
        log10_flops=np.log10(m["flops_1e21"]) + 21.0,
    )


def run_case(
    case: BacktestCase,
    spec: ModelSpec | None = None,
    methods: tuple[str, ...] = METHODS,
    *,
    draws: int = 1000,
    tune: int = 1000,
    chains: int = 4,
    seed: int = 0,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Score every method on one case.

    Returns
    -------
    (summary, cells) : one pooled row per method, and one row per (method, held-out model).
    """
    spec = spec or load_spec(BACKTEST_SPEC)
    bad = [m for m in methods if m not in METHODS]
    if bad:
        raise UsageError(f"methods: unknown method {bad[0]!r}; choose from {', '.join(METHODS)}")
    truth = pd.Series(
        case.transform(case.models.loc[case.test, "raw_target"]), index=case.models.index[case.test]
    )
    rows, cells = [], []
    for method in methods:
        if method == "bayes":
            draws_, fit = bayes_forecast(
                case, spec, draws=draws, tune=tune, chains=chains, seed=seed
            )
            table = metrics.score_draws(truth, draws_)
            extra = {
                "max_rhat": fit.diagnostics.max_rhat,
                "divergences": fit.diagnostics.divergences,
            }
        else:
            cls = {
                "paper_pca3": PaperPCAMethod,
                "flops_only": FlopsOnly,
                "family_flops": FamilyInterceptFlops,
            }
            model = cls[method](link=case.link)
            tr, te = _frame(case, case.train), _frame(case, case.test)
            if method != "paper_pca3" and tr.log10_flops.isna().all():
                continue  # no compute at all (instruct models): FLOPs methods do not apply
            model.fit(tr)
            table = metrics.score_points(truth, model.predict(te))
            extra = {}
        s = metrics.summarize(table).iloc[0].to_dict()
        rows.append(
            {"analysis": case.name, "task": case.target, "method": method, "split": case.split,
             "n_train": int(case.train.sum()), "n_test": int(case.test.sum()), **s, **extra}
        )  # fmt: skip
        cells.append(table.assign(analysis=case.name, method=method, model=truth.index))
    return pd.DataFrame(rows), pd.concat(cells, ignore_index=True)


def paper_case(key: str) -> BacktestCase:
    """The :class:`BacktestCase` of one of the paper's nine analyses (exact settings)."""
    ad = build_analysis(key, raw=read_raw_tables())
    a = ad.analysis
    split = (
        f"flops<={a.cutoff_1e21:g}e21" if a.split == "flops_cutoff" else f"top{int(a.frac * 100)}%"
    )
    return BacktestCase(
        name=a.key,
        models=ad.models,
        inputs=tuple(a.inputs),
        target=a.target,
        train=ad.train,
        test=ad.test,
        split=split,
        link=a.link,
        chance=a.chance,
        max_value=a.max_value,
    )


def run_paper_preset(
    spec: ModelSpec | None = None,
    keys: list[str] | None = None,
    *,
    draws: int = 1000,
    tune: int = 1000,
    chains: int = 4,
    seed: int = 0,
    progress: bool = True,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """All nine analyses of the brief's reference table, every method; (summary, cells)."""
    keys = keys or [a.key for a in ANALYSES]
    unknown = sorted(set(keys) - {a.key for a in ANALYSES})
    if unknown:
        raise UsageError(
            f"--analysis: unknown analysis {unknown}; choose from {[a.key for a in ANALYSES]}"
        )
    summaries, cells = [], []
    for i, key in enumerate(keys, 1):
        t0 = time.perf_counter()
        s, c = run_case(paper_case(key), spec, draws=draws, tune=tune, chains=chains, seed=seed)
        ref = next(a for a in ANALYSES if a.key == key)
        s["ref_pc3_mse"] = ref.ref_pc3
        summaries.append(s)
        cells.append(c)
        if progress:
            b = s.set_index("method")
            print(
                f"[{i}/{len(keys)}] {key}: bayes mse {b.loc['bayes', 'mse']:.3g} vs paper-PC3 "
                f"{b.loc['paper_pca3', 'mse']:.3g} (ref {ref.ref_pc3:.2g}); 90% coverage "
                f"{b.loc['bayes', 'coverage90']:.2f} ({time.perf_counter() - t0:.0f} s)",
                file=sys.stderr,
            )
    return pd.concat(summaries, ignore_index=True), pd.concat(cells, ignore_index=True)


def targets_report(summary: pd.DataFrame, cells: pd.DataFrame) -> dict:
    """The issue's targets: MSE wins vs the paper's PC-3 method, geometric-mean ratio, coverage."""
    piv = summary.pivot(index="analysis", columns="method", values="mse")
    ratio = piv["bayes"] / piv["paper_pca3"]
    bc = cells[cells["method"] == "bayes"]
    cov = {
        lvl: float(bc[f"covered{lvl}"].mean()) if f"covered{lvl}" in bc else float("nan")
        for lvl in (50, 90)
    }
    return {
        "wins": int((ratio <= 1.0).sum()),
        "n": int(ratio.notna().sum()),
        "geo_mean_ratio": float(np.exp(np.log(ratio).mean())),
        "ratios": ratio.to_dict(),
        "pooled_coverage50": cov[50],
        "pooled_coverage90": cov[90],
        "n_cells": int(len(bc)),
    }
