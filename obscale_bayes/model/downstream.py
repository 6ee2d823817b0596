r"""The downstream (target) module: a task fitted on the fixed coordinates of its input scores.

For training model :math:`i` with coordinates :math:`z_i \in \mathbb R^K`
(:class:`~obscale_bayes.model.coordinates.PrincipalAxes`: top three variance-ordered, sign-fixed
principal axes of the input scores, unit sd on the training models) and target :math:`y_i` on its
transformed scale (``(y - chance) / (max - chance)``, chance = 0):

.. math::

    p_i &= g + (1 - g)\,\mathrm{sigmoid}(b + w \cdot z_i) \\
    y_i &\sim \mathcal N\big(p_i,\ \mathrm{sd}_i\big), \quad
        \mathrm{sd}_i = \begin{cases} \sigma & \text{``normal'', ``censored''} \\
        \sqrt{\sigma^2 + (\tau\,\partial p_i/\partial\eta)^2} & \text{``hetero''}\end{cases} \\
    b &\sim \mathcal N(0, s_b), \quad w_k \sim \mathcal N(0, s_w), \quad
        \sigma \sim \mathcal N^+(0, s_\sigma), \quad \tau \sim \mathcal N^+(0, s_\tau), \\
    g &= 0 \ (\text{link ``sigmoid''}) \quad\text{or}\quad g \sim \mathcal U(0, g_{\max})
        \ (\text{``floored\_sigmoid''}, \text{the paper's fitted floor} \le 0.2)

``censored`` is the homoscedastic normal censored at 0 and 1: the target, clipped to [0, 1], is
:math:`\min(1, \max(0, y^*))` with :math:`y^* \sim \mathcal N(p_i, \sigma)`, so an exact 0 (a task
no training model solves once, or a score under chance) or an exact 1 (a saturated task)
contributes the mass :math:`\Phi(-p_i/\sigma)` or :math:`\Phi((p_i - 1)/\sigma)` instead of a
density.  Every candidate's forecast is clipped to [0, 1] the same way
(:mod:`obscale_bayes.forecast.downstream`).

The ceiling is fixed at 1 (:math:`h = 1`).  Prior scales: ``s_b = 2.5`` (the usual
weakly-informative scale of a logistic regression on unit-sd predictors, rstanarm's default); the
ridge ``s_w`` is not fixed by hand but weighed over :data:`RIDGE_SCALES` = {0.5, 1, 2.5} by the
training-data rule of :mod:`obscale_bayes.fit.downstream_select` (blocked K-fold stacking, with
the noise model): a ridge keeps a weight from growing without bound along an axis the weak
training models barely span, and how hard to pull is a question the training data can answer.
``TargetPriors.weight_sd = 2.5`` is the scale of a single fit outside that rule.  The noise
scales put the target's misfit at a few points of its range.  The equations are
:func:`~obscale_bayes.model.equations.target_score_pt` and
:func:`~obscale_bayes.model.equations.target_sd_pt` (NumPy twins beside them).

Identification: the coordinates are fixed numbers (no rotation, sign or scale freedom left:
:mod:`~obscale_bayes.model.coordinates` fixes all three), so ``b, w`` are those of an ordinary
logistic-link regression; the floor is identified by the training models near chance, and the
ridge prior identifies directions the training set does not span.

Why the cut is honest.  The target module is fitted *given* the coordinates, with no feedback
into them or into the capability module (issue 8's probe: fitted jointly, the training models'
capabilities bent to fit the target and its noise collapsed to 0.003-0.005 against 0.057 on fixed
scores; the held-out models' capabilities come from their inputs alone, so what the joint fit
learned did not carry over).  What it keeps: the uncertainty of the target's weights, bias and
floor given the training data, and the target's own noise (predictive draws include it), so a
band is "where a new evaluation of this task would land".  What it drops: the measurement noise
of the input scores that define the coordinates (of training and new models alike; the
coordinates are treated as known), and any information the target carries about the
capabilities.  The probe found that adding the new models' capability uncertainty on top of the
target noise double-counted (the target noise already absorbs the inputs' noise, which is in the
training residuals); for a compute-only forecast, where the inputs themselves are predicted, their
predictive spread is carried draw by draw (:mod:`obscale_bayes.forecast.downstream`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pymc as pm

from obscale_bayes.errors import UsageError
from obscale_bayes.model.equations import target_score_pt, target_sd_pt

__all__ = [
    "LINKS",
    "NOISE_MODELS",
    "RIDGE_SCALES",
    "TargetPriors",
    "build_target_model",
    "check_choice",
    "free_names",
    "observed_target",
]

#: Noise models of the target (candidates of the selection rule of ``fit.downstream``).
NOISE_MODELS = ("normal", "hetero", "censored")
#: Ridge scales of the weights (candidates of the selection rule), on unit-sd coordinates.
RIDGE_SCALES = (0.5, 1.0, 2.5)
#: Links: the plain sigmoid (floor 0) and the sigmoid with a fitted floor in [0, max_floor].
LINKS = ("sigmoid", "floored_sigmoid")


@dataclass(frozen=True)
class TargetPriors:
    """Prior scales of the target module (fixed in advance; see the module docstring)."""

    weight_sd: float = 2.5
    bias_sd: float = 2.5
    sigma_sd: float = 0.1
    hetero_sigma_sd: float = 0.05
    tau_sd: float = 1.0
    max_floor: float = 0.2

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def free_names(link: str, noise: str) -> list[str]:
    """Names of the free parameters of a target module (the gate is checked on them)."""
    names = ["bias", "weight", "sigma"]
    if noise == "hetero":
        names.append("tau")
    if link == "floored_sigmoid":
        names.append("floor_fitted")
    return names


def check_choice(link: str, noise: str) -> None:
    """Raise a one-line :class:`UsageError` for an unknown link or noise model."""
    if link not in LINKS:
        raise UsageError(f"link: unknown target link {link!r}; use one of {', '.join(LINKS)}")
    if noise not in NOISE_MODELS:
        raise UsageError(
            f"noise: unknown target noise model {noise!r}; use one of {', '.join(NOISE_MODELS)}"
        )


def build_target_model(
    z: np.ndarray,
    y: np.ndarray,
    link: str = "sigmoid",
    noise: str = "normal",
    priors: TargetPriors | None = None,
) -> pm.Model:
    """The PyMC graph of the module docstring for coordinates ``z`` (n, K) and targets ``y`` (n,).

    ``z``, ``y`` and the ridge scale ``weight_sd`` are ``pm.Data`` (names ``z``, ``y_data``,
    ``weight_sd``), so that one compiled graph per (link, noise) serves every fold and every
    ridge scale of the selection rule (``fit.downstream``: nutpie ``with_data``).  For the
    ``censored`` noise ``y`` is clipped to [0, 1] (scores under the chance floor count as <= 0).

    Raises
    ------
    UsageError
        Unknown ``link`` / ``noise``, or ``z`` and ``y`` of different lengths / non-finite.
    """
    check_choice(link, noise)
    pr = priors or TargetPriors()
    z = np.asarray(z, dtype=float)
    y = np.asarray(y, dtype=float)
    if z.ndim != 2 or y.ndim != 1 or len(z) != len(y):
        raise UsageError(f"z: expected (n, K) coordinates for n = {len(y)} targets, got {z.shape}")
    if not (np.isfinite(z).all() and np.isfinite(y).all()):
        raise UsageError("y: the training coordinates and targets must be finite")
    coords = {"axis": np.arange(z.shape[1])}
    with pm.Model(coords=coords) as model:
        z_d = pm.Data("z", z)
        y_d = pm.Data("y_data", observed_target(y, noise))
        w_sd = pm.Data("weight_sd", np.asarray(pr.weight_sd, dtype=float))
        bias = pm.Normal("bias", 0.0, pr.bias_sd)
        weight = pm.Normal("weight", 0.0, w_sd, dims="axis")
        if link == "floored_sigmoid":
            floor = pm.Uniform("floor_fitted", 0.0, pr.max_floor)
        else:
            floor = 0.0
        p = target_score_pt(z_d, bias, weight, floor)
        if noise == "hetero":
            sigma = pm.HalfNormal("sigma", pr.hetero_sigma_sd)
            tau = pm.HalfNormal("tau", pr.tau_sd)
            sd = target_sd_pt(p, floor, sigma, tau)
        else:
            sigma = pm.HalfNormal("sigma", pr.sigma_sd)
            sd = target_sd_pt(p, floor, sigma)
        if noise == "censored":
            dist = pm.Normal.dist(mu=p, sigma=sd)
            pm.Censored("y", dist, lower=0.0, upper=1.0, observed=y_d, shape=z_d.shape[0])
        else:
            pm.Normal("y", mu=p, sigma=sd, observed=y_d, shape=z_d.shape[0])
    return model


def observed_target(y: np.ndarray, noise: str) -> np.ndarray:
    """The target as the likelihood of ``noise`` sees it (clipped to [0, 1] for ``censored``)."""
    y = np.asarray(y, dtype=float)
    return np.clip(y, 0.0, 1.0) if noise == "censored" else y
