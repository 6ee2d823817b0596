r"""Figures of the posterior checks: PPC panels, PIT / LOO-PIT ECDFs, LOO by model, comparison.

All figures are :class:`matplotlib.figure.Figure` objects built without pyplot (as in
:mod:`obscale_bayes.plots.scaling`), so they render inline in a notebook and never touch global state.

PIT ECDF plots show :math:`\hat F(u) - u` (ECDF of the PIT values minus the uniform CDF) with
the simultaneous 95% band of the Dvoretzky-Kiefer-Wolfowitz inequality,
:math:`\pm\sqrt{\log(2/0.05)/(2n)}`: a calibrated model's curve stays inside the band over the
whole of [0, 1] with probability at least 95%.  A curve that rises then falls (bump above 0 at
low u) means observations sit too often in the lower tail of their predictive distributions;
an S-shape means the predictive distributions are too wide (inverted S: too narrow).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from numpy.typing import ArrayLike
from scipy import stats

from obscale_bayes.checks.comparison import PARETO_K_BAD, loo_by_model
from obscale_bayes.checks.ppc import loo_pit_values, pit_values, posterior_predictive
from obscale_bayes.errors import UsageError
from obscale_bayes.plots.common import pick

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes

    from obscale_bayes.fit.fitted import CapabilityModel

__all__ = ["dkw_band", "plot_compare", "plot_loo_by_model", "plot_pit", "plot_ppc"]

_OBS = "#1f3b73"
_REP = "#e07b39"


def _grid(n: int, ncols: int, w: float = 3.2, h: float = 2.5) -> tuple[Figure, list[Axes]]:
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    fig = Figure(figsize=(w * ncols, h * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel().tolist()
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes[:n]


def plot_ppc(
    fit: CapabilityModel,
    *,
    n_draws: int = 50,
    benchmarks: Sequence[str] | None = None,
    seed: int = 0,
    ncols: int = 4,
) -> Figure:
    """Posterior predictive check per benchmark: observed vs replicated score densities.

    Each panel shows the histogram and kernel density of the observed scores of one benchmark
    (all models) and the densities of ``n_draws`` replicated data sets (same cells, one
    posterior draw each).
    """
    rep = posterior_predictive(fit, seed=seed)
    y = fit.idata["observed_data"].dataset["score"].to_numpy()
    bench = rep["obs_benchmark"].to_numpy().astype(str)
    rng = np.random.default_rng(seed)
    draw_idx = rng.choice(
        rep.sizes["sample"], size=min(int(n_draws), rep.sizes["sample"]), replace=False
    )
    r = rep.to_numpy()[draw_idx]
    names = pick(benchmarks, list(fit.inputs.benchmark_ids), "benchmark")
    fig, axes = _grid(len(names), ncols)
    for ax, b in zip(axes, names, strict=True):
        sel = bench == b
        yb, rb = y[sel], r[:, sel]
        lo, hi = min(yb.min(), np.quantile(rb, 0.001)), max(yb.max(), np.quantile(rb, 0.999))
        grid = np.linspace(lo - 0.02, hi + 0.02, 200)
        ax.hist(yb, bins=20, density=True, color=_OBS, alpha=0.25, label="observed")
        for i, row in enumerate(rb):
            if np.ptp(row) > 0:
                ax.plot(grid, stats.gaussian_kde(row)(grid), color=_REP, lw=0.6, alpha=0.25,
                        label="replicated" if i == 0 else None)  # fmt: skip
        if sel.sum() > 1 and np.ptp(yb) > 0:
            ax.plot(grid, stats.gaussian_kde(yb)(grid), color=_OBS, lw=1.8)
        ax.set_title(f"{b} (n = {int(sel.sum())})", fontsize=9)
        ax.set_xlabel("score (rescaled to [0, 1])", fontsize=8)
        ax.set_yticks([])
    axes[0].legend(fontsize=7, loc="upper right")
    fig.suptitle(f"posterior predictive check: '{fit.spec.name}'", fontsize=10)
    return fig


def dkw_band(n: int, alpha: float = 0.05) -> float:
    """Half-width of the simultaneous ``1 - alpha`` DKW band of an ECDF of ``n`` values."""
    if n < 1:
        raise UsageError("dkw_band: n must be >= 1")
    return float(np.sqrt(np.log(2.0 / alpha) / (2.0 * n)))


def _ecdf_diff(ax: Axes, u: ArrayLike, title: str, color: str = _OBS) -> None:
    u = np.sort(np.asarray(u, dtype=float))
    n = len(u)
    grid = np.linspace(0.0, 1.0, 201)
    diff = np.searchsorted(u, grid, side="right") / n - grid
    eps = dkw_band(n)
    ax.fill_between(grid, -eps, eps, color="0.85", lw=0)
    ax.axhline(0.0, color="0.5", lw=0.6)
    ax.plot(grid, diff, color=color, lw=1.4)
    ks = stats.kstest(u, "uniform")
    ax.set_title(f"{title}\nn = {n}, KS = {ks.statistic:.3f} (p = {ks.pvalue:.2g})", fontsize=8)
    ax.set_xlim(0, 1)
    ax.set_xlabel("PIT value u", fontsize=8)


def plot_pit(
    fit: CapabilityModel,
    *,
    kind: str = "loo",
    benchmarks: Sequence[str] | None = None,
    ncols: int = 5,
) -> Figure:
    """ECDF-difference plots of PIT values (all cells, then one panel per benchmark).

    Parameters
    ----------
    kind : {"loo", "ppc"}
        LOO-PIT (:func:`~obscale_bayes.posterior_checks.loo_pit_values`; uniform for a
        calibrated model) or posterior predictive PIT (bunched towards 0.5 even for a correct
        model, since each cell is used twice).
    """
    if kind not in ("loo", "ppc"):
        raise UsageError(f"plot_pit: kind must be 'loo' or 'ppc', got {kind!r}")
    vals = loo_pit_values(fit) if kind == "loo" else pit_values(fit)
    bench = vals["obs_benchmark"].to_numpy().astype(str)
    u = vals.to_numpy()
    names = pick(benchmarks, list(fit.inputs.benchmark_ids), "benchmark")
    fig, axes = _grid(len(names) + 1, ncols, w=2.8, h=2.4)
    label = "LOO-PIT" if kind == "loo" else "PIT"
    _ecdf_diff(axes[0], u, f"all cells ({label})", color="black")
    axes[0].set_ylabel("ECDF - uniform", fontsize=8)
    for ax, b in zip(axes[1:], names, strict=True):
        _ecdf_diff(ax, u[bench == b], b)
    fig.suptitle(
        f"{label} ECDF minus uniform, 95% simultaneous band: '{fit.spec.name}'", fontsize=10
    )
    return fig


def plot_loo_by_model(fit: CapabilityModel, *, n: int = 20) -> Figure:
    """The ``n`` worst-explained models: elpd excess per cell, hollow where a Pareto k > 0.7."""
    df = loo_by_model(fit).head(int(n)).iloc[::-1]
    fig = Figure(figsize=(7.5, 0.28 * len(df) + 1.2), layout="constrained")
    ax = fig.subplots()
    y = np.arange(len(df))
    bad = df["max_pareto_k"].to_numpy() > PARETO_K_BAD
    x = df["excess_per_cell"].to_numpy()
    ax.hlines(y, 0, x, color="0.7", lw=1)
    ax.scatter(x[~bad], y[~bad], color=_OBS, zorder=3, label=f"all Pareto k <= {PARETO_K_BAD}")
    ax.scatter(x[bad], y[bad], facecolor="white", edgecolor=_REP, zorder=3,
               label=f"some Pareto k > {PARETO_K_BAD} (estimate unreliable)")  # fmt: skip
    labels = [f"{m} [{w}]" for m, w in zip(df["model"], df["worst_benchmark"], strict=True)]
    ax.set_yticks(y, labels, fontsize=7)
    ax.axvline(0, color="0.5", lw=0.6)
    ax.set_xlabel("mean elpd_loo per cell minus the benchmark's median (nats)", fontsize=8)
    ax.set_title(f"worst-explained models, '{fit.spec.name}' [worst benchmark]", fontsize=9)
    ax.legend(fontsize=7, loc="lower left")
    return fig


def plot_compare(table: pd.DataFrame) -> Figure:
    """elpd_loo of each fit (+-SE, filled) and its difference to the best (+-dse, hollow).

    ``table`` is a :func:`~obscale_bayes.model_comparison.compare_fits` (or
    :func:`arviz.compare`) table.
    """
    need = {"elpd", "se", "elpd_diff", "dse"}
    if not need <= set(table.columns):
        raise UsageError(
            f"plot_compare: the table lacks columns {sorted(need - set(table.columns))}"
        )
    t = table.sort_values("elpd")
    fig = Figure(figsize=(6.5, 0.45 * len(t) + 1.3), layout="constrained")
    ax = fig.subplots()
    y = np.arange(len(t))
    best = t["elpd"].max()
    ax.errorbar(t["elpd"], y, xerr=t["se"], fmt="o", color=_OBS, capsize=3, label="elpd_loo +- SE")
    ax.errorbar(best - t["elpd_diff"].to_numpy(), y - 0.2, xerr=t["dse"], fmt="o", mfc="white",
                color=_REP, capsize=3, label="best - elpd_diff +- dse")  # fmt: skip
    ax.axvline(best, color="0.5", lw=0.6, ls="--")
    ax.set_yticks(y, [str(i) for i in t.index])
    ax.set_xlabel("elpd_loo (nats, higher is better)")
    ax.legend(fontsize=7, loc="lower right")
    ax.set_title("PSIS-LOO model comparison", fontsize=10)
    return fig
