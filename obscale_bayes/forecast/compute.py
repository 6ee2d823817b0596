r"""Posterior predictive forecasts from compute, computed from posterior draws in NumPy.

For a model of family :math:`f` trained with FLOPs :math:`F`, each posterior draw :math:`s` gives

.. math::

    \theta^{(s)} &= a^{(s)}_f + b^{(s)}_f x + \sigma^{e(s)} \odot \varepsilon, \quad
        x = \log_{10}(F/10^{21}) - x_0 \\
    p^{(s)}_j &= g^{(s)}_j + (1 - g^{(s)}_j)\,\mathrm{sigmoid}(\alpha^{(s)}_j + \delta^{(s)}_{fj}
        + c^{(s)}_j x + \lambda^{(s)}_j\cdot\theta^{(s)}) \\
    y^{(s)}_j &= p^{(s)}_j + \mathrm{sd}_j(p^{(s)}_j)\,\varepsilon'

(:math:`\delta` the family offsets, :math:`c` the benchmark slopes, each 0 where the spec has
none.)  A family the fit has not seen draws :math:`a_f, b_f, \delta_f` from the population
:math:`N(\mu^a, \sigma^a)`, :math:`N(\mu^b, \sigma^b)`.  ``y`` is the score a new evaluation would
report (it includes the benchmark's sampling noise and misfit), clipped to the metric range.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from obscale_bayes.errors import UsageError
from obscale_bayes.forecast.result import Forecast, package_forecast
from obscale_bayes.model.draws import PosteriorArrays, family_terms
from obscale_bayes.model.equations import compute_axis_np
from obscale_bayes.validation import check_ci, check_flops

if TYPE_CHECKING:
    from obscale_bayes.fit.fitted import CapabilityModel

__all__ = ["forecast_compute", "forecast_compute_draws"]


def forecast_compute_draws(
    pa: PosteriorArrays, family: str, flops: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draws of capabilities (S, K), expected scores (S, J) and predictive scores (S, J)."""
    x = compute_axis_np(check_flops(flops), pa.x0)
    a, b = family_terms(pa, family, rng)
    theta = a + b * x + pa.residual_sd * rng.standard_normal(a.shape)
    p, y = pa.scores(theta, rng, pa.offset_at(pa.offset_of(family, rng), x))
    return theta, pa.to_metric(p), pa.to_metric(y)


def forecast_compute(
    fit: CapabilityModel,
    targets: list[tuple[str, float]] | tuple[str, float],
    ci: float = 0.9,
    seed: int = 0,
) -> Forecast:
    """Forecast every benchmark for (family, training FLOPs) targets.

    Each target is a new model: its capability residual, benchmark noise and misfit are drawn
    (the anchors' misfit is the spec's ``compute_anchor_misfit``, by default
    ``new_model_anchor_misfit``).

    Parameters
    ----------
    fit : CapabilityModel
    A fitted model.
    targets : (family, flops) or list of them
    ``flops`` in FLOPs (e.g. ``1e24``); a family the fit has not seen draws from the
    population of families.
    ci : float
    Central interval probability in (0, 1).
    seed : int
    Seed of the predictive noise draws (same seed, same numbers).
    """
    ci = check_ci(ci)
    if isinstance(targets, tuple):
        targets = [targets]
    if not targets:
        raise UsageError("targets: give at least one (family, flops) target")
    rng = np.random.default_rng(seed)
    pa = fit.compute_posterior  # a model the fit has not seen, forecast from compute only
    names, fams, flops_l, ths, ys = [], [], [], [], []
    for fam, flops in targets:
        fam = str(fam).strip()
        if not fam:
            raise UsageError(
                "family: the family name is empty; give a family like 'Llama-2' or a new name"
            )
        theta, _, y = forecast_compute_draws(pa, fam, flops, rng)
        names.append(f"{fam} @ {float(flops):.3g} FLOPs")
        fams.append(fam)
        flops_l.append(float(flops))
        ths.append(theta)
        ys.append(y)
    return package_forecast(fit, names, fams, flops_l, np.stack(ths, 1), np.stack(ys, 1), ci)
