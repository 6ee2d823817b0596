r"""K-fold cross-validation of a spec: refit without each fold, score the held-out cells.

Each model's capabilities rest on its own handful of scores, so PSIS-LOO is unreliable for many
cells (Pareto :math:`\hat k > 0.7`; see :mod:`obscale_bayes.checks.comparison`).  K-fold
refits instead: :func:`kfold_assign` deals each model's cells to the folds, :func:`kfold_elpd`
refits the spec once per fold and scores every held-out cell with :func:`cell_log_density`,
and :func:`kfold_compare` compares specs on the same folds (paired standard errors).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import logsumexp

from obscale_bayes.checks.ppc import cell_params
from obscale_bayes.data.tables import BenchmarkData
from obscale_bayes.errors import UsageError
from obscale_bayes.fit.fitted import CapabilityModel
from obscale_bayes.model.equations import observation_logpdf_np

__all__ = ["cell_log_density", "kfold_assign", "kfold_compare", "kfold_elpd"]


def cell_log_density(fit: CapabilityModel, scores: pd.DataFrame) -> np.ndarray:
    r"""Log predictive density of scores the fit did not see, for models it did see.

    :math:`\log \frac1S \sum_s f\big(y_i \mid p_i^{(s)}, \mathrm{sd}_i^{(s)}\big)` for each row of
    ``scores`` (columns ``model, benchmark, value`` in metric units, as in
    :class:`~obscale_bayes.data.BenchmarkData`): the cell's model keeps its posterior
    capabilities, so this is the density of a held-out cell in K-fold cross-validation.  ``f``
    is the model's likelihood (:mod:`obscale_bayes.model.equations`).

    Raises
    ------
    UsageError
        A model or benchmark the fit does not know.
    """
    inp = fit.inputs
    m_pos = {m: i for i, m in enumerate(inp.model_ids)}
    b_pos = {b: i for i, b in enumerate(inp.benchmark_ids)}
    unknown = sorted(set(scores["model"]) - set(m_pos)) + sorted(
        set(scores["benchmark"]) - set(b_pos)
    )
    if unknown:
        raise UsageError(f"cell_log_density: the fit does not know {unknown[:5]}")
    om = scores["model"].map(m_pos).to_numpy()
    ob = scores["benchmark"].map(b_pos).to_numpy()
    y = (scores["value"].to_numpy(dtype=float) - inp.metric_min[ob]) / (
        inp.metric_max[ob] - inp.metric_min[ob]
    )
    p, sd = cell_params(fit, fit.idata["posterior"].dataset, om, ob)
    ll = observation_logpdf_np(y, p, sd, fit.spec.structure).reshape(-1, len(y))
    return logsumexp(ll, axis=0) - np.log(ll.shape[0])


def kfold_assign(data: BenchmarkData, folds: int = 5, seed: int = 0) -> pd.Series:
    """Fold of every score cell (index = ``data.scores`` rows), spread within each model.

    Each model's cells are shuffled and dealt round-robin to the folds (starting at a random
    fold), so every fit keeps most of every model's scores and the held-out cells of a model
    are predicted from its posterior capabilities.  Models with a single cell are never held
    out (fold -1): without other scores the model would drop out of the fit.
    """
    if int(folds) < 2:
        raise UsageError(f"kfold: folds must be >= 2, got {folds}")
    rng = np.random.default_rng(seed)
    fold = pd.Series(-1, index=data.scores.index, dtype=int)
    for _, rows in data.scores.groupby("model", sort=True).groups.items():
        if len(rows) < 2:
            continue
        idx = rng.permutation(np.asarray(rows))
        fold.loc[idx] = (np.arange(len(idx)) + rng.integers(folds)) % int(folds)
    return fold


def kfold_elpd(
    data: BenchmarkData,
    spec: Any,
    *,
    folds: int = 5,
    fold_seed: int = 0,
    **fit_kwargs: Any,
) -> pd.DataFrame:
    r"""K-fold cross-validated log predictive density of every score cell.

    For each fold the spec is refitted without the fold's cells, and each held-out cell gets
    :math:`\mathrm{elpd}_i = \log \frac1S\sum_s p(y_i \mid \theta^{(s)})`
    (:func:`cell_log_density`).  Unlike PSIS-LOO it does not
    rely on importance sampling, so it holds where Pareto k is large; it costs ``folds`` fits.

    Returns
    -------
    pandas.DataFrame
        One row per held-out cell: ``model, benchmark, fold, elpd``.  ``attrs`` holds each
        fold fit's convergence gate (``gates``).
    """
    fold = kfold_assign(data, folds, fold_seed)
    parts, gates = [], []
    for k in range(int(folds)):
        test = data.scores[fold == k]
        train = BenchmarkData(
            data.models, data.scores[fold != k], data.benchmarks, source=data.source
        )
        fit = CapabilityModel.fit(train, spec, **fit_kwargs)
        gates.append(bool(fit.diagnostics.passed))
        parts.append(
            pd.DataFrame(
                {
                    "model": test["model"].to_numpy(),
                    "benchmark": test["benchmark"].to_numpy(),
                    "fold": k,
                    "elpd": cell_log_density(fit, test),
                }
            )
        )
        del fit
    out = pd.concat(parts, ignore_index=True)
    out.attrs["gates"] = gates
    return out


def kfold_compare(results: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Compare :func:`kfold_elpd` results of several specs on the same folds, best first.

    Columns ``elpd, se`` (``sqrt(n var(elpd_i))``), ``elpd_diff`` (to the best, <= 0) and
    ``dse`` (standard error of the paired difference), ``n_cells``.
    """
    if len(results) < 2:
        raise UsageError("kfold_compare: give at least two results")
    key = ["model", "benchmark"]
    wide = None
    for name, r in results.items():
        col = r.set_index(key)["elpd"].rename(name)
        wide = col.to_frame() if wide is None else wide.join(col, how="inner")
    if any(len(r) != len(wide) for r in results.values()):
        raise UsageError("kfold_compare: the results hold different cells; use the same folds")
    n = len(wide)
    tot = wide.sum()
    best = str(tot.idxmax())
    rows = []
    for name in wide.columns:
        d = wide[name] - wide[best]
        rows.append(
            {
                "fit": name,
                "elpd": float(tot[name]),
                "se": float(np.sqrt(n * wide[name].var(ddof=1))),
                "elpd_diff": float(d.sum()),
                "dse": float(np.sqrt(n * d.var(ddof=1))),
                "n_cells": n,
            }
        )
    return pd.DataFrame(rows).set_index("fit").sort_values("elpd", ascending=False)
