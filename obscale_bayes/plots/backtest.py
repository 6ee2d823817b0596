"""Backtest figure: forecast vs actual with 90% intervals, and the calibration curve."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure


def plot_backtest(cells: pd.DataFrame) -> Figure:
    """Left: held-out targets vs the Bayesian posterior mean with 90% intervals, and the
    paper method's point forecasts; right: empirical vs nominal interval coverage."""
    from obscale_bayes.evaluation.metrics import calibration_curve

    fig = Figure(figsize=(11, 5), layout="constrained")
    ax, ax2 = fig.subplots(1, 2, gridspec_kw={"width_ratios": [3, 2]})
    b = cells[cells["method"] == "bayes"]
    p = cells[cells["method"] == "paper_pca3"]
    colors = {a: f"C{i}" for i, a in enumerate(dict.fromkeys(cells["analysis"]))}
    for a, g in b.groupby("analysis", sort=False):
        err = np.vstack([g["mean"] - g["lower90"], g["upper90"] - g["mean"]]).clip(min=0)
        ax.errorbar(g["y"], g["mean"], yerr=err, fmt="o", ms=4, color=colors[a], alpha=0.8,
                    elinewidth=1, label=f"{a} (Bayes, mean and 90% interval)")  # fmt: skip
    if len(p):
        ax.scatter(p["y"], p["mean"], marker="x", s=18, color="0.3", label="paper PC-3 (point)")
    lim = [min(cells["y"].min(), 0), max(cells["y"].max(), 1)]
    ax.plot(lim, lim, color="0.5", lw=1, ls="--")
    ax.set(xlabel="actual (transformed target)", ylabel="forecast", title="Held-out models")
    ax.legend(fontsize=7, ncol=2)
    cal = calibration_curve(cells)
    ax2.plot([0, 1], [0, 1], color="0.5", ls="--", lw=1)
    ax2.plot(cal["nominal"], cal["empirical"], "o-", color="C0")
    n = len(b)
    se = np.sqrt(cal["nominal"] * (1 - cal["nominal"]) / max(n, 1))
    ax2.fill_between(cal["nominal"], cal["nominal"] - 2 * se, cal["nominal"] + 2 * se,
                     color="0.85", label="±2 s.e. of a calibrated forecaster")  # fmt: skip
    ax2.set(xlabel="nominal coverage", ylabel="empirical coverage", xlim=(0.4, 1), ylim=(0, 1),
            title=f"Calibration ({n} held-out cells)")  # fmt: skip
    ax2.legend(fontsize=8)
    return fig
