"""Scaling-curve figures: observed models, posterior predictive medians and bands vs compute.

:func:`plot_scaling` draws one panel per benchmark with training FLOPs on a log axis.  For
every family it shows the family's observed models (filled points; hollow points for models
whose FLOPs are unknown, placed at the posterior median of their latent FLOPs), the posterior
predictive median (solid inside the family's observed compute range, dashed where it
extrapolates) and a shaded central interval.  A family the fit has never seen gets the
population forecast over a default compute range, dashed throughout.

The figure is built with :class:`matplotlib.figure.Figure` directly (see
:mod:`obscale_bayes.plots.common`); in a notebook the returned figure renders inline.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from obscale_bayes.errors import UsageError
from obscale_bayes.forecast.compute import forecast_compute
from obscale_bayes.model.equations import flops_from_axis
from obscale_bayes.plots.common import figure_format, save_figure
from obscale_bayes.validation import check_ci, check_flops

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from obscale_bayes.fit.fitted import CapabilityModel

__all__ = ["plot_scaling"]

_N_GRID = 30


def _family_models(fit: CapabilityModel, family: str) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Models of ``family`` in the fit, their FLOPs (NaN if unknown) and a 'latent' flag."""
    m = fit.data.models
    m = m[m["family"] == family]
    ids = list(m["model"])
    flops = m["flops_1e21"].to_numpy(dtype=float) * 1e21
    latent = ~np.isfinite(flops)
    if latent.any():
        post = fit.idata["posterior"].dataset
        if "x_latent" in post:
            x0 = float(fit.spec.structure["x0"])
            med = post["x_latent"].median(("chain", "draw"))
            have = {
                str(k): float(v)
                for k, v in zip(med["latent_flops_model"].values, med.values, strict=True)
            }
            for i in np.flatnonzero(latent):
                if ids[i] in have:
                    flops[i] = flops_from_axis(have[ids[i]], x0)
    return ids, flops, latent


def _default_range(fit: CapabilityModel) -> tuple[float, float]:
    f = fit.data.models["flops_1e21"].to_numpy(dtype=float) * 1e21
    f = f[np.isfinite(f) & (f > 0)]
    if not len(f):
        return 1e21, 1e25
    # From the decade of the data's lower decile (tiny models would stretch the axis) to 10x
    # the largest model.
    return float(10 ** math.floor(math.log10(np.quantile(f, 0.1)))), float(f.max() * 10)


def _check_range(flops_range: Sequence[float]) -> tuple[float, float]:
    try:
        lo, hi = (check_flops(v, "flops_range") for v in flops_range)
    except (TypeError, ValueError):
        raise UsageError(
            "flops_range must be a pair (low, high) of FLOPs, e.g. (1e21, 1e25)"
        ) from None
    if not lo < hi:
        raise UsageError(f"flops_range needs low < high, got ({lo:g}, {hi:g})")
    return lo, hi


def plot_scaling(
    fit: CapabilityModel,
    families: str | Sequence[str],
    benchmarks: Sequence[str] | None = None,
    flops_range: Sequence[float] | None = None,
    ci: float = 0.9,
    seed: int = 0,
    path: str | os.PathLike[str] | None = None,
    *,
    targets: Sequence[tuple[str, float]] | None = None,
    n_grid: int = _N_GRID,
) -> Figure:
    """Scaling curves with posterior predictive bands, one panel per benchmark.

    Parameters
    ----------
    fit : CapabilityModel
        A fitted (or loaded) model.
    families : str or sequence of str
        Families to draw; a name the fit has not seen is forecast from the population.
    benchmarks : sequence of str, optional
        Benchmark ids (default: all benchmarks of the fit).
    flops_range : (low, high), optional
        FLOPs range of every curve.  Default: from a tenth of the family's smallest observed
        model to 10x its largest; for a family without observed FLOPs, from the decade of the
        data's lower decile of FLOPs to 10x the data's largest model.
    ci : float
        Probability of the shaded central interval.
    seed : int
        Seed of the predictive draws (same seed, same figure).
    path : str or path-like, optional
        Also save the figure there (atomically; format from the extension).
    targets : sequence of (family, flops), optional
        Forecast points to mark (median and interval); each family's curve is extended to
        cover its targets.
    n_grid : int
        Number of FLOPs values per curve.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from matplotlib.figure import Figure

    ci = check_ci(ci)
    fams, benches = _families(families), _benchmarks(fit, benchmarks)
    fixed = _check_range(flops_range) if flops_range is not None else None
    marks: dict[str, list[float]] = {}
    for fam, fl in targets or []:
        marks.setdefault(str(fam).strip(), []).append(check_flops(fl))
    if path is not None:  # fail on a bad extension before any work
        figure_format(path)

    wide = fit.data.wide()
    default = _default_range(fit)
    colors = [f"C{i % 10}" for i in range(len(fams))]
    ncols = min(4, len(benches))
    nrows = math.ceil(len(benches) / ncols)
    fig = Figure(figsize=(3.6 * ncols, 3.0 * nrows + 0.9), layout="constrained")
    axes = fig.subplots(nrows, ncols, sharex=True, squeeze=False).ravel()
    for ax in axes[len(benches) :]:
        ax.set_visible(False)

    any_hollow = False
    for fam, color in zip(fams, colors, strict=True):
        curve = _family_curve(fit, fam, fixed, default, marks, ci, seed, n_grid)
        for b, ax in zip(benches, axes, strict=False):
            any_hollow |= _draw_curve(ax, curve, b, wide, color)
    meta = fit.data.benchmarks.set_index("benchmark")
    any_floor = False
    for b, ax in zip(benches, axes, strict=False):
        any_floor |= _style_panel(ax, meta.loc[b])
    for ax in axes[max(0, len(benches) - ncols) : len(benches)]:
        ax.set_xlabel("training FLOPs", fontsize=9)
        ax.tick_params(labelbottom=True)
    known = set(fit.family_ids)
    labels = [f if f in known else f"{f} (new family: population forecast)" for f in fams]
    _legend(fig, labels, colors, ci, any_hollow, any_floor, bool(marks))
    fig.suptitle("Posterior predictive scaling curves (points: observed models)", fontsize=12)
    if path is not None:
        save_figure(fig, path)
    return fig


def _families(families: str | Sequence[str]) -> list[str]:
    fams = [families] if isinstance(families, str) else list(dict.fromkeys(families))
    fams = [str(f).strip() for f in fams]
    if not fams or not all(fams):
        raise UsageError("families: give at least one non-empty family name")
    return fams


def _benchmarks(fit: CapabilityModel, benchmarks: str | Sequence[str] | None) -> list[str]:
    bench_ids = list(fit.benchmark_ids)
    if benchmarks is None:
        return bench_ids
    benches = [benchmarks] if isinstance(benchmarks, str) else list(benchmarks)
    unknown = [b for b in benches if b not in bench_ids]
    if unknown or not benches:
        raise UsageError(f"benchmarks: unknown benchmark(s) {unknown}; the fit has {bench_ids}")
    return benches


@dataclass
class _Curve:
    """One family's predictive curve and observed models, ready to draw in every panel."""

    grid: np.ndarray  # FLOPs
    q: dict[str, pd.DataFrame]  # "median"/"lower"/"upper": (grid point, benchmark)
    inside: np.ndarray  # grid points inside the family's observed compute range
    targets: pd.DataFrame | None  # forecast table of the family's marked targets
    ids: list[str]  # the family's models in the fit
    flops: np.ndarray  # their FLOPs (posterior median where latent)
    latent: np.ndarray  # FLOPs unknown


def _family_curve(
    fit: CapabilityModel,
    fam: str,
    fixed: tuple[float, float] | None,
    default: tuple[float, float],
    marks: dict[str, list[float]],
    ci: float,
    seed: int,
    n_grid: int,
) -> _Curve:
    """Forecast ``fam`` along a FLOPs grid: over ``fixed`` when given, else from a tenth of the
    family's smallest observed model to 10x its largest, else over ``default``; widened to cover
    the family's targets."""
    ids, obs_flops, latent = _family_models(fit, fam)
    seen = obs_flops[np.isfinite(obs_flops)]
    if fixed is not None:
        lo, hi = fixed
    elif len(seen):
        lo, hi = seen.min() / 10.0, seen.max() * 10.0
    else:
        lo, hi = default
    for fl in marks.get(fam, []):
        lo, hi = min(lo, fl), max(hi, fl)
    grid = np.logspace(math.log10(lo), math.log10(hi), n_grid)
    fc = forecast_compute(fit, [(fam, float(f)) for f in grid], ci=ci, seed=seed)
    q = {
        k: fc.table.pivot(index="model", columns="benchmark", values=k).loc[
            list(dict.fromkeys(fc.table["model"]))
        ]
        for k in ("median", "lower", "upper")
    }
    if fam in set(fit.family_ids) and len(seen):
        inside = (grid >= seen.min() * (1 - 1e-9)) & (grid <= seen.max() * (1 + 1e-9))
    else:
        inside = np.zeros_like(grid, dtype=bool)
    tfc = None
    if marks.get(fam):
        tfc = forecast_compute(fit, [(fam, f) for f in marks[fam]], ci=ci, seed=seed).table
    return _Curve(grid, q, inside, tfc, ids, obs_flops, latent)


def _draw_curve(ax: Axes, c: _Curve, b: str, wide: pd.DataFrame, color: str) -> bool:
    """Band, median (solid inside the observed range, dashed elsewhere), observed models and
    targets of one family on benchmark ``b``; True when a model was drawn hollow."""
    med = c.q["median"][b].to_numpy()
    lower, upper = c.q["lower"][b].to_numpy(), c.q["upper"][b].to_numpy()
    ax.fill_between(c.grid, lower, upper, color=color, alpha=0.18, lw=0)
    ax.plot(c.grid, med, color=color, ls="--", lw=1.4)
    if c.inside.any():
        idx = np.flatnonzero(c.inside)
        sl = slice(idx[0], idx[-1] + 1)
        ax.plot(c.grid[sl], med[sl], color=color, ls="-", lw=1.8)
    any_hollow = False
    if c.ids:
        y = wide.loc[c.ids, b].to_numpy(dtype=float)
        ok = np.isfinite(y) & np.isfinite(c.flops)
        solid, hollow = ok & ~c.latent, ok & c.latent
        any_hollow = bool(hollow.any())
        ax.scatter(c.flops[solid], y[solid], color=color, s=22, zorder=3, edgecolor="white",
                   lw=0.5)  # fmt: skip
        ax.scatter(c.flops[hollow], y[hollow], facecolor="none", edgecolor=color, s=22, zorder=3)
    if c.targets is not None:
        t = c.targets[c.targets["benchmark"] == b]
        ax.errorbar(t["flops"], t["median"], yerr=[t["median"] - t["lower"], t["upper"] - t["median"]],
                    fmt="D", color=color, ms=5, capsize=3, mec="black", mew=0.6, zorder=4)  # fmt: skip
    return any_hollow


def _style_panel(ax: Axes, r: pd.Series) -> bool:
    """Axes of one benchmark's panel (``r``: its metadata row); True when a chance floor is
    drawn."""
    ax.set_xscale("log")
    ax.set_ylim(float(r["metric_min"]), float(r["metric_max"]))
    floor = float(r["floor"])
    has_floor = math.isfinite(floor) and floor > float(r["metric_min"])
    if has_floor:
        ax.axhline(floor, color="0.5", lw=0.8, ls=":")
    ax.set_title(str(r["display_name"]), fontsize=11)
    ax.grid(True, which="major", color="0.9", lw=0.6)
    unit = str(r["unit"])
    ax.set_ylabel("score" if unit in ("fraction", "nan") else f"score ({unit})", fontsize=9)
    ax.tick_params(labelsize=8)
    return has_floor


def _legend(
    fig: Figure,
    labels: list[str],
    colors: list[str],
    ci: float,
    any_hollow: bool,
    any_floor: bool,
    any_target: bool,
) -> None:
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles = [
        Line2D([], [], color=color, marker="o", ms=5, lw=1.8, label=label)
        for label, color in zip(labels, colors, strict=True)
    ]
    handles += [
        Patch(facecolor="0.6", alpha=0.35, label=f"{round(ci * 100, 1):g}% predictive interval"),
        Line2D([], [], color="0.3", lw=1.8, label="median (observed compute range)"),
        Line2D([], [], color="0.3", lw=1.4, ls="--", label="median (extrapolation)"),
    ]
    if any_hollow:
        handles.append(Line2D([], [], color="0.3", marker="o", ls="none", mfc="none",
                              label="FLOPs unknown (at posterior median)"))  # fmt: skip
    if any_floor:
        handles.append(Line2D([], [], color="0.5", lw=0.8, ls=":", label="chance level (metadata)"))
    if any_target:
        handles.append(Line2D([], [], color="0.3", marker="D", ls="none", mec="black",
                              label="forecast target"))  # fmt: skip
    fig.legend(handles=handles, loc="outside lower center", ncol=min(4, len(handles)), fontsize=8,
               frameon=False)  # fmt: skip
