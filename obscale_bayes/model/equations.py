r"""The model's equations, each written once: NumPy (the reference) beside its PyTensor twin.

For model :math:`m`, benchmark :math:`j` and capability :math:`k` (scores rescaled to [0, 1] by
each benchmark's metric range):

.. math::

    x_m &= \log_{10}(F_m / 10^{21}) - x_0
        && \text{compute axis (FLOPs } F\text{; the data store } F/10^{21}) \\
    u(\theta) &= 10\,(\mathrm{sigmoid}(\theta) - \tfrac12)
        && \text{bounded capability scale} \\
    \eta_{mj} &= \alpha_j + \lambda_j \cdot \theta_m
        \quad(\alpha_j + \lambda_j \cdot u(\theta_m) \text{ where } j \text{ is bounded})
        && \text{linear predictor} \\
    \alpha_{mj} &= \alpha_j + \delta_{f(m)j} + c_j x_m
        && \text{a model's intercept (family offsets, benchmark slopes)} \\
    p_{mj} &= g_j + (1 - g_j)\,\mathrm{sigmoid}(\eta_{mj})
        && \text{expected score, chance floor } g_j \\
    \mathrm{sd}_{mj} &= \sqrt{\tilde p(1 - \tilde p)/n_j + \tau_j^2
        + \big(\nu_j\,\partial p/\partial\eta\big)^2},
        \quad \tilde p = \frac{n_j p + 1}{n_j + 2}
        && \text{sampling noise + misfit} \\
    y_{mj} &\sim \mathcal D(p_{mj}, \mathrm{sd}_{mj})
        && \text{normal, or Student-}t_\nu

The misfit switch (``structure.misfit_scale``) decides which misfit is estimated: ``"score"``
estimates :math:`\tau_j` and fixes :math:`\nu_j = 0`; ``"logit"`` estimates :math:`\nu_j` and
fixes :math:`\tau_j` at ``misfit_floor``.  Anchors are fixed either way (:math:`\tau_j` =
``anchor_misfit``, :math:`\nu_j = 0`); see :func:`misfits_np`.

The PyTensor functions (``*_pt``) build the PyMC graph of :mod:`obscale_bayes.model.build`; the
NumPy ones (``*_np``) compute forecasts, checks and simulations from posterior draws.

The downstream (target) module of :mod:`obscale_bayes.model.downstream` reuses these pieces on
its own coordinates :math:`z` (:mod:`obscale_bayes.model.coordinates`):
:math:`p = g + (1 - g)\,\mathrm{sigmoid}(b + w \cdot z)` (:func:`target_score_np`) and an sd
that is either constant or vanishes at the floor and the ceiling,
:math:`\sqrt{s_0^2 + (\tau\,\partial p/\partial\eta)^2}` (:func:`target_sd_np`).  The
compute axis has no PyTensor twin: the graph receives it as data (and the latent FLOPs are
sampled on the axis itself).  ``tests/model/test_equations_agreement.py`` checks every NumPy consumer
against the graph.
"""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor.tensor as pt
from numpy.typing import ArrayLike
from scipy import stats

__all__ = [
    "BOUNDED_SCALE",
    "LOG10_FLOPS_UNIT",
    "bounded_np",
    "bounded_pt",
    "compute_axis_np",
    "compute_shift_np",
    "compute_shift_pt",
    "efficiency_centre_np",
    "efficiency_centre_pt",
    "expected_score_np",
    "expected_score_pt",
    "floored_sigmoid_np",
    "floored_sigmoid_pt",
    "flops_from_axis",
    "free_misfit_name",
    "inv_items",
    "linear_predictor_np",
    "linear_predictor_pt",
    "logit_np",
    "misfits_np",
    "misfits_pt",
    "noise_sd_np",
    "noise_sd_pt",
    "observation_dist",
    "observation_logpdf_np",
    "observation_pm",
    "sigmoid_np",
    "target_score_np",
    "target_score_pt",
    "target_sd_np",
    "target_sd_pt",
]


# ---------------------------------------------------------------- family efficiency centre
def efficiency_centre_np(mean: ArrayLike, trend: ArrayLike, year: ArrayLike) -> np.ndarray:
    r"""Centre of a family's efficiency prior, :math:`\mu^a_k + \gamma_k t_f`.

    ``t_f`` is the family's release year minus ``structure.release_ref_year`` (the
    ``release_trend`` spec option; without it :math:`\gamma = 0` and the centre is
    :math:`\mu^a_k`).  Broadcasts: ``mean`` and ``trend`` (..., K), ``year`` (..., 1) or a
    scalar.
    """
    return np.asarray(mean, dtype=float) + np.asarray(trend, dtype=float) * np.asarray(
        year, dtype=float
    )


def efficiency_centre_pt(mean, trend, year):
    """PyTensor twin of :func:`efficiency_centre_np`: ``mean (K,)``, ``trend (K,)``,
    ``year (F,)`` give the ``(F, K)`` centres."""
    return mean[None, :] + year[:, None] * trend[None, :]


# ---------------------------------------------------------------- compute axis
#: The data store training compute as ``flops_1e21`` (units of 1e21 FLOPs): log10 of that unit.
LOG10_FLOPS_UNIT = 21.0


def compute_axis_np(flops: ArrayLike, x0: float, *, per_1e21: bool = False) -> np.ndarray:
    r"""Centred compute axis :math:`x = \log_{10}(F / 10^{21}) - x_0`.

    ``flops`` in FLOPs (e.g. ``1e24``), or with ``per_1e21`` in units of 1e21 FLOPs (the data's
    ``flops_1e21`` column).
    """
    lg = np.log10(np.asarray(flops, dtype=float))
    return (lg if per_1e21 else lg - LOG10_FLOPS_UNIT) - x0


def compute_shift_np(slope: ArrayLike, x: ArrayLike) -> np.ndarray:
    r"""Benchmark slopes' part of a model's intercepts, :math:`c_j x_m` (``structure.benchmark_slopes``).

    ``slope`` ``(..., J)`` (0 on the anchors), ``x`` ``(...)`` the models' compute axis (leading
    axes broadcast): ``(..., J)``, added to the intercepts :math:`\alpha_j + \delta_{fj}`.
    """
    return np.asarray(slope, dtype=float) * np.asarray(x, dtype=float)[..., None]


def compute_shift_pt(slope, x):
    """PyTensor twin of :func:`compute_shift_np` for matching cells: ``slope`` and ``x`` have
    one entry per observed cell (``c[obs_bench]``, ``x[obs_model]``)."""
    return slope * x


def flops_from_axis(x: ArrayLike, x0: float) -> np.ndarray:
    """Training FLOPs at compute-axis values ``x``: the inverse of :func:`compute_axis_np`."""
    return 10.0 ** (np.asarray(x, dtype=float) + x0 + LOG10_FLOPS_UNIT)


# ---------------------------------------------------------------- links
def sigmoid_np(eta: ArrayLike) -> np.ndarray:
    """Numerically stable logistic function ``1 / (1 + exp(-eta))``."""
    eta = np.asarray(eta, dtype=float)
    out = np.empty_like(eta)
    pos = eta >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-eta[pos]))
    ez = np.exp(eta[~pos])
    out[~pos] = ez / (1.0 + ez)
    return out


def logit_np(p: ArrayLike) -> np.ndarray:
    """Inverse of :func:`sigmoid_np`."""
    p = np.asarray(p, dtype=float)
    return np.log(p) - np.log1p(-p)


#: Half-width of the bounded capability scale of downstream tasks (see :func:`bounded_np`).
BOUNDED_SCALE = 10.0


def bounded_np(theta: ArrayLike) -> np.ndarray:
    """Bounded capability scale ``10 (sigmoid(theta) - 0.5)`` in (-5, 5).

    ``sigmoid(theta_k)`` is anchor k's expected score above its floor, so a capability at its
    chance floor maps to about -5 however far below the floor its logit lies.
    """
    return BOUNDED_SCALE * (sigmoid_np(theta) - 0.5)


def bounded_pt(theta):
    """PyTensor twin of :func:`bounded_np`."""
    return BOUNDED_SCALE * (pt.sigmoid(theta) - 0.5)


def floored_sigmoid_np(eta: ArrayLike, floor: ArrayLike) -> np.ndarray:
    """``floor + (1 - floor) * sigmoid(eta)``: rises from the chance floor to 1."""
    floor = np.asarray(floor, dtype=float)
    return floor + (1.0 - floor) * sigmoid_np(eta)


def floored_sigmoid_pt(eta, floor):
    """PyTensor twin of :func:`floored_sigmoid_np`."""
    return floor + (1.0 - floor) * pt.sigmoid(eta)


# ---------------------------------------------------------------- linear predictor
def linear_predictor_np(
    theta: ArrayLike, intercept: ArrayLike, loading: ArrayLike, bounded: ArrayLike | None = None
) -> np.ndarray:
    r"""``eta = alpha + lambda . theta``, with ``theta -> u(theta)`` where ``bounded``.

    Elementwise over the leading axes, which broadcast: ``theta`` and ``loading`` are
    ``(..., K)``, ``intercept`` and ``bounded`` (bool, or None for no bounded benchmark) are
    ``(...)``.  For every benchmark at once pass ``theta[..., None, :]`` against loadings
    ``(..., J, K)``.
    """
    theta = np.asarray(theta, dtype=float)
    if bounded is not None and np.any(bounded):
        theta = np.where(np.asarray(bounded, dtype=bool)[..., None], bounded_np(theta), theta)
    return intercept + np.einsum("...k,...k->...", theta, loading)


def linear_predictor_pt(theta, intercept, loading, bounded: np.ndarray | None = None):
    """PyTensor twin of :func:`linear_predictor_np` (``bounded`` is a NumPy bool array)."""
    if bounded is not None and np.any(bounded):
        theta = pt.where(np.asarray(bounded, dtype=bool)[..., None], bounded_pt(theta), theta)
    return intercept + (loading * theta).sum(axis=-1)


def expected_score_np(
    theta: ArrayLike,
    intercept: ArrayLike,
    loading: ArrayLike,
    floor: ArrayLike,
    bounded: ArrayLike | None = None,
) -> np.ndarray:
    """Expected score ``p = g + (1 - g) sigmoid(eta)`` (shapes as :func:`linear_predictor_np`)."""
    return floored_sigmoid_np(linear_predictor_np(theta, intercept, loading, bounded), floor)


def expected_score_pt(theta, intercept, loading, floor, bounded: np.ndarray | None = None):
    """PyTensor twin of :func:`expected_score_np`."""
    return floored_sigmoid_pt(linear_predictor_pt(theta, intercept, loading, bounded), floor)


# ---------------------------------------------------------------- noise and misfit
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


def noise_sd_pt(p, inv_n, misfit, floor=0.0, logit_misfit=0.0):
    """PyTensor twin of :func:`noise_sd_np`; ``inv_n`` is 1/n_items."""
    p_s = (p + inv_n) / (1.0 + 2.0 * inv_n)
    slope = pt.maximum(p - floor, 0.0) * (1.0 - p) / (1.0 - floor)
    return pt.sqrt(p_s * (1.0 - p_s) * inv_n + misfit**2 + (logit_misfit * slope) ** 2)


def inv_items(n_items: ArrayLike, default_n: float) -> np.ndarray:
    """1 / n_items, using ``default_n`` where the item count is unknown."""
    n = np.asarray(n_items, dtype=float)
    n = np.where(np.isfinite(n) & (n > 0), n, default_n)
    return 1.0 / n


def free_misfit_name(misfit_scale: str) -> str:
    """The misfit the spec estimates: ``"misfit"`` (score scale) or ``"logit_misfit"``."""
    return "misfit" if misfit_scale == "score" else "logit_misfit"


def misfits_np(
    structure: dict,
    free_value: ArrayLike,
    free_idx: ArrayLike,
    anchor_idx: ArrayLike,
    n_bench: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Score-scale and logit-scale misfits ``(tau, nu)``, each ``(..., n_bench)``.

    ``free_value`` ``(..., len(free_idx))`` is the estimated misfit of the non-anchor benchmarks
    ``free_idx`` (:func:`free_misfit_name` says which); everything else is fixed by the spec
    (``structure``): the anchors' ``tau`` is ``anchor_misfit`` and their ``nu`` 0; with
    ``misfit_scale = "score"`` ``nu`` is 0 everywhere, with ``"logit"`` the free benchmarks'
    ``tau`` is ``misfit_floor``.  A NaN ``free_value`` marks the estimated entries.
    """
    free_value = np.asarray(free_value, dtype=float)
    shape = free_value.shape[:-1] + (int(n_bench),)
    tau, nu = np.zeros(shape), np.zeros(shape)
    if structure["misfit_scale"] == "score":
        tau[..., free_idx] = free_value
    else:
        nu[..., free_idx] = free_value
        tau[..., free_idx] = structure["misfit_floor"]
    tau[..., anchor_idx] = structure["anchor_misfit"]
    return tau, nu


def misfits_pt(structure: dict, free_value, free_idx, anchor_idx, n_bench: int):
    """PyTensor twin of :func:`misfits_np` (for one vector of benchmarks)."""
    zeros = pt.zeros(int(n_bench))
    if structure["misfit_scale"] == "score":
        tau, nu = pt.set_subtensor(zeros[free_idx], free_value), zeros
    else:
        nu = pt.set_subtensor(zeros[free_idx], free_value)
        tau = pt.set_subtensor(zeros[free_idx], structure["misfit_floor"])
    tau = pt.set_subtensor(tau[anchor_idx], structure["anchor_misfit"])
    return tau, nu


# ---------------------------------------------------------------- likelihood
def observation_dist(structure: dict):
    """The standardised observation distribution: ``scipy.stats`` normal, or Student-t(nu)."""
    if structure["likelihood"] == "student_t":
        return stats.t(df=float(structure["student_t_nu"]))
    return stats.norm()


def observation_logpdf_np(y: ArrayLike, p: ArrayLike, sd: ArrayLike, structure: dict) -> np.ndarray:
    """Log density of scores ``y`` given expected scores ``p`` and noise sd ``sd``."""
    sd = np.asarray(sd, dtype=float)
    z = (np.asarray(y, dtype=float) - p) / sd
    return observation_dist(structure).logpdf(z) - np.log(sd)


def observation_pm(name: str, p, sd, structure: dict, **kwargs):
    """PyMC twin of :func:`observation_logpdf_np`: the likelihood ``name`` of the graph."""
    if structure["likelihood"] == "student_t":
        return pm.StudentT(name, nu=structure["student_t_nu"], mu=p, sigma=sd, **kwargs)
    return pm.Normal(name, mu=p, sigma=sd, **kwargs)


# ---------------------------------------------------------------- target (downstream) module
def target_score_np(
    z: ArrayLike, bias: ArrayLike, weight: ArrayLike, floor: ArrayLike
) -> np.ndarray:
    r"""Target's expected score :math:`p = g + (1 - g)\,\mathrm{sigmoid}(b + w \cdot z)`.

    ``z`` ``(..., K)`` coordinates, ``weight`` ``(..., K)``, ``bias`` and ``floor`` ``(...)``
    (broadcasting: draws ``(S, 1, K)`` against models ``(n, K)`` give ``(S, n)``).
    """
    return floored_sigmoid_np(linear_predictor_np(z, bias, weight), floor)


def target_score_pt(z, bias, weight, floor):
    """PyTensor twin of :func:`target_score_np`."""
    return floored_sigmoid_pt(linear_predictor_pt(z, bias, weight), floor)


def target_sd_np(
    p: ArrayLike, floor: ArrayLike, sigma: ArrayLike, tau: ArrayLike = 0.0
) -> np.ndarray:
    r"""Target's noise sd :math:`\sqrt{\sigma^2 + (\tau\,\partial p/\partial\eta)^2}`.

    ``tau = 0`` is the homoscedastic normal; with ``tau > 0`` and a small ``sigma`` the sd
    vanishes at the floor and the ceiling (:func:`noise_sd_np` without the sampling term).
    """
    return noise_sd_np(p, 0.0, sigma, floor, tau)


def target_sd_pt(p, floor, sigma, tau=0.0):
    """PyTensor twin of :func:`target_sd_np`."""
    return noise_sd_pt(p, 0.0, sigma, floor, tau)
