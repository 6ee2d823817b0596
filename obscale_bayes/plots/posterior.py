r"""Figures of the fitted capabilities: every model's capability against its compute.

:func:`capability_table` / :func:`plot_capability_vs_compute` show every model's capability
:math:`\theta_{mk}` (posterior median and central interval) against its log10 training FLOPs
(the posterior median of the latent FLOPs where they are unknown), one panel per capability,
with each family's trend :math:`a_{fk} + b_{fk} x` (:func:`family_trend`) and its credible band.
The figure's tidy-table twin holds exactly the numbers it draws, so a notebook can print what it
plots and a test can check the figure against the posterior.  The fitted parameters (family
efficiencies, loadings) are drawn by :mod:`obscale_bayes.plots.parameters`.

Capabilities are on the model's identified scale: capability :math:`k` *is* a model's latent
logit (above the chance floor) on the factor's anchor benchmark (see :mod:`obscale_bayes.model.build`).
Bands here are credible intervals of parameters and mean trends, not predictive intervals
(:func:`obscale_bayes.plots.scaling.plot_scaling` draws those in score units).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from obscale_bayes.errors import UsageError
from obscale_bayes.model.equations import compute_axis_np, flops_from_axis
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

__all__ = ["capability_table", "family_trend", "plot_capability_vs_compute"]

_N_GRID = 40


def _log10_flops_draws(fit: CapabilityModel) -> tuple[np.ndarray, np.ndarray]:
    """(sample, model) log10 training FLOPs (fixed where known, latent draws where not) and the
    (model,) mask of latent ones."""
    inp = fit.inputs
    x0 = float(fit.spec.structure["x0"])
    models = coord_values(fit, "model")
    pos = {m: i for i, m in enumerate(inp.model_ids)}
    x = np.array([inp.x[pos[m]] for m in models], dtype=float)
    cap = posterior_draws(fit, "capability", "model", "factor")
    out = np.broadcast_to(np.log10(flops_from_axis(x, x0)), (cap.shape[0], len(models))).copy()
    unknown = ~np.isfinite(x)
    if unknown.any():
        lat = posterior_draws(fit, "x_latent", "latent_flops_model")
        lpos = {m: i for i, m in enumerate(coord_values(fit, "latent_flops_model"))}
        for i in np.flatnonzero(unknown):
            out[:, i] = np.log10(flops_from_axis(lat[:, lpos[models[i]]], x0))
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
    models = coord_values(fit, "model")
    factors = coord_values(fit, "factor")
    fam = fit.data.models.set_index("model")["family"]
    cap = posterior_draws(fit, "capability", "model", "factor")
    med, lo, hi = quantiles(cap, ci)
    xd, latent = _log10_flops_draws(fit)
    xm, xl, xh = quantiles(xd, ci)
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
    fams = coord_values(fit, "family")
    if family not in fams:
        raise UsageError(f"unknown family {family!r}; the fit has {fams}")
    f = fams.index(family)
    a = posterior_draws(fit, "efficiency", "family", "factor")[:, f]
    b = posterior_draws(fit, "slope", "family", "factor")[:, f]
    g = np.asarray(log10_flops, dtype=float)
    x = compute_axis_np(10.0**g, float(fit.spec.structure["x0"]))
    trend = a[:, None, :] + b[:, None, :] * x[None, :, None]  # (S, G, K)
    med, lo, hi = quantiles(trend, ci)
    out = []
    for k, fac in enumerate(coord_values(fit, "factor")):
        out.append(pd.DataFrame({"family": family, "factor": fac, "log10_flops": g,
                                 "median": med[:, k], "lower": lo[:, k], "upper": hi[:, k],
                                 "ci": ci}))  # fmt: skip
    return pd.concat(out, ignore_index=True)


def _default_families(fit: CapabilityModel, n: int = 6) -> list[str]:
    counts = fit.data.models["family"].value_counts()
    counts = counts[counts.index.isin(coord_values(fit, "family"))]
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
    fams = pick(families, coord_values(fit, "family"), "family") if families is not None else None
    fams = fams or _default_families(fit)
    facs = pick(factors, coord_values(fit, "factor"), "factor")
    tab = capability_table(fit, ci)
    tab = tab[tab["family"].isin(fams) & tab["factor"].isin(facs)]
    names = display_names(fit)
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
