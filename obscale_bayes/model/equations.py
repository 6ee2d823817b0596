"""Link functions and the observation noise model, in NumPy (the reference) and PyTensor.

Score model for model m on benchmark j (scores rescaled to [0, 1] by the metric range)::

    p_mj = g_j + (1 - g_j) * sigmoid(eta_mj)          (chance floor g_j)
    sd_mj = sqrt(p~(1 - p~)/n_j + tau_j^2 + (nu_j dp/deta)^2)   (sampling noise + misfit)

The NumPy versions are used for forecasting from posterior draws and as the reference the
tests check the PyTensor graph against.
"""

from __future__ import annotations

import numpy as np
import pytensor.tensor as pt
from numpy.typing import ArrayLike


def sigmoid_np(eta: ArrayLike) -> np.ndarray:
    """Numerically stable logistic function ``1 / (1 + exp(-eta))``."""
    eta = np.asarray(eta, dtype=float)
    out = np.empty_like(eta)
    pos = eta >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-eta[pos]))
    ez = np.exp(eta[~pos])
    out[~pos] = ez / (1.0 + ez)
    return out


#: Half-width of the bounded capability scale of downstream tasks (see :func:`bounded_np`).
BOUNDED_SCALE = 10.0


def bounded_np(theta: ArrayLike) -> np.ndarray:
    """Bounded capability scale ``10 (sigmoid(theta) - 0.5)`` in (-5, 5).

    ``sigmoid(theta_k)`` is anchor k's expected score above its floor, so a capability at its
    chance floor maps to about -5 however far below the floor its logit lies.
    """
    return BOUNDED_SCALE * (sigmoid_np(theta) - 0.5)


def bounded_pt(theta):
    """PyTensor version of :func:`bounded_np`."""
    return BOUNDED_SCALE * (pt.sigmoid(theta) - 0.5)


def floored_sigmoid_np(eta: ArrayLike, floor: ArrayLike) -> np.ndarray:
    """``floor + (1 - floor) * sigmoid(eta)``: rises from the chance floor to 1."""
    floor = np.asarray(floor, dtype=float)
    return floor + (1.0 - floor) * sigmoid_np(eta)


def logit_np(p: ArrayLike) -> np.ndarray:
    """Inverse of :func:`sigmoid_np`."""
    p = np.asarray(p, dtype=float)
    return np.log(p) - np.log1p(-p)


def noise_sd_np(
    p: ArrayLike,
    inv_n: ArrayLike,
    misfit: ArrayLike,
    floor: ArrayLike = 0.0,
    logit_misfit: ArrayLike = 0.0,
) -> np.ndarray:
    """Observation sd: binomial sampling noise of a benchmark with ``1/inv_n`` items plus misfit.

    The binomial variance uses the Laplace-smoothed rate ``(n p + 1) / (n + 2)``: a score of
    exactly 0 (or 1) on n items is consistent with a true rate near 1/n, and without the
    smoothing the variance at p -> 0 vanishes, so the likelihood of an exact 0 diverges as the
    misfit shrinks (a degenerate mode the sampler finds).

    ``logit_misfit`` is a misfit on the logit scale, carried to the score scale by the delta
    method: its sd is ``logit_misfit * dp/deta`` with ``dp/deta = (p - g)(1 - p)/(1 - g)``, so it
    vanishes near the floor and near 1 and is largest on the steep part of the curve -- where
    an emergent task's scores are least predictable.
    """
    p = np.clip(np.asarray(p, dtype=float), 0.0, 1.0)
    inv_n = np.asarray(inv_n, dtype=float)
    g = np.asarray(floor, dtype=float)
    pt_ = (p + inv_n) / (1.0 + 2.0 * inv_n)
    slope = np.clip(p - g, 0.0, None) * (1.0 - p) / (1.0 - g)
    var = pt_ * (1.0 - pt_) * inv_n + np.asarray(misfit, dtype=float) ** 2
    return np.sqrt(var + (np.asarray(logit_misfit, dtype=float) * slope) ** 2)


def floored_sigmoid_pt(eta, floor):
    """PyTensor version of :func:`floored_sigmoid_np`."""
    return floor + (1.0 - floor) * pt.sigmoid(eta)


def noise_sd_pt(p, inv_n, misfit, floor=0.0, logit_misfit=0.0):
    """PyTensor version of :func:`noise_sd_np`; ``inv_n`` is 1/n_items."""
    p_s = (p + inv_n) / (1.0 + 2.0 * inv_n)
    slope = pt.maximum(p - floor, 0.0) * (1.0 - p) / (1.0 - floor)
    return pt.sqrt(p_s * (1.0 - p_s) * inv_n + misfit**2 + (logit_misfit * slope) ** 2)


def inv_items(n_items: ArrayLike, default_n: float) -> np.ndarray:
    """1 / n_items, using ``default_n`` where the item count is unknown."""
    n = np.asarray(n_items, dtype=float)
    n = np.where(np.isfinite(n) & (n > 0), n, default_n)
    return 1.0 / n


def linear_predictor(
    theta: np.ndarray, intercept: np.ndarray, loading: np.ndarray, bounded: np.ndarray | None
) -> np.ndarray:
    """``eta_j = alpha_j + lambda_j . theta`` per draw, or ``lambda_j . bounded(theta)`` where
    ``bounded[j]``: theta (S, ..., K), intercept broadcastable to (S, ..., J), loading (S, J, K).
    """
    eta = intercept + np.einsum("s...k,sjk->s...j", theta, loading)
    if bounded is not None and bounded.any():
        eta_b = intercept + np.einsum("s...k,sjk->s...j", bounded_np(theta), loading)
        eta = np.where(bounded, eta_b, eta)
    return eta
