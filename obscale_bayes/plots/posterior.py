r"""Figures of a fitted model's posterior: capabilities vs compute, family efficiencies, loadings.

Each figure has a tidy-table twin that holds exactly the numbers it draws, so a notebook can print
what it plots and a test can check the figure against the posterior:

* :func:`capability_table` / :func:`plot_capability_vs_compute` -- every model's capability
  :math:`\theta_{mk}` (posterior median and central interval) against its log10 training FLOPs
  (the posterior median of the latent FLOPs where they are unknown), one panel per capability,
  with each family's trend :math:`a_{fk} + b_{fk} x` and its credible band;
* :func:`efficiency_table` / :func:`plot_efficiency_forest` -- family efficiencies
  :math:`a_{fk}` (the capability a family reaches at :math:`x = 0`, i.e. at
  :math:`10^{21 + x_0}` FLOPs), sorted, against the population mean :math:`\mu^a_k`;
* :func:`loadings_table` / :func:`plot_loadings` -- the benchmark x capability loadings
  :math:`\lambda_{jk}` as a heat map of posterior medians, annotated with posterior sds and
  hatched where the central interval contains 0.

Capabilities are on the model's identified scale: capability :math:`k` *is* a model's latent
logit (above the chance floor) on the factor's anchor benchmark (see :mod:`obscale_bayes.model.build`).
Bands here are credible intervals of parameters and mean trends, not predictive intervals
(:func:`obscale_bayes.plots.plot_scaling` draws those in score units).  Figures are built on
:class:`matplotlib.figure.Figure` directly, so pyplot's global state is never touched.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from obscale_bayes.errors import UsageError
from obscale_bayes.plots.scaling import save_figure
from obscale_bayes.validation import check_ci

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

    from obscale_bayes.fit.fitted import CapabilityModel

__all__ = [
    "capability_table",
    "efficiency_table",
    "loadings_table",
    "plot_capability_vs_compute",
    "plot_efficiency_forest",
    "plot_loadings",
]

_N_GRID = 40


def _q(draws: np.ndarray, ci: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Median and central ``ci`` interval over axis 0."""
    lo, med, hi = np.quantile(draws, [(1 - ci) / 2, 0.5, (1 + ci) / 2], axis=0)
    return med, lo, hi


def _stacked(fit: CapabilityModel, name: str, *dims: str) -> np.ndarray:
    """Posterior draws of ``name`` as (sample, *dims)."""
    post = fit.idata["posterior"].dataset
    if name not in post:
        raise UsageError(f"the fit's posterior has no '{name}'; refit with this package")
    da = post[name].stack(sample=("chain", "draw")).transpose("sample", *dims)
    return da.to_numpy()


def _coord(fit: CapabilityModel, dim: str) -> list[str]:
    return [str(v) for v in fit.idata["posterior"].dataset[dim].values]


def _pick(given: str | Sequence[str] | None, have: list[str], what: str) -> list[str]:
    if given is None:
        return list(have)
    out = [given] if isinstance(given, str) else list(dict.fromkeys(given))
    unknown = [v for v in out if v not in have]
    if unknown or not out:
        raise UsageError(f"unknown {what}(s) {unknown}; the fit has {have}")
    return out


def _display(fit: CapabilityModel) -> dict[str, str]:
    b = fit.data.benchmarks
    return dict(zip(b["benchmark"], b["display_name"].fillna(b["benchmark"]), strict=True))


def _log10_flops_draws(fit: CapabilityModel) -> tuple[np.ndarray, np.ndarray]:
    """(sample, model) log10 training FLOPs (fixed where known, latent draws where not) and the
    (model,) mask of latent ones."""
    inp = fit.inputs
    x0 = float(fit.spec.structure["x0"])
    models = _coord(fit, "model")
    pos = {m: i for i, m in enumerate(inp.model_ids)}
    x = np.array([inp.x[pos[m]] for m in models], dtype=float)
    cap = _stacked(fit, "capability", "model", "factor")
    out = np.broadcast_to(x + x0 + 21.0, (cap.shape[0], len(models))).copy()
    unknown = ~np.isfinite(x)
    if unknown.any():
        lat = _stacked(fit, "x_latent", "latent_flops_model")
        lpos = {m: i for i, m in enumerate(_coord(fit, "latent_flops_model"))}
        for i in np.flatnonzero(unknown):
            out[:, i] = lat[:, lpos[models[i]]] + x0 + 21.0
    return out, unknown


def capability_table(fit: CapabilityModel, ci: float = 0.9) -> pd.DataFrame:
    """Posterior capabilities of the fitted models, with their compute.

    Returns
    -------
    pandas.DataFrame
        One row per (model, factor): ``model, family, factor, log10_flops, log10_flops_lower,
        log10_flops_upper, flops_latent, median, lower, upper, ci``.  For models with known
        FLOPs the three ``log10_flops`` columns are equal and ``flops_latent`` is False; for the
        others they are the posterior median and interval of the latent FLOPs.
    """
    ci = check_ci(ci)
    models = _coord(fit, "model")
    factors = _coord(fit, "factor")
    fam = fit.data.models.set_index("model")["family"]
    cap = _stacked(fit, "capability", "model", "factor")
    med, lo, hi = _q(cap, ci)
    xd, latent = _log10_flops_draws(fit)
    xm, xl, xh = _q(xd, ci)
    rows = [
        {"model": m, "family": fam[m], "factor": f, "log10_flops": xm[i],
         "log10_flops_lower": xl[i], "log10_flops_upper": xh[i], "flops_latent": bool(latent[i]),
         "median": med[i, k], "lower": lo[i, k], "upper": hi[i, k], "ci": ci}
        for i, m in enumerate(models) for k, f in enumerate(factors)
    ]  # fmt: skip
    return pd.DataFrame(rows)


def family_trend(
    fit: CapabilityModel, family: str, log10_flops: np.ndarray, ci: float = 0.9
) -> pd.DataFrame:
    r"""Credible band of a family's mean capability :math:`a_{fk} + b_{fk} x` along compute.

    Parameters
    ----------
    family : str
        A family of the fit.
    log10_flops : array
        Grid of log10 training FLOPs.

    Returns
    -------
    pandas.DataFrame
        ``family, factor, log10_flops, median, lower, upper, ci`` (no residual: the trend of the
        family's mean model, not a new model's capability).
    """
    ci = check_ci(ci)
    fams = _coord(fit, "family")
    if family not in fams:
        raise UsageError(f"unknown family {family!r}; the fit has {fams}")
    f = fams.index(family)
    a = _stacked(fit, "efficiency", "family", "factor")[:, f]
    b = _stacked(fit, "slope", "family", "factor")[:, f]
    g = np.asarray(log10_flops, dtype=float)
    x = g - 21.0 - float(fit.spec.structure["x0"])
    trend = a[:, None, :] + b[:, None, :] * x[None, :, None]  # (S, G, K)
    med, lo, hi = _q(trend, ci)
    out = []
    for k, fac in enumerate(_coord(fit, "factor")):
        out.append(pd.DataFrame({"family": family, "factor": fac, "log10_flops": g,
                                 "median": med[:, k], "lower": lo[:, k], "upper": hi[:, k],
                                 "ci": ci}))  # fmt: skip
    return pd.concat(out, ignore_index=True)


def _default_families(fit: CapabilityModel, n: int = 6) -> list[str]:
    counts = fit.data.models["family"].value_counts()
    counts = counts[counts.index.isin(_coord(fit, "family"))]
    order = sorted(counts.index, key=lambda f: (-counts[f], f))
    return order[:n]


def plot_capability_vs_compute(
    fit: CapabilityModel,
    families: str | Sequence[str] | None = None,
    factors: str | Sequence[str] | None = None,
    ci: float = 0.9,
    extend: float = 0.5,
    path: str | os.PathLike[str] | None = None,
) -> Figure:
    """Capabilities vs log10 compute, one panel per capability, family trends with bands.

    Parameters
    ----------
    fit : CapabilityModel
    families : str or sequence of str, optional
        Families to draw (default: the six with the most models).
    factors : str or sequence of str, optional
        Capabilities (factor ids = anchor benchmarks) to draw (default: all).
    ci : float
        Probability of the intervals and bands.
    extend : float
        Decades of compute the trend line extends beyond a family's models on each side.
    path : str or path-like, optional
        Also save the figure there.

    Returns
    -------
    matplotlib.figure.Figure
        Per panel and family: one error-bar container of model points (filled: FLOPs known;
        hollow with a horizontal interval: FLOPs latent), one trend line (posterior median of
        :math:`a_f + b_f x`) and one band around it.
    """
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    ci = check_ci(ci)
    fams = _pick(families, _coord(fit, "family"), "family") if families is not None else None
    fams = fams or _default_families(fit)
    facs = _pick(factors, _coord(fit, "factor"), "factor")
    tab = capability_table(fit, ci)
    tab = tab[tab["family"].isin(fams) & tab["factor"].isin(facs)]
    names = _display(fit)
    fig = Figure(figsize=(4.4 * len(facs), 4.2), layout="constrained")
    axes = fig.subplots(1, len(facs), squeeze=False).ravel()
    for ax, fac in zip(axes, facs, strict=True):
        for i, fam in enumerate(fams):
            color = f"C{i % 10}"
            t = tab[(tab["family"] == fam) & (tab["factor"] == fac)]
            lo_x = np.nanmin(t["log10_flops_lower"]) - extend
            hi_x = np.nanmax(t["log10_flops_upper"]) + extend
            tr = family_trend(fit, fam, np.linspace(lo_x, hi_x, _N_GRID), ci)
            tr = tr[tr["factor"] == fac]
            ax.fill_between(tr["log10_flops"], tr["lower"], tr["upper"], color=color, alpha=0.15,
                            lw=0)  # fmt: skip
            ax.plot(tr["log10_flops"], tr["median"], color=color, lw=1.6, label=fam)
            lat = t["flops_latent"].to_numpy()
            yerr = np.vstack([t["median"] - t["lower"], t["upper"] - t["median"]])
            xerr = np.vstack([t["log10_flops"] - t["log10_flops_lower"],
                              t["log10_flops_upper"] - t["log10_flops"]])  # fmt: skip
            ax.errorbar(t["log10_flops"], t["median"], yerr=yerr, xerr=np.where(lat, xerr, 0),
                        fmt="none", ecolor=color, elinewidth=0.9, alpha=0.8)  # fmt: skip
            ax.scatter(t["log10_flops"], t["median"], s=26, zorder=3, lw=0.9, edgecolors=color,
                       facecolors=np.where(lat[:, None], (1, 1, 1, 0), _rgba(color)))  # fmt: skip
        ax.set_title(f"capability '{fac}' ({names.get(fac, fac)} anchor)", fontsize=10)
        ax.set_xlabel("log10 training FLOPs")
        ax.set_ylabel(f"capability: logit of {names.get(fac, fac)} above chance")
        ax.grid(True, color="0.9", lw=0.6)
    handles = [Line2D([], [], color=f"C{i % 10}", marker="o", lw=1.6, label=f)
               for i, f in enumerate(fams)]  # fmt: skip
    handles += [
        Line2D([], [], color="0.3", marker="o", ls="none", mfc="none",
               label="FLOPs unknown (posterior median, interval)"),
        Line2D([], [], color="0.3", lw=6, alpha=0.2, label=f"{ci:.0%} band of the family trend"),
    ]  # fmt: skip
    fig.legend(handles=handles, loc="outside lower center", ncol=min(4, len(handles)), fontsize=8,
               frameon=False)  # fmt: skip
    fig.suptitle(f"Capabilities vs compute (points: models, posterior median and {ci:.0%} "
                 "interval; lines: family trends)", fontsize=11)  # fmt: skip
    if path is not None:
        save_figure(fig, path)
    return fig


def _rgba(color: str) -> tuple[float, float, float, float]:
    from matplotlib.colors import to_rgba

    return to_rgba(color)


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
    fams, facs = _coord(fit, "family"), _coord(fit, "factor")
    a = _stacked(fit, "efficiency", "family", "factor")
    mu = _stacked(fit, "efficiency_mean", "factor")
    med, lo, hi = _q(a, ci)
    _, lo50, hi50 = _q(a, 0.5)
    pm_, pl, ph = _q(mu, ci)
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
    facs = _pick(factors, _coord(fit, "factor"), "factor")
    fams = _pick(families, _coord(fit, "family"), "family")
    tab = efficiency_table(fit, ci)
    tab = tab[tab["family"].isin(fams)]
    names = _display(fit)
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
    lam = _stacked(fit, "loading", "benchmark", "factor")
    med, lo, hi = _q(lam, ci)
    sd = lam.std(axis=0)
    anchors = set(fit.spec.anchors)
    rows = []
    for j, b in enumerate(_coord(fit, "benchmark")):
        for k, f in enumerate(_coord(fit, "factor")):
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
    benches, facs = _coord(fit, "benchmark"), _coord(fit, "factor")
    names = _display(fit)
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
