r"""The methods of the standard preset (:mod:`.standard`), on the score scale.

* ``bayes`` (:func:`bayes_post`, run in the fit's worker): predictive draws of every task's cells,
  from :func:`~obscale_bayes.forecast.compute.forecast_compute` (family + FLOPs) for the compute
  protocols and :func:`~obscale_bayes.forecast.conditional.forecast_from_scores` (the given
  scores, with the model's family and FLOPs) for ``fill_half``.
* ``flops_only`` / ``family_flops`` (:func:`compute_baseline`): per benchmark :math:`b`,
  :class:`~.baselines.FlopsOnly` / :class:`~.baselines.FamilyInterceptFlops` with the floored
  sigmoid :math:`g + (1 - g)\,\mathrm{sigmoid}(\cdot)`, :math:`g \in [0, c_b + m]` (:math:`c_b` the
  benchmark's chance floor on the score scale, :math:`m` the case's ``floor_margin``), fitted on
  the training models that have :math:`b` and known FLOPs.
* ``least_squares`` (:func:`fill_baseline`): per blank benchmark :math:`b` and per set
  :math:`G` of given scores a test model has, ordinary least squares
  :math:`y_b = \beta_0 + \sum_{j \in G} \beta_j y_j` over the training models that have
  :math:`b` and all of :math:`G`; the prediction is clipped to the metric range [0, 1].
* ``paper_pca3`` (:func:`fill_baseline`): the paper's PCA imputation
  (:class:`~.pca.PCAImputer`, rank 1 as in the paper's code and
  :class:`~.baselines.PaperPCAMethod`), fitted on the training models' scores of every
  benchmark of the task, imputing each test model's blanks from its given scores with the fitted
  standardization and components held fixed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from obscale_bayes.data.tables import BenchmarkData
from obscale_bayes.errors import UsageError
from obscale_bayes.evaluation.baselines import FamilyInterceptFlops, FlopsOnly, TrainingFrame
from obscale_bayes.evaluation.pca import PCAImputer
from obscale_bayes.forecast.compute import forecast_compute
from obscale_bayes.forecast.conditional import forecast_from_scores

if TYPE_CHECKING:  # pragma: no cover
    from obscale_bayes.evaluation.standard import StandardCase, Task
    from obscale_bayes.fit.fitted import CapabilityModel

__all__ = ["PCA_IMPUTE_RANK", "bayes_post", "compute_baseline", "fill_baseline", "least_squares"]

PCA_IMPUTE_RANK = 1
"""Rank of ``paper_pca3``'s imputation: the paper's (fixed a priori, not tuned on test models)."""


def _score_scale(table: BenchmarkData) -> pd.DataFrame:
    b = table.benchmarks.set_index("benchmark")
    w = table.wide()
    return (w - b["metric_min"]) / (b["metric_max"] - b["metric_min"])


def _pick(draws: np.ndarray, models: list[str], benches: list[str], cells: pd.DataFrame):
    """Columns of ``draws`` (S, M, J) at the cells' (model, benchmark), as (S, n_cells)."""
    mi = {m: i for i, m in enumerate(models)}
    bi = {b: i for i, b in enumerate(benches)}
    return draws[:, cells["model"].map(mi).to_numpy(), cells["benchmark"].map(bi).to_numpy()]


def bayes_post(fit: CapabilityModel, case: StandardCase, seed: int) -> dict[str, np.ndarray]:
    """Worker side: ``{task label: draws (n_draws, n_cells)}`` on the score scale.

    The draws are the forecasts' predictive scores (benchmark noise and misfit included),
    rescaled by each benchmark's metric range.
    """
    pa = fit.posterior
    lo, hi = np.asarray(pa.metric_min), np.asarray(pa.metric_max)
    meta = case.table.models.set_index("model")
    out = {}
    for task in case.tasks:
        cells = case.cells(task)
        models = list(dict.fromkeys(cells["model"]))
        if task.given:
            new = _given_table(case.table, models, task.given)
            fc = forecast_from_scores(fit, new, seed=seed)
            names = [str(m) for m in fc.draws["model"].values]
        else:
            targets = [(str(meta.loc[m, "family"]), float(meta.loc[m, "flops_1e21"]) * 1e21)
                       for m in models]  # fmt: skip
            fc = forecast_compute(fit, targets, seed=seed)
            names = models  # forecast_compute keeps the targets' order
        d = fc.draws.transpose("sample", "model", "benchmark").to_numpy()
        d = (d - lo) / (hi - lo)
        out[task.label] = _pick(d, names, pa.benchmark_ids, cells)
    return out


def _given_table(table: BenchmarkData, models: list[str], given: tuple[str, ...]) -> BenchmarkData:
    """The test models with only their given scores (no blank cell is seen)."""
    m = table.models[table.models["model"].isin(models)]
    s = table.scores[table.scores["model"].isin(models) & table.scores["benchmark"].isin(given)]
    return BenchmarkData(m, s, table.benchmarks, source=f"{table.source} (given scores)")


def _max_floor(table: BenchmarkData, bench: str, margin: float) -> float:
    b = table.benchmarks.set_index("benchmark").loc[bench]
    floor = float(b["floor"]) if np.isfinite(b["floor"]) else float(b["metric_min"])
    c = (floor - float(b["metric_min"])) / (float(b["metric_max"]) - float(b["metric_min"]))
    return float(np.clip(c + margin, margin, 0.95))


def compute_baseline(case: StandardCase, cells: pd.DataFrame, method: str) -> np.ndarray:
    """Point forecasts of a FLOPs baseline (``flops_only``, ``family_flops``) at ``cells``."""
    cls = {"flops_only": FlopsOnly, "family_flops": FamilyInterceptFlops}.get(method)
    if cls is None:
        raise UsageError(f"methods: {method!r} is not a compute-only baseline")
    w = _score_scale(case.table)
    meta = case.table.models.set_index("model")
    log10_flops = np.log10(pd.to_numeric(meta["flops_1e21"], errors="coerce")) + 21.0
    out = np.full(len(cells), np.nan)
    train = case.train_ids
    for bench, g in cells.groupby("benchmark", sort=False):
        y = w.loc[train, bench].dropna()
        frame = TrainingFrame(pd.DataFrame(index=y.index), y, meta.loc[y.index, "family"],
                              log10_flops.loc[y.index])  # fmt: skip
        model = cls(
            link="floored_sigmoid", max_floor=_max_floor(case.table, bench, case.floor_margin)
        )
        model.fit(frame)
        ids = g["model"].to_numpy()
        test = TrainingFrame(pd.DataFrame(index=ids), None, meta.loc[ids, "family"],
                             log10_flops.loc[ids])  # fmt: skip
        out[g.index.to_numpy()] = model.predict(test)
    return out


def least_squares(x: np.ndarray, y: np.ndarray, x_new: np.ndarray) -> np.ndarray:
    r"""Ordinary least squares with an intercept, :math:`\hat\beta = \arg\min \|y - [1, X]\beta\|^2`,
    evaluated at ``x_new`` (rows), unclipped."""
    x, y, x_new = (np.asarray(a, dtype=float) for a in (x, y, x_new))
    if len(y) < x.shape[1] + 1:
        raise UsageError(
            f"least_squares: {len(y)} training models for {x.shape[1]} given scores; need "
            f"at least {x.shape[1] + 1}"
        )
    beta = np.linalg.lstsq(np.column_stack([np.ones(len(y)), x]), y, rcond=None)[0]
    return beta[0] + x_new @ beta[1:]


def fill_baseline(case: StandardCase, task: Task, cells: pd.DataFrame, method: str) -> np.ndarray:
    """Point forecasts of ``least_squares`` or ``paper_pca3`` at the blank ``cells`` of ``task``."""
    w = _score_scale(case.table)
    train = w.loc[case.train_ids]
    given, blank = list(task.given), list(task.blank)
    models = list(dict.fromkeys(cells["model"]))
    test = w.loc[models, given]
    out = np.full(len(cells), np.nan)
    if method == "paper_pca3":
        cols = given + blank
        imp = PCAImputer(PCA_IMPUTE_RANK).fit(train[cols].to_numpy())
        x = pd.DataFrame(np.nan, index=models, columns=cols)
        x[given] = test
        filled = pd.DataFrame(imp.transform(x.to_numpy()), index=models, columns=cols)
        return filled.stack().reindex(pd.MultiIndex.from_frame(cells[["model", "benchmark"]]))\
            .to_numpy()  # fmt: skip
    if method != "least_squares":
        raise UsageError(f"methods: {method!r} is not a fill-in-the-blanks baseline")
    pattern = test.notna().apply(lambda r: tuple(test.columns[r.to_numpy()]), axis=1)
    for (m, bench), i in zip(
        zip(cells["model"], cells["benchmark"], strict=True), cells.index, strict=True
    ):
        cols = list(pattern[m])
        ok = train[cols + [bench]].dropna()
        pred = least_squares(ok[cols].to_numpy(), ok[bench].to_numpy(),
                             test.loc[[m], cols].to_numpy())  # fmt: skip
        out[i] = float(np.clip(pred[0], 0.0, 1.0))
    return out
