r"""Figures of the fitted parameters: family efficiencies and loadings.

Each figure has a tidy-table twin that holds exactly the numbers it draws:

* :func:`efficiency_table` / :func:`plot_efficiency_forest` -- family efficiencies
  :math:`a_{fk}` (the capability a family reaches at :math:`x = 0`, i.e. at
  :math:`10^{21 + x_0}` FLOPs), sorted, against the population mean :math:`\mu^a_k`;
* :func:`release_table` / :func:`plot_efficiency_by_release` -- the same efficiencies against
  each family's release date (the median date of its models with one), with a least-squares
  trend per capability: whether newer training recipes reach more capability per FLOP than
  the model's exchangeable families assume;
* :func:`loadings_table` / :func:`plot_loadings` -- the benchmark x capability loadings
  :math:`\lambda_{jk}` as a heat map of posterior medians, annotated with posterior sds and
  hatched where the central interval contains 0.

Capabilities vs compute are drawn by :mod:`obscale_bayes.plots.posterior`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from obscale_bayes.model.inputs import family_release_years
from obscale_bayes.plots.common import (
    coord_values,
    display_names,
    pick,
    posterior_draws,
    quantiles,
    save_figure,
)
from obscale_bayes.validation import check_ci

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

    from obscale_bayes.fit.fitted import CapabilityModel

__all__ = [
    "efficiency_table",
    "loadings_table",
    "plot_efficiency_by_release",
    "plot_efficiency_forest",
    "plot_loadings",
    "release_table",
]


def efficiency_table(fit: CapabilityModel, ci: float = 0.9) -> pd.DataFrame:
    r"""Family efficiencies :math:`a_{fk}` and the population mean :math:`\mu^a_k`.

    Returns
    -------
    pandas.DataFrame
        One row per (family, factor): ``family, factor, n_models, median, lower, upper,
        lower50, upper50, pop_median, pop_lower, pop_upper, ci`` (``pop_*``: posterior of the
        population mean efficiency of that factor).
    """
    ci = check_ci(ci)
    fams, facs = coord_values(fit, "family"), coord_values(fit, "factor")
    a = posterior_draws(fit, "efficiency", "family", "factor")
    mu = posterior_draws(fit, "efficiency_mean", "factor")
    med, lo, hi = quantiles(a, ci)
    _, lo50, hi50 = quantiles(a, 0.5)
    pm_, pl, ph = quantiles(mu, ci)
    n = fit.data.models["family"].value_counts()
    rows = [
        {"family": f, "factor": k, "n_models": int(n.get(f, 0)), "median": med[i, j],
         "lower": lo[i, j], "upper": hi[i, j], "lower50": lo50[i, j], "upper50": hi50[i, j],
         "pop_median": pm_[j], "pop_lower": pl[j], "pop_upper": ph[j], "ci": ci}
        for i, f in enumerate(fams) for j, k in enumerate(facs)
    ]  # fmt: skip
    return pd.DataFrame(rows)


def plot_efficiency_forest(
    fit: CapabilityModel,
    factors: str | Sequence[str] | None = None,
    families: str | Sequence[str] | None = None,
    ci: float = 0.9,
    path: str | os.PathLike[str] | None = None,
) -> Figure:
    """Forest plot of family efficiencies, per capability, sorted, with the population mean band.

    Each panel shows one capability: every family's posterior median (point), 50% interval
    (thick line) and ``ci`` interval (thin line), sorted by the median, and the population mean
    efficiency's median (vertical line) and ``ci`` interval (shaded).  Families with one model
    are drawn in grey: their efficiency is mostly the population's (partial pooling).

    Returns
    -------
    matplotlib.figure.Figure
    """
    from matplotlib.figure import Figure

    ci = check_ci(ci)
    facs = pick(factors, coord_values(fit, "factor"), "factor")
    fams = pick(families, coord_values(fit, "family"), "family")
    tab = efficiency_table(fit, ci)
    tab = tab[tab["family"].isin(fams)]
    names = display_names(fit)
    x0 = float(fit.spec.structure["x0"])
    fig = Figure(figsize=(3.8 * len(facs), 1.2 + 0.22 * len(fams)), layout="constrained")
    axes = fig.subplots(1, len(facs), squeeze=False).ravel()
    for ax, fac in zip(axes, facs, strict=True):
        t = tab[tab["factor"] == fac].sort_values("median").reset_index(drop=True)
        y = np.arange(len(t))
        pooled = (t["n_models"] <= 1).to_numpy()
        color = np.where(pooled, "0.6", "C0")
        p = t.iloc[0]
        ax.axvspan(p["pop_lower"], p["pop_upper"], color="C1", alpha=0.15, lw=0)
        ax.axvline(p["pop_median"], color="C1", lw=1.2)
        ax.hlines(y, t["lower"], t["upper"], colors=color, lw=0.9)
        ax.hlines(y, t["lower50"], t["upper50"], colors=color, lw=2.6)
        ax.scatter(t["median"], y, c=list(color), s=14, zorder=3)
        ax.set_yticks(y, [f"{f} ({n})" for f, n in zip(t["family"], t["n_models"], strict=True)],
                      fontsize=7)  # fmt: skip
        ax.set_ylim(-0.8, len(t) - 0.2)
        ax.set_title(f"capability '{fac}' ({names.get(fac, fac)})", fontsize=10)
        ax.set_xlabel(f"efficiency: capability at $10^{{{21 + x0:g}}}$ FLOPs")
        ax.grid(True, axis="x", color="0.9", lw=0.6)
    axes[0].set_ylabel("family (number of models)")
    fig.suptitle(f"Family efficiencies: median, 50% and {ci:.0%} intervals\norange: population "
                 f"mean and its {ci:.0%} interval; grey: one-model families", fontsize=10)  # fmt: skip
    if path is not None:
        save_figure(fig, path)
    return fig


def release_table(fit: CapabilityModel, ci: float = 0.9) -> pd.DataFrame:
    """:func:`efficiency_table` of the families with a release date, with ``year`` (the median
    release date of the family's models that have one, as a decimal year: the ``t_f`` of the
    ``release`` variant, :func:`~obscale_bayes.model.inputs.family_release_years`), ``release``
    (that date as a ``Timestamp``) and ``n_dated``.  Families without any dated model are left
    out; the table is empty when the fit's data have no ``release_date`` column."""
    tab = efficiency_table(fit, ci)
    m = fit.data.models
    fams = list(dict.fromkeys(tab["family"]))
    year = dict(zip(fams, family_release_years(m, fams), strict=True))
    n_dated = (m.groupby("family")["release_date"].count() if "release_date" in m
               else pd.Series(dtype=int))  # fmt: skip
    tab = tab.assign(year=tab["family"].map(year), n_dated=tab["family"].map(n_dated))
    tab = tab[tab["year"].notna()].reset_index(drop=True)
    whole = np.floor(tab["year"]).astype(int)
    tab["release"] = pd.to_datetime(whole.astype(str) + "-01-01") + pd.to_timedelta(
        (tab["year"] - whole) * 365.25, unit="D"
    )
    return tab


def plot_efficiency_by_release(
    fit: CapabilityModel,
    factors: str | Sequence[str] | None = None,
    ci: float = 0.9,
    path: str | os.PathLike[str] | None = None,
) -> Figure:
    """Family efficiencies against release date, one panel per capability.

    Points are posterior medians with their ``ci`` intervals (grey: one-model families, mostly
    pooled to the population), the line a least-squares fit of the medians on the decimal
    year, weighted by the inverse interval width, with its slope per year in the panel's title.
    The model itself has no release-date term: a clear trend here is the misfit that makes its
    forecasts of new families biased (docs/model.md).

    Returns
    -------
    matplotlib.figure.Figure
    """
    from matplotlib.figure import Figure

    ci = check_ci(ci)
    facs = pick(factors, coord_values(fit, "factor"), "factor")
    tab = release_table(fit, ci)
    names = display_names(fit)
    fig = Figure(figsize=(3.8 * len(facs), 3.4), layout="constrained")
    axes = fig.subplots(1, len(facs), squeeze=False).ravel()
    for ax, fac in zip(axes, facs, strict=True):
        t = tab[tab["factor"] == fac]
        title = f"'{fac}' ({names.get(fac, fac)})"
        if len(t) >= 3:
            w = 1.0 / np.maximum((t["upper"] - t["lower"]).to_numpy(), 1e-6)
            slope, icpt = np.polyfit(t["year"], t["median"], 1, w=w)
            xs = np.linspace(t["year"].min(), t["year"].max(), 20)
            ax.plot(xs, icpt + slope * xs, color="C3", lw=1.2)
            title += f"\ntrend {slope:+.2f} per year ({len(t)} families)"
        pooled = (t["n_models"] <= 1).to_numpy()
        for mask, color in ((pooled, "0.6"), (~pooled, "C0")):
            tt = t[mask]
            ax.vlines(tt["year"], tt["lower"], tt["upper"], colors=color, lw=0.8)
            ax.scatter(tt["year"], tt["median"], color=color, s=14, zorder=3)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("release date (median of the family's models)")
        ax.grid(True, color="0.9", lw=0.6)
    axes[0].set_ylabel("family efficiency")
    n_all = len(coord_values(fit, "family"))
    n_dated = tab["family"].nunique()
    fig.suptitle(f"Family efficiency vs release date: medians and {ci:.0%} intervals "
                 f"({n_dated} of {n_all} families dated)", fontsize=10)  # fmt: skip
    if path is not None:
        save_figure(fig, path)
    return fig


def loadings_table(fit: CapabilityModel, ci: float = 0.9) -> pd.DataFrame:
    """Posterior loadings, one row per (benchmark, factor).

    Returns
    -------
    pandas.DataFrame
        ``benchmark, factor, median, sd, lower, upper, fixed, crosses_zero, ci``; ``fixed`` marks
        the anchors' entries (exactly 1 or 0 by construction), ``crosses_zero`` a free entry
        whose central interval contains 0.
    """
    ci = check_ci(ci)
    lam = posterior_draws(fit, "loading", "benchmark", "factor")
    med, lo, hi = quantiles(lam, ci)
    sd = lam.std(axis=0)
    anchors = set(fit.spec.anchors)
    rows = []
    for j, b in enumerate(coord_values(fit, "benchmark")):
        for k, f in enumerate(coord_values(fit, "factor")):
            fixed = b in anchors
            rows.append({"benchmark": b, "factor": f, "median": med[j, k], "sd": sd[j, k],
                         "lower": lo[j, k], "upper": hi[j, k], "fixed": fixed,
                         "crosses_zero": (not fixed) and lo[j, k] <= 0.0 <= hi[j, k],
                         "ci": ci})  # fmt: skip
    return pd.DataFrame(rows)


def plot_loadings(
    fit: CapabilityModel, ci: float = 0.9, path: str | os.PathLike[str] | None = None
) -> Figure:
    """Heat map of the loadings (benchmark x capability), posterior medians.

    Every cell is annotated with its median and posterior sd; cells whose ``ci`` interval
    contains 0 are hatched (the data do not tell the sign); anchor rows are fixed by
    construction and annotated "anchor".

    Returns
    -------
    matplotlib.figure.Figure
        One image (``AxesImage``) plus a colour bar.
    """
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch, Rectangle

    ci = check_ci(ci)
    tab = loadings_table(fit, ci)
    benches, facs = coord_values(fit, "benchmark"), coord_values(fit, "factor")
    names = display_names(fit)
    grid = tab.pivot(index="benchmark", columns="factor", values="median").loc[benches, facs]
    vmax = max(1.0, float(np.nanmax(np.abs(grid.to_numpy()))))
    fig = Figure(figsize=(2.2 + 1.5 * len(facs), 1.2 + 0.5 * len(benches)), layout="constrained")
    ax = fig.subplots()
    im = ax.imshow(grid.to_numpy(), cmap="RdBu_r", vmin=-vmax, vmax=vmax, aspect="auto")
    any_hatch = False
    for r in tab.itertuples(index=False):
        j, k = benches.index(r.benchmark), facs.index(r.factor)
        text = f"{r.median:.2f}\nanchor" if r.fixed else f"{r.median:.2f}\n±{r.sd:.2f}"
        dark = abs(r.median) > 0.6 * vmax
        ax.text(k, j, text, ha="center", va="center", fontsize=7,
                color="white" if dark else "black")  # fmt: skip
        if r.crosses_zero:
            any_hatch = True
            ax.add_patch(Rectangle((k - 0.5, j - 0.5), 1, 1, fill=False, hatch="///",
                                   edgecolor="0.45", lw=0))  # fmt: skip
    ax.set_xticks(range(len(facs)), [f"'{f}'" for f in facs])
    ax.set_yticks(range(len(benches)), [names.get(b, b) for b in benches], fontsize=8)
    ax.set_xlabel("capability (anchor benchmark)")
    ax.set_ylabel("benchmark")
    fig.colorbar(im, ax=ax, label="loading (posterior median)", shrink=0.8)
    if any_hatch:
        ax.legend(handles=[Patch(facecolor="white", edgecolor="0.45", hatch="///",
                                 label=f"{ci:.0%} interval contains 0")],
                  loc="upper center", bbox_to_anchor=(0.5, -0.12), fontsize=8, frameon=False)  # fmt: skip
    ax.set_title("Loadings: median and posterior sd", fontsize=10)
    if path is not None:
        save_figure(fig, path)
    return fig
