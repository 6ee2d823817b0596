"""Forecast scores for backtests: point errors, CRPS, log predictive density, coverage.

Two entry points produce a tidy table with one row per forecast cell (a model x target pair):

* :func:`score_points` for point forecasts (mse/mae-type columns only; the rest NaN);
* :func:`score_draws` for predictive draws, an array ``(n_draws, n_cells)``.

:func:`summarize` pools such a table into one row with columns ``mse, mae, crps, lpd,
coverage50, coverage80, coverage90, coverage95, width90, n`` (then ``mse_median, mae_median,
width50, width80, width95``).  ``mse``/``mae`` are the errors of the posterior mean (of the point
forecast for point methods); ``*_median`` those of the posterior median.  Cells whose truth or
forecast is NaN (e.g. a FLOPs method that cannot predict a model) are kept in the per-cell table
and left out of the pooled numbers; ``n`` counts the cells pooled.

CRPS uses the unbiased energy form ``E|X - y| - 0.5 E|X - X'|`` over distinct pairs of draws,
computed in ``O(n log n)`` by sorting.  The log predictive density is, by default, that of a
Gaussian kernel density estimate of each cell's draws (Silverman's bandwidth); ``lpd="gaussian"``
uses a normal with the draws' mean and standard deviation, and ``log_density=`` takes exact log
densities instead.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

import numpy as np
import pandas as pd
from scipy.special import logsumexp

from obscale_bayes.errors import UsageError

__all__ = [
    "LEVELS",
    "crps_from_draws",
    "lpd_from_draws",
    "score_draws",
    "score_points",
    "summarize",
]

LEVELS: tuple[int, ...] = (50, 80, 90, 95)
"""Central interval levels (percent) scored by default."""

_SUMMARY = ["mse", "mae", "crps", "lpd", "coverage50", "coverage80", "coverage90", "coverage95",
            "width90", "n", "mse_median", "mae_median", "width50", "width80", "width95"]  # fmt: skip


def _as_truth(y: Sequence[float] | np.ndarray | pd.Series) -> tuple[np.ndarray, pd.Index | None]:
    index = y.index if isinstance(y, pd.Series) else None
    arr = np.asarray(y, dtype=float)
    if arr.ndim != 1:
        raise UsageError("scores: the truth must be one value per cell (a 1-D array)")
    return arr, index


def _frame(data: dict[str, np.ndarray], index: pd.Index | None) -> pd.DataFrame:
    df = pd.DataFrame(data)
    if index is not None:
        df.index = index
    return df


def crps_from_draws(draws: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Unbiased energy-form CRPS of each cell, ``E|X - y| - 0.5 E|X - X'|``.

    Parameters
    ----------
    draws : ndarray, shape (n_draws, n_cells)
    y : ndarray, shape (n_cells,)

    Notes
    -----
    With the draws sorted, ``sum_{i<j} (x_(j) - x_(i)) = sum_k (2k - n - 1) x_(k)`` (k = 1..n), so
    the pair term costs one sort; dividing by ``n (n - 1) / 2`` pairs gives the unbiased
    estimate of ``E|X - X'|``.
    """
    draws = np.asarray(draws, dtype=float)
    n = draws.shape[0]
    if n < 2:
        raise UsageError("crps_from_draws: need at least two draws per cell")
    term1 = np.mean(np.abs(draws - y[None, :]), axis=0)
    xs = np.sort(draws, axis=0)
    k = np.arange(1, n + 1, dtype=float)[:, None]
    pair_sum = np.sum((2.0 * k - n - 1.0) * xs, axis=0)
    e_abs_diff = 2.0 * pair_sum / (n * (n - 1.0))
    return term1 - 0.5 * e_abs_diff


def lpd_from_draws(
    draws: np.ndarray, y: np.ndarray, method: Literal["kde", "gaussian"] = "kde"
) -> np.ndarray:
    """Log predictive density of ``y`` estimated from draws, per cell.

    ``"kde"``: Gaussian kernels with Silverman's bandwidth
    ``0.9 min(sd, IQR / 1.34) n^(-1/5)``; ``"gaussian"``: a normal fitted by moments.  A cell whose
    draws are all equal gets a tiny bandwidth (``1e-9 * (1 + |mean|)``).
    """
    draws = np.asarray(draws, dtype=float)
    n = draws.shape[0]
    mean = draws.mean(axis=0)
    sd = draws.std(axis=0, ddof=1) if n > 1 else np.zeros(draws.shape[1])
    tiny = 1e-9 * (1.0 + np.abs(mean))
    if method == "gaussian":
        s = np.maximum(sd, tiny)
        return -0.5 * np.log(2 * np.pi * s**2) - 0.5 * ((y - mean) / s) ** 2
    if method != "kde":
        raise UsageError(f"lpd method must be 'kde' or 'gaussian', not {method!r}")
    q75, q25 = np.percentile(draws, [75, 25], axis=0)
    spread = np.minimum(sd, (q75 - q25) / 1.34)
    spread = np.where(spread > 0, spread, sd)
    h = np.maximum(0.9 * spread * n ** (-0.2), tiny)
    z = (y[None, :] - draws) / h[None, :]
    return logsumexp(-0.5 * z**2, axis=0) - np.log(n) - np.log(h) - 0.5 * np.log(2 * np.pi)


def score_points(
    y: Sequence[float] | np.ndarray | pd.Series, pred: Sequence[float] | np.ndarray
) -> pd.DataFrame:
    """Per-cell errors of point forecasts.

    Returns a frame with columns ``y, mean, median, se, ae, se_median, ae_median`` (the point is
    both "mean" and "median"), plus ``crps, lpd, covered*, width*`` all NaN.
    """
    yv, index = _as_truth(y)
    p = np.asarray(pred, dtype=float)
    if p.shape != yv.shape:
        raise UsageError(
            f"score_points: {p.shape[0] if p.ndim else 1} forecasts for {len(yv)} cells"
        )
    err = p - yv
    nan = np.full(len(yv), np.nan)
    data = {"y": yv, "mean": p, "median": p, "se": err**2, "ae": np.abs(err),
            "se_median": err**2, "ae_median": np.abs(err), "crps": nan, "lpd": nan}  # fmt: skip
    for level in LEVELS:
        data[f"covered{level}"] = nan
        data[f"width{level}"] = nan
    return _frame(data, index)


def score_draws(
    y: Sequence[float] | np.ndarray | pd.Series,
    draws: np.ndarray,
    log_density: Callable[[np.ndarray], np.ndarray] | None = None,
    lpd: Literal["kde", "gaussian"] = "kde",
    levels: Sequence[int] = LEVELS,
) -> pd.DataFrame:
    """Per-cell scores of predictive draws.

    Parameters
    ----------
    y : array-like, shape (n_cells,)
        Observed values (a Series keeps its index).
    draws : ndarray, shape (n_draws, n_cells)
        Predictive draws (NaN-free per cell, or the cell's scores are NaN).
    log_density : callable, optional
        ``log_density(y) -> (n_cells,)`` exact log predictive densities; replaces the estimate.
    lpd : {"kde", "gaussian"}
        Estimator of the log density from draws when ``log_density`` is not given.
    levels : sequence of int
        Central interval levels in percent (default 50, 80, 90, 95).

    Returns
    -------
    pandas.DataFrame
        One row per cell: ``y, mean, median, se, ae, se_median, ae_median, crps, lpd``, then
        ``lower{L}``, ``upper{L}``, ``covered{L}`` (1.0/0.0) and ``width{L}`` for each level ``L``.
    """
    yv, index = _as_truth(y)
    d = np.asarray(draws, dtype=float)
    if d.ndim == 1:
        d = d[:, None]
    if d.ndim != 2 or d.shape[1] != len(yv):
        raise UsageError(f"score_draws: draws must be (n_draws, {len(yv)}), got {d.shape}")
    if d.shape[0] < 2:
        raise UsageError("score_draws: need at least two draws per cell")
    mean = d.mean(axis=0)
    median = np.median(d, axis=0)
    data = {"y": yv, "mean": mean, "median": median, "se": (mean - yv) ** 2,
            "ae": np.abs(mean - yv), "se_median": (median - yv) ** 2,
            "ae_median": np.abs(median - yv), "crps": crps_from_draws(d, yv)}  # fmt: skip
    if log_density is not None:
        dens = np.asarray(log_density(yv), dtype=float)
        if dens.shape != yv.shape:
            raise UsageError("score_draws: log_density(y) must return one value per cell")
        data["lpd"] = dens
    else:
        data["lpd"] = lpd_from_draws(d, yv, lpd)
    for level in levels:
        if not 0 < level < 100:
            raise UsageError(
                f"score_draws: interval levels are percentages in (0, 100), got {level}"
            )
        a = (100.0 - level) / 200.0
        lo, hi = np.quantile(d, [a, 1.0 - a], axis=0)
        data[f"lower{level}"], data[f"upper{level}"] = lo, hi
        data[f"covered{level}"] = ((lo <= yv) & (yv <= hi)).astype(float)
        data[f"width{level}"] = hi - lo
    bad = ~np.isfinite(yv) | ~np.isfinite(d).all(axis=0)
    out = _frame(data, index)
    out.loc[bad, out.columns != "y"] = np.nan
    return out


def summarize(scores: pd.DataFrame) -> pd.DataFrame:
    """Pool a per-cell score table into one row.

    Columns: ``mse, mae, crps, lpd, coverage50, coverage80, coverage90, coverage95, width90,
    n, mse_median, mae_median, width50, width80, width95`` (means over cells with a finite
    error; ``lpd`` is the mean log density per cell; ``n`` the number of cells pooled).
    """
    if "se" not in scores or "ae" not in scores:
        raise UsageError("summarize: expects a table from score_points or score_draws")
    ok = scores["se"].notna()
    s = scores[ok]
    row: dict[str, float] = {
        "mse": s["se"].mean(),
        "mae": s["ae"].mean(),
        "crps": s["crps"].mean() if "crps" in s else np.nan,
        "lpd": s["lpd"].mean() if "lpd" in s else np.nan,
        "n": int(ok.sum()),
        "mse_median": s["se_median"].mean() if "se_median" in s else np.nan,
        "mae_median": s["ae_median"].mean() if "ae_median" in s else np.nan,
    }
    for level in LEVELS:
        row[f"coverage{level}"] = s[f"covered{level}"].mean() if f"covered{level}" in s else np.nan
        row[f"width{level}"] = s[f"width{level}"].mean() if f"width{level}" in s else np.nan
    return pd.DataFrame([row])[_SUMMARY]


def calibration_curve(cells: pd.DataFrame, levels=(50, 80, 90, 95)) -> pd.DataFrame:
    """Empirical coverage per nominal level, pooled over the Bayesian method's cells."""
    b = cells[cells["method"] == "bayes"]
    return pd.DataFrame(
        {
            "nominal": np.array(levels) / 100,
            "empirical": [b[f"covered{lv}"].mean() for lv in levels],
        }
    )
