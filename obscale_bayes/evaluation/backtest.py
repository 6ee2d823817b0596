"""The backtest run loop: fit on a training split, score forecasts of held-out models, side by side.

:func:`run_backtests` runs a list of :class:`~obscale_bayes.evaluation.cases.BacktestCase` (the
paper's nine analyses, the BBH preset, user-chosen tasks: all built by
:func:`~obscale_bayes.evaluation.cases.build_case`).  The ``bayes`` method of these single-target
cases is the cut downstream module (:func:`_cut_bayes`: principal-axis coordinates of the observed
inputs, a target module fitted on the training models by MCMC, its noise models and ridge
scales stacked by blocked K-fold on the training models; :mod:`obscale_bayes.fit.downstream_select`).  The joint model below
stays reachable as ``bayes_joint``, for comparison only.  In ``bayes_joint`` the model is
fitted on each case's training models only (their input benchmarks *and* the target task, which joins the factor model
as one more output with its own floor, range and misfit), one
:class:`~obscale_bayes.fit.runner.FitJob` per case through :func:`~obscale_bayes.fit.runner.run_fits`
(a local process pool by default, or the given executor / dask client).  In the worker, each
held-out model is forecast from its observed input scores with
:func:`~obscale_bayes.forecast.conditional.forecast_from_scores` -- the user's own situation: a
new, stronger model whose standard benchmark scores are known.  The baselines of
:mod:`obscale_bayes.evaluation.baselines` are scored on the same split and the same (transformed)
target with :mod:`obscale_bayes.evaluation.metrics`.  Progress goes to the package logger
(:func:`obscale_bayes.progress.report_progress`), one line per fit and one per scored case.

With ``store=`` (a folder, :mod:`obscale_bayes.fit.jobstore`) every finished fit -- the
runner's jobs and the cut target modules alike -- is kept there as it finishes, keyed by its case,
spec, sampling settings and the package's code; the same call again skips them, so a killed
backtest re-run the same way resumes where it stopped and gives the numbers of an uninterrupted
run.  Scoring is cheap and always redone.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import replace
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from obscale_bayes.data.tables import load_benchmark_metadata
from obscale_bayes.errors import UsageError
from obscale_bayes.evaluation import metrics
from obscale_bayes.evaluation.baselines import FamilyInterceptFlops, FlopsOnly, PaperPCAMethod
from obscale_bayes.evaluation.cases import BacktestCase
from obscale_bayes.fit.downstream import fit_target_module
from obscale_bayes.fit.jobstore import JobStore, as_store, ctrl_c_stops
from obscale_bayes.fit.runner import FitJob, JobResult, run_fits
from obscale_bayes.fit.sampling import check_inference
from obscale_bayes.forecast.conditional import forecast_from_scores
from obscale_bayes.forecast.downstream import target_draws
from obscale_bayes.model.coordinates import to_score_scale
from obscale_bayes.model.downstream import LINKS
from obscale_bayes.progress import get_logger, report_progress
from obscale_bayes.spec.spec import ModelSpec, load_spec
from obscale_bayes.validation import parse_choices

if TYPE_CHECKING:  # pragma: no cover
    from obscale_bayes.fit.fitted import CapabilityModel

__all__ = [
    "BACKTEST_SPEC",
    "METHODS",
    "RECORD_COLUMNS",
    "parse_methods",
    "run_backtests",
    "targets_report",
]

log = get_logger(__name__)

#: Spec the backtests use unless told otherwise: the default model with every capability residual
#: non-centred.  Training sets of weak models (most near chance on MMLU) leave the centred
#: residuals in a funnel; the default spec gave R-hat up to 1.59 there.  (The `downstream`
#: variant is closer on 6 of the 9 paper analyses but far worse on 2: README, Backtests.)
BACKTEST_SPEC = "noncentered"

METHODS = ("bayes", "paper_pca3", "flops_only", "family_flops")
#: The joint model (target as one more output of the factor model: issue 8's main failure),
#: reachable by name for comparison, never run by default.
JOINT_METHOD = ("bayes_joint",)
RECORD_COLUMNS = ["analysis", "task", "method", "split", "n_train", "n_test", "mse", "mae", "crps",
                  "coverage50", "coverage80", "coverage90", "coverage95", "width90"]  # fmt: skip
_BASELINES = {"paper_pca3": PaperPCAMethod, "flops_only": FlopsOnly,
              "family_flops": FamilyInterceptFlops}  # fmt: skip


def parse_methods(
    methods: str | Sequence[str] | None, known: Sequence[str] = METHODS
) -> tuple[str, ...]:
    """Methods from ``known`` (default :data:`METHODS`), comma-separated text or a sequence
    (None = all of ``known``)."""
    return parse_choices(methods, known, "methods", "method")


def _bayes_draws(fit: CapabilityModel, case: BacktestCase, seed: int) -> np.ndarray:
    """Worker side: predictive draws ``(n_draws, n_test)`` of the case's transformed target."""
    fc = forecast_from_scores(fit, case.data(case.test, with_target=False), seed=seed)
    d = fc.draws.sel(benchmark=case.target, model=list(case.models.index[case.test]))
    return case.transform(d.transpose("sample", "model").to_numpy())


def _cut_bayes(case: BacktestCase, kw: dict) -> JobResult:
    """The ``bayes`` method of a single-target case: the cut downstream module.

    Coordinates and target module are fitted on the training models' observed input scores and
    target (:func:`~obscale_bayes.fit.downstream.fit_target_module`: noise models x ridge scales,
    stacked by blocked K-fold on the training models); each held-out model is forecast from its observed
    inputs (:func:`~obscale_bayes.forecast.downstream.target_draws`).  No capability fit: the
    inputs are observed, and the cut keeps them fixed.
    """
    t0 = time.perf_counter()
    meta = load_benchmark_metadata() if case.benchmarks is None else case.benchmarks
    scores = to_score_scale(case.models[list(case.inputs)], meta)
    y = case.transform(case.models.loc[case.train, "raw_target"])
    link = case.link if case.link in LINKS else "floored_sigmoid"
    module = fit_target_module(scores[case.train], y, link, **kw)
    draws = target_draws(module, scores[case.test], seed=kw.get("seed", 0))
    return JobResult(case.name, (draws, module.weights), module.diagnostics,
                     time.perf_counter() - t0)  # fmt: skip


def _cut_fits(
    cases: list[BacktestCase], kw: dict, store: JobStore | None, progress: bool
) -> dict[str, JobResult]:
    """:func:`_cut_bayes` of every case, here, one after the other; finished ones from and to
    ``store``."""
    keys = (
        {c.name: store.key("target_module", c.name, c, kw) for c in cases}
        if store is not None
        else {}
    )
    out: dict[str, JobResult] = {}
    for c in cases if store is not None else ():
        stored = store.load(keys[c.name])
        if isinstance(stored, JobResult):
            out[c.name] = replace(stored, from_store=True)
    if out:
        log.info(f"skipped {len(out)} finished jobs from {store.path} (target modules)")
    todo = [c for c in cases if c.name not in out]
    t_cut = time.monotonic()
    for i, c in enumerate(todo, 1):
        with ctrl_c_stops():  # a Ctrl-C never makes a short fit that is kept as finished
            out[c.name] = res = _cut_bayes(c, kw)
        if store is not None:
            store.save(keys[c.name], res, {"kind": "target_module", "name": c.name,
                                           "seconds": f"{res.seconds:.1f}"})  # fmt: skip
        if progress:
            d = res.diagnostics
            what = (f"target module '{c.name}' in {res.seconds:.1f} s (R-hat "
                    f"{d.max_rhat:.3f}, bulk ESS {d.min_ess_bulk:.0f}, {d.divergences} "
                    f"divergences, stacking "
                    f"{ {k: round(w, 2) for k, w in res.value[1].items()} })")  # fmt: skip
            report_progress(log, i, len(todo), what, t_cut)
    return out


def _baseline(case: BacktestCase, method: str, truth: pd.Series) -> pd.DataFrame | None:
    """Per-cell scores of one baseline, or None where it does not apply."""
    train, test = case.train_frame, case.test_frame
    if method != "paper_pca3" and train.log10_flops.isna().all():
        return None  # no compute at all (instruct models): FLOPs methods do not apply
    model = _BASELINES[method](link=case.link).fit(train)
    return metrics.score_points(truth, model.predict(test))


def _score_multi(case: Any, methods: Sequence[str], fits: dict) -> list[tuple[dict, pd.DataFrame]]:
    """Per-task summary rows and cell tables of a multi-task case, for every method it has."""
    out = []
    for method in methods:
        if method not in case.methods:
            continue
        extra, value = {}, None
        if method == "bayes":
            res = fits[case.name]
            value = res.value
            extra = {"max_rhat": res.diagnostics.max_rhat,
                     "divergences": res.diagnostics.divergences,
                     "min_ess_bulk": res.diagnostics.min_ess_bulk}  # fmt: skip
        for task, table in case.score(method, value):
            s = metrics.summarize(table).iloc[0].to_dict()
            row = {"analysis": case.name, "task": task, "method": method, "split": case.split,
                   "n_train": int(case.train.sum()), "n_test": int(table["model"].nunique()),
                   **s, **extra}  # fmt: skip
            out.append((row, table))
    return out


def _multi(case: Any) -> bool:
    """Whether a case scores several tasks itself (the standard preset's
    :class:`~obscale_bayes.evaluation.standard.StandardCase`: ``fit_data()``, ``post(seed)``,
    ``score(method, value) -> [(task, cells)]``, ``methods``)."""
    return all(hasattr(case, a) for a in ("fit_data", "post", "score", "methods"))


def _check_cases(cases: BacktestCase | Sequence[BacktestCase]) -> list[BacktestCase]:
    cases = [cases] if isinstance(cases, BacktestCase) or _multi(cases) else list(cases)
    if not cases or not all(isinstance(c, BacktestCase) or _multi(c) for c in cases):
        raise UsageError("cases: give one or more BacktestCase (evaluation.cases.build_case)")
    names = [c.name for c in cases]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise UsageError(f"cases: two cases are named {dup[0]!r}; give each a unique name")
    return cases


def run_backtests(
    cases: BacktestCase | Sequence[BacktestCase],
    spec: ModelSpec | str | None = None,
    methods: str | Sequence[str] = METHODS,
    *,
    draws: int = 1000,
    tune: int = 1000,
    chains: int = 4,
    seed: int = 0,
    executor: Executor | Any | None = None,
    max_workers: int | None = None,
    progress: bool = True,
    store: JobStore | str | os.PathLike[str] | None = None,
    inference: str = "nuts",
    iterations: int | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Score every method on every case.

    Parameters
    ----------
    cases : BacktestCase or sequence of BacktestCase
        The backtests (unique names).
    spec : ModelSpec or str, optional
        Spec of the Bayesian model (default :data:`BACKTEST_SPEC`).
    methods : str or sequence of str
        From :data:`METHODS` (:func:`parse_methods`).
    draws, tune, chains, seed : int
        Sampling settings of every fit; the same seed gives the same numbers.
    executor : Executor, dask.distributed.Client or None
        Where the fits run (:func:`~obscale_bayes.fit.runner.run_fits`; None = a local process
        pool); ``max_workers`` sizes that pool.
    progress : bool
        Log one line per finished fit and per scored case.
    store : JobStore, folder path or None
        Keep every finished fit there and skip those already kept (see the module docstring);
        None = keep nothing.
    inference : {"nuts", "advi"}
        Inference of the capability fits of multi-task cases (the standard preset; ``"advi"``:
        the approximate mode of :meth:`CapabilityModel.fit`, to compare it with NUTS on the
        same cells).  The single-target cases' fits are NUTS only.  ``iterations``: ADVI's
        optimisation steps (None: the fit's default).

    Returns
    -------
    (summary, cells) : pandas.DataFrame
        One pooled row per (case, method), with ``max_rhat`` and ``divergences`` for the Bayesian
        rows; and one row per (case, method, held-out model).
    """
    cases = _check_cases(cases)
    known = [m for c in cases for m in (c.methods if _multi(c) else METHODS + JOINT_METHOD)]
    methods = parse_methods(methods, tuple(dict.fromkeys(known)))
    if not isinstance(spec, ModelSpec):
        spec = load_spec(spec if spec is not None else BACKTEST_SPEC)
    fits, cuts = {}, {}
    kw = {"draws": draws, "tune": tune, "chains": chains, "seed": seed}
    if inference != "nuts":
        if any(not _multi(c) for c in cases):
            raise UsageError(f"inference: '{inference}' only for the standard preset's cases; "
                             "single-target backtests sample with NUTS")  # fmt: skip
        # only when asked: the NUTS jobs' store keys stay those of earlier runs
        kw_multi = {**kw, "inference": check_inference(inference)}
        if iterations is not None:
            kw_multi["iterations"] = int(iterations)
    else:
        kw_multi = kw
    jobs = [
        FitJob(c.name, c.fit_data(), spec, kw_multi, c.post(seed)) if _multi(c) else
        FitJob(c.name, c.data(c.train, with_target=True), spec, kw,
               partial(_bayes_draws, case=c, seed=seed))
        for c in cases if ("bayes" in methods and _multi(c))
        or ("bayes_joint" in methods and not _multi(c))
    ]  # fmt: skip
    store = as_store(store)
    if jobs:
        fits = run_fits(jobs, executor, max_workers=max_workers, progress=progress, store=store)
    if "bayes" in methods:  # single-target cases: the cut module, small fits run here
        cuts = _cut_fits([c for c in cases if not _multi(c)], kw, store, progress)
    started = time.monotonic()
    rows, cells = [], []
    for i, case in enumerate(cases, 1):
        if _multi(case):  # several tasks, cells labelled by the case (standard preset)
            scored = _score_multi(case, methods, fits)
            rows += [r for r, _ in scored]
            cells += [t.assign(analysis=case.name, method=r["method"]) for r, t in scored]
            if progress:
                line = _case_line(case, [r for r, _ in scored])
                report_progress(log, i, len(cases), line, started)
            continue
        truth = case.truth
        s_rows = []
        for method in methods:
            extra = {}
            if method in ("bayes", "bayes_joint"):
                res = cuts[case.name] if method == "bayes" else fits[case.name]
                value = res.value[0] if method == "bayes" else res.value
                table = metrics.score_draws(truth, value)
                extra = {"max_rhat": res.diagnostics.max_rhat,
                         "divergences": res.diagnostics.divergences,
                         "min_ess_bulk": res.diagnostics.min_ess_bulk}  # fmt: skip
            else:
                table = _baseline(case, method, truth)
                if table is None:
                    continue
            s = metrics.summarize(table).iloc[0].to_dict()
            s_rows.append(
                {"analysis": case.name, "task": case.target, "method": method,
                 "split": case.split, "n_train": int(case.train.sum()),
                 "n_test": int(case.test.sum()), **s, **extra}
            )  # fmt: skip
            cells.append(table.assign(analysis=case.name, method=method, model=truth.index))
        rows += s_rows
        if progress:
            report_progress(log, i, len(cases), _case_line(case, s_rows), started)
    return pd.DataFrame(rows), pd.concat(cells, ignore_index=True)


def _case_line(case: BacktestCase, rows: list[dict]) -> str:
    by = {r["method"]: r for r in rows}
    parts = [f"{case.name}: {int(case.train.sum())} train / {int(case.test.sum())} test"]
    parts += [f"{m} mse {r['mse']:.3g}" for m, r in by.items()]
    if "bayes" in by:
        parts.append(f"bayes 90% coverage {by['bayes']['coverage90']:.2f}")
    return "; ".join(parts)


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
