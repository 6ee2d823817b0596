"""Figures of a post-training intervention's forecast effect, with bands.

:func:`plot_effect` draws one effect table of :mod:`obscale_bayes.forecast.interventions` (against
compute or against general capability) as a median line with a shaded central band, a zero line
and, optionally, measured effects as points.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from obscale_bayes.errors import UsageError

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["plot_effect", "plot_effect_panels"]


def plot_effect(
    table: pd.DataFrame,
    ax: Axes | None = None,
    *,
    observed: pd.DataFrame | None = None,
    observed_x: str | None = None,
    label: str | None = None,
    color: str = "C0",
) -> Axes:
    """Effect median and band vs compute (``flops`` column) or capability (``capability``).

    Parameters
    ----------
    table : pandas.DataFrame
        From :func:`~obscale_bayes.interventions.effect_vs_compute` (x = training FLOPs, log
        axis) or :func:`~obscale_bayes.interventions.effect_vs_capability` (x = the anchor
        score).
    ax : matplotlib Axes, optional
        Where to draw (a new figure's axes otherwise).
    observed : pandas.DataFrame, optional
        Measured effects (column ``effect``) with an x column ``observed_x``.
    """
    from matplotlib.figure import Figure

    need = {"median", "lower", "upper"}
    if not need <= set(table.columns):
        raise UsageError("plot_effect: the table lacks median/lower/upper; pass an effect table")
    by_compute = "anchor" not in table.columns
    xcol = "flops" if by_compute else "capability"
    if ax is None:
        ax = Figure(figsize=(6, 4), layout="constrained").subplots()
    x = table[xcol].to_numpy(dtype=float)
    ci = float(table["ci"].iloc[0]) if "ci" in table else np.nan
    name = label or str(table["intervention"].iloc[0])
    ax.fill_between(x, table["lower"], table["upper"], color=color, alpha=0.25, lw=0,
                    label=f"{name}: {ci:.0%} band")  # fmt: skip
    ax.plot(x, table["median"], color=color, lw=2, label=f"{name}: median")
    ax.axhline(0.0, color="0.4", lw=0.8, ls="--")
    if observed is not None and len(observed):
        ox = observed_x or ("flops" if by_compute else "capability")
        xs = observed[ox].to_numpy(dtype=float)
        ax.scatter(xs, observed["effect"], s=14, color=color, alpha=0.6, edgecolor="k",
                   linewidth=0.3, label=f"{name}: measured")  # fmt: skip
    if by_compute:
        ax.set_xscale("log")
        ax.set_xlabel("training FLOPs")
    else:
        ax.set_xlabel(f"general capability: expected {table['anchor'].iloc[0]} score")
    ax.set_ylabel("effect (treated - control score)")
    return ax


def plot_effect_panels(
    by_compute: list[pd.DataFrame],
    by_capability: list[pd.DataFrame],
    observed: list[pd.DataFrame | None] | None = None,
    labels: list[str] | None = None,
) -> Figure:
    """Two panels: effects vs compute (left) and vs capability (right), one colour each.

    ``observed`` frames (one per effect, or None) need ``flops`` and ``capability`` columns.
    """
    from matplotlib.figure import Figure

    if len(by_compute) != len(by_capability):
        raise UsageError("plot_effect_panels: give one compute and one capability table each")
    fig = Figure(figsize=(12, 4.5), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2, sharey=True)
    obs = observed or [None] * len(by_compute)
    labs = labels or [None] * len(by_compute)
    for i, (tc, tk, o, lab) in enumerate(zip(by_compute, by_capability, obs, labs, strict=True)):
        plot_effect(tc, ax1, observed=o, label=lab, color=f"C{i}")
        plot_effect(tk, ax2, observed=o, label=lab, color=f"C{i}")
    ax1.set_title(f"vs compute ({by_compute[0]['family'].iloc[0]} path)")
    ax2.set_title("vs general capability (other capabilities at conditional mean)")
    ax2.legend(fontsize=7)
    return fig
