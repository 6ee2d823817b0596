r"""Forecasting a target task with the downstream module, draw by draw.

From observed input scores (the backtests' and a user's "new model with known standard scores"):

.. math::

    z = \mathrm{axes}(s_{\text{new}}), \qquad
    y^{(s)} = p^{(s)}(z) + \mathrm{sd}^{(s)}(p^{(s)})\,\varepsilon^{(s)}, \quad
    c^{(s)} \sim \mathrm{Categorical}(\text{stacking weights})

each draw :math:`s` taken from the candidate :math:`c^{(s)}` (the stacking mixture of
:func:`~obscale_bayes.fit.downstream.fit_target_module`) and clipped to [0, 1]; :math:`z` is fixed (the cut: the new
model's inputs are taken as known, see :mod:`obscale_bayes.model.downstream`).

From compute only (family + FLOPs), the capability module supplies the inputs: for each draw,
family + FLOPs -> capabilities -> predictive standard scores
(:func:`~obscale_bayes.forecast.compute.forecast_compute_draws`) -> coordinates (the same map
:meth:`~obscale_bayes.model.coordinates.PrincipalAxes.transform_scores`) -> target.  Capability
draws and target draws come from separate posteriors (the cut) and are paired at random.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import xarray as xr

from obscale_bayes.errors import UsageError
from obscale_bayes.forecast.compute import forecast_compute_draws
from obscale_bayes.validation import check_flops

if TYPE_CHECKING:  # pragma: no cover
    from obscale_bayes.fit.downstream import TargetModule
    from obscale_bayes.fit.fitted import CapabilityModel

__all__ = ["n_draws", "target_draws", "target_draws_compute", "target_draws_from_coordinates"]


def target_draws_from_coordinates(
    module: TargetModule, z: np.ndarray, seed: int = 0, expected: bool = False
) -> np.ndarray:
    """Predictive (or, with ``expected``, mean) target draws ``(S, n)`` at coordinates ``z``.

    ``z`` is ``(n, K)`` (fixed coordinates) or ``(S, n, K)`` (one set per draw).  S is
    :func:`n_draws` (a candidate rerun with more draws is thinned evenly to S).
    """
    rng = np.random.default_rng(seed)
    names = list(module.fits)
    s = n_draws(module)
    pick = rng.choice(len(names), size=s, p=[module.weights[n] for n in names])
    z = np.asarray(z, dtype=float)
    out = np.empty((s, z.shape[-2]))
    for i, name in enumerate(names):
        rows = np.flatnonzero(pick == i)
        if not len(rows):
            continue
        fit = module.fits[name]
        take = np.linspace(0, len(fit.draws["bias"]) - 1, s).round().astype(int)[rows]
        sub = fit.subset(take)
        p = sub.expected(z[rows] if z.ndim == 3 else z)
        out[rows] = p if expected else p + sub.sd(p) * rng.standard_normal(p.shape)
    # A target cannot leave its score range: every candidate's forecast is clipped to [0, 1]
    # (the law the selection rule scored, ``TargetFit.log_score``; ``censored`` is this exactly).
    return out if expected else np.clip(out, 0.0, 1.0)


def n_draws(module: TargetModule) -> int:
    """Draws of a forecast: the fewest posterior draws among the module's candidate fits."""
    return min(len(f.draws["bias"]) for f in module.fits.values())


def target_draws(
    module: TargetModule, scores: pd.DataFrame, seed: int = 0, expected: bool = False
) -> np.ndarray:
    """Target draws ``(S, n)`` for models with observed input ``scores`` ([0, 1] scale, models x
    inputs, NaN = missing: filled by the training imputer)."""
    return target_draws_from_coordinates(module, module.axes.transform(scores), seed, expected)


def target_draws_compute(
    capability: CapabilityModel,
    module: TargetModule,
    targets: list[tuple[str, float]] | tuple[str, float],
    seed: int = 0,
) -> xr.DataArray:
    """Target draws ``(sample, model)`` from compute only: family + FLOPs -> target.

    ``capability`` must be fitted on (at least) the module's input benchmarks; ``targets`` are
    ``(family, flops)`` pairs (FLOPs absolute, e.g. ``1e24``).  The result's ``model`` labels are
    ``"family@flops"``.
    """
    if isinstance(targets, tuple):
        targets = [targets]
    if not targets:
        raise UsageError("targets: give at least one (family, flops) target")
    pa = capability.compute_posterior  # the compute path: no score is given
    cols = module.axes.columns_
    missing = [c for c in cols if c not in pa.benchmark_ids]
    if missing:
        raise UsageError(f"capability: the fit has no benchmark {missing[0]!r} of the module")
    idx = [pa.benchmark_ids.index(c) for c in cols]
    lo, hi = pa.metric_min[idx], pa.metric_max[idx]
    rng = np.random.default_rng(seed)
    s = n_draws(module)
    z = []
    for fam, flops in targets:
        _, _, y = forecast_compute_draws(pa, str(fam), check_flops(flops), rng)
        y01 = (y[:, idx] - lo) / (hi - lo)
        pair = rng.integers(0, len(y01), size=s)  # capability and target posteriors are separate
        z.append(module.axes.transform_scores(y01[pair]))
    draws = target_draws_from_coordinates(module, np.stack(z, axis=1), seed=seed + 1)
    labels = [f"{fam}@{float(fl):.3g}" for fam, fl in targets]
    return xr.DataArray(draws, dims=("sample", "model"), coords={"model": labels}, name="target")
