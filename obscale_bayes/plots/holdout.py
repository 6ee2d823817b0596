"""Backtest figures for notebooks: held-out forecasts along compute, and calibration curves.

Both take the per-cell frame of :func:`obscale_bayes.evaluation.backtest.run_backtests` (one row
per case x method x held-out model, with ``analysis, method, model, y, mean, median, lower{L},
upper{L}, covered{L}``).

* :func:`plot_holdout` -- per case: the training models' observed target, the held-out models'
  actual values and the Bayesian forecasts (median and 90% interval) against log10 training FLOPs
  (or, where FLOPs are unknown, the models' mean input-benchmark score), with a baseline's
  point forecasts for comparison;
* :func:`coverage_table` / :func:`plot_calibration` -- empirical vs nominal coverage of the
  central predictive intervals, pooled (as :func:`obscale_bayes.evaluation.metrics.calibration_curve`)
  and per case, with the band a calibrated forecaster's coverage would fall in (+-2 binomial
  standard errors for the number of cells).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from obscale_bayes.errors import UsageError
from obscale_bayes.evaluation.metrics import LEVELS
from obscale_bayes.model.equations import LOG10_FLOPS_UNIT
from obscale_bayes.plots.common import save_figure

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

    from obscale_bayes.evaluation.cases import BacktestCase

__all__ = ["case_x", "coverage_table", "plot_calibration", "plot_holdout"]


def _need(cells: pd.DataFrame, cols: Sequence[str], what: str) -> None:
    if not isinstance(cells, pd.DataFrame) or cells.empty:
        raise UsageError(f"{what}: cells must be a non-empty frame from run_backtests")
    missing = [c for c in cols if c not in cells.columns]
    if missing:
        raise UsageError(f"{what}: cells lack column(s) {missing}; pass run_backtests' cells")


def coverage_table(
    cells: pd.DataFrame, levels: Sequence[int] = LEVELS, method: str = "bayes"
) -> pd.DataFrame:
    """Empirical coverage of each central interval level, per analysis and pooled.

    Returns
    -------
    pandas.DataFrame
        One row per (analysis, level): ``analysis, nominal, empirical, n``; the pooled rows have
        ``analysis == "pooled"``.
    """
    cols = ["analysis", "method"] + [f"covered{lv}" for lv in levels]
    _need(cells, cols, "coverage_table")
    c = cells[cells["method"] == method]
    if c.empty:
        raise UsageError(f"coverage_table: no cells of method {method!r}")
    rows = []
    groups = [(str(a), g) for a, g in c.groupby("analysis", sort=False)] + [("pooled", c)]
    for name, g in groups:
        for lv in levels:
            v = g[f"covered{lv}"].dropna()
            rows.append({"analysis": name, "nominal": lv / 100, "empirical": v.mean(),
                         "n": int(len(v))})  # fmt: skip
    return pd.DataFrame(rows)


def plot_calibration(
    cells: pd.DataFrame,
    levels: Sequence[int] = LEVELS,
    method: str = "bayes",
    path: str | os.PathLike[str] | None = None,
) -> Figure:
    """Calibration curve: empirical vs nominal coverage of the central predictive intervals.

    The pooled curve is :func:`obscale_bayes.evaluation.metrics.calibration_curve` (the one the
    ``backtest`` figure draws); thin lines are the cases (analyses) one by one; the shaded band
    is ``nominal +- 2 sqrt(nominal (1 - nominal) / n)`` for the ``n`` pooled cells.

    Returns
    -------
    matplotlib.figure.Figure
        One axes: the diagonal, the band, one line per analysis (when there are several) and
        the pooled line (last).
    """
    from matplotlib.figure import Figure

    from obscale_bayes.evaluation.metrics import calibration_curve

    tab = coverage_table(cells, levels, method)
    pooled = calibration_curve(cells[cells["method"] == method].assign(method="bayes"), levels)
    n = int(tab.loc[tab["analysis"] == "pooled", "n"].max())
    fig = Figure(figsize=(5.2, 4.6), layout="constrained")
    ax = fig.subplots()
    nom = np.linspace(0.0, 1.0, 101)
    se = np.sqrt(nom * (1 - nom) / max(n, 1))
    ax.fill_between(nom, nom - 2 * se, nom + 2 * se, color="0.88", lw=0,
                    label="±2 s.e. of a calibrated forecaster")  # fmt: skip
    ax.plot([0, 1], [0, 1], color="0.5", ls="--", lw=1)
    names = [a for a in dict.fromkeys(tab["analysis"]) if a != "pooled"]
    if len(names) > 1:
        for i, a in enumerate(names):
            t = tab[tab["analysis"] == a]
            ax.plot(t["nominal"], t["empirical"], "o-", color=f"C{(i + 1) % 10}", lw=0.8, ms=3,
                    alpha=0.7, label=f"{a} ({int(t['n'].max())} cells)")  # fmt: skip
    ax.plot(pooled["nominal"], pooled["empirical"], "o-", color="C0", lw=2.2, ms=6,
            label=f"pooled ({n} cells)")  # fmt: skip
    lo = min(levels) / 100
    ax.set(xlim=(max(0.0, lo - 0.1), 1.0), ylim=(0.0, 1.02), xlabel="nominal coverage",
           ylabel="empirical coverage of held-out values",
           title=f"Calibration of the {method} predictive intervals")  # fmt: skip
    ax.grid(True, color="0.92", lw=0.6)
    ax.legend(fontsize=7, loc="lower right")
    if path is not None:
        save_figure(fig, path)
    return fig


def case_x(case: BacktestCase) -> tuple[pd.Series, str]:
    """The x axis of a case's held-out plot, per model: log10 FLOPs, or the mean input score.

    log10 training FLOPs when every model of the case has them; otherwise (instruct models,
    whose compute is not public) the mean of the model's input-benchmark scores.
    """
    flops = pd.to_numeric(case.models["flops_1e21"], errors="coerce")
    if flops.notna().all() and (flops > 0).all():
        return np.log10(flops) + LOG10_FLOPS_UNIT, "log10 training FLOPs"
    return case.models[list(case.inputs)].mean(axis=1), "mean score on the input benchmarks"


def plot_holdout(
    cases: BacktestCase | Sequence[BacktestCase],
    cells: pd.DataFrame,
    level: int = 90,
    baseline: str | None = "paper_pca3",
    ncols: int = 3,
    path: str | os.PathLike[str] | None = None,
) -> Figure:
    """Held-out forecasts vs the truth, one panel per case, along compute.

    Each panel shows the case's training models (grey points: observed target), its held-out
    models' actual values (black stars), the Bayesian forecasts for them (median and ``level``%
    interval, blue) and, if ``baseline`` names a method in ``cells``, that method's point
    forecasts (crosses).  Values are on the case's transformed target scale,
    ``(y - chance) / (max - chance)``.  The title reports the Bayesian MSE and coverage.

    Returns
    -------
    matplotlib.figure.Figure
        One axes per case.
    """
    from matplotlib.figure import Figure

    cases = [cases] if not isinstance(cases, Sequence) else list(cases)
    if not cases:
        raise UsageError("plot_holdout: give at least one backtest case")
    _need(cells, ["analysis", "method", "model", "y", "median", f"lower{level}",
                  f"upper{level}", f"covered{level}"], "plot_holdout")  # fmt: skip
    ncols = max(1, min(ncols, len(cases)))
    nrows = math.ceil(len(cases) / ncols)
    fig = Figure(figsize=(4.3 * ncols, 3.7 * nrows + 0.5), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax in axes[len(cases) :]:
        ax.set_visible(False)
    for ax, case in zip(axes, cases, strict=False):
        x, xlabel = case_x(case)
        c = cells[cells["analysis"] == case.name]
        b = c[c["method"] == "bayes"].set_index("model")
        if b.empty:
            raise UsageError(f"plot_holdout: cells have no Bayesian rows for {case.name!r}")
        tr = case.models.index[case.train]
        ax.scatter(x[tr], case.transform(case.models.loc[tr, "raw_target"]), s=14, color="0.55",
                   label="training models (observed)")  # fmt: skip
        xb = x[b.index].to_numpy()
        err = np.vstack([b["median"] - b[f"lower{level}"], b[f"upper{level}"] - b["median"]])
        ax.errorbar(xb, b["median"], yerr=err.clip(min=0), fmt="o", color="C0", ms=5, capsize=3,
                    elinewidth=1.2, label=f"forecast: median, {level}% interval")  # fmt: skip
        ax.scatter(xb, b["y"], marker="*", s=70, color="black", zorder=4,
                   label="held-out models (actual)")  # fmt: skip
        if baseline is not None:
            p = c[c["method"] == baseline].set_index("model")
            if len(p):
                ax.scatter(x[p.index], p["mean"], marker="x", s=30, color="C3", zorder=4,
                           label=f"{baseline} (point forecast)")  # fmt: skip
        mse = float(np.mean((b["mean"] - b["y"]) ** 2))
        cov = float(b[f"covered{level}"].mean())
        ax.set_title(f"{case.name}: {len(b)} held out\nMSE {mse:.2g}, {level}% coverage "
                     f"{cov:.2f}", fontsize=9)  # fmt: skip
        ax.set_xlabel(xlabel, fontsize=9)
        ax.set_ylabel(f"{case.target[:28]} (transformed)", fontsize=8)
        ax.grid(True, color="0.92", lw=0.6)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=4, fontsize=8, frameon=False)
    fig.suptitle("Fitted on weaker models, forecast for stronger ones", fontsize=11)
    if path is not None:
        save_figure(fig, path)
    return fig
