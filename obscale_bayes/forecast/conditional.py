r"""Fill in the blanks: forecast new models' missing scores from the scores they have.

The fit is not redone.  For every posterior draw :math:`s` of the population parameters a new
model's capabilities :math:`\theta` get a Gaussian prior :math:`N(m_s, C_s)` from its family and
compute (the model's own equations, with the family terms, the unknown compute and, for a new
family, the family effects integrated out), and are then conditioned on the observed scores:

.. math::

    \log q_s(\theta) = \log N(\theta; m_s, C_s)
        + \sum_{j \in \text{obs}} \log \mathcal D\!\left(y_j;\ p_j(\theta),\ \mathrm{sd}_j(\theta)\right)

(:class:`~obscale_bayes.forecast.conditional_target.ConditionalTarget`; link, noise and
likelihood -- normal or Student-t, as the spec says -- are those of
:mod:`obscale_bayes.model.equations`).  Each observed cell depends on
:math:`\theta` only through its linear predictor :math:`\eta_j`, so the gradient and Hessian
follow by the chain rule from the first two derivatives of the cell's log density in
:math:`\eta_j` (central differences of the equations, three evaluations a cell) and of the
bounded scale where a benchmark is on it.  One draw from :math:`q_s` is taken by importance
resampling from a Laplace proposal adapted per model (:mod:`obscale_bayes.forecast.laplace_is`),
for all new models and all draws in one batched NumPy pass (in blocks of ``_BLOCK_CELLS``
cells, for memory).
Combined with the posterior draws this samples the joint posterior of the population
parameters and the new models' capabilities, *given the population parameters are not updated
by the new models* -- the approximation that makes this cheap, checked against a full refit in
``tests/statistical/test_conditional_refit.py``.

Prior for each case (per draw; :math:`x` is centred log10 FLOPs):

* known family, known FLOPs: :math:`m = a_f + b_f x`, :math:`C = \mathrm{diag}(\sigma_e^2)`;
* known family, unknown FLOPs (:math:`x \sim N(\mu_x, s_x^2)`): :math:`m = a_f + b_f \mu_x`,
  :math:`C = \mathrm{diag}(\sigma_e^2) + s_x^2 b_f b_f^T`;
* new family, known FLOPs: :math:`m = \mu_a + \mu_b x`,
  :math:`C = \mathrm{diag}(\sigma_a^2 + \sigma_b^2 x^2 + \sigma_e^2)`;
* new family, unknown FLOPs: the exact mean and covariance of :math:`a + b x + e` (a Gaussian
  moment match; the true prior is not Gaussian there).

A family's offsets and the benchmark slopes' :math:`c_j x` (where the spec has them) shift the
intercepts; an unseen family's offsets and an unknown :math:`x` are marginalised on the observed
cells as extra logit misfit and drawn afresh for the blank ones (:func:`conditional_forecast`).

Each new model has its own random stream (spawned from ``seed`` by its row number), so its
numbers do not depend on the other models forecast with it.
"""

from __future__ import annotations

import numpy as np

from obscale_bayes.data.tables import BenchmarkData
from obscale_bayes.errors import DataError
from obscale_bayes.forecast.conditional_target import ConditionalTarget
from obscale_bayes.forecast.laplace_is import find_modes, importance_resample
from obscale_bayes.forecast.result import Forecast, package_forecast
from obscale_bayes.model.equations import compute_axis_np
from obscale_bayes.model.inputs import x_prior_for_unknown
from obscale_bayes.progress import get_logger
from obscale_bayes.validation import check_ci, check_positive_int

__all__ = [
    "ConditionalTarget",
    "conditional_forecast",
    "forecast_from_scores",
    "new_model_x",
    "theta_prior",
]

log = get_logger(__name__)

_BLOCK_CELLS = 1_600_000  # (draw, model, observed score) cells conditioned at once (memory)
_PILOT_DRAWS = 32  # draws whose modes give the Newton start of all draws


def forecast_from_scores(
    fit, new: BenchmarkData, ci: float = 0.9, seed: int = 0, n_particles: int = 4
) -> Forecast:
    """Fill in the blanks: forecast the scores new models do not have from those they have.

    Each posterior draw updates each new model's capabilities with its observed scores
    (importance resampling from a Laplace proposal, see this module's docstring); the rest of
    the model is not refitted.  A new model's anchor scores carry the spec's
    ``new_model_anchor_misfit`` (conditioning and predictive noise), not the fit's own
    ``anchor_misfit`` (:attr:`CapabilityModel.new_model_posterior`).

    Parameters
    ----------
    fit : CapabilityModel
        A fitted model.
    new : BenchmarkData
        The new models (a ``models`` row each: family, FLOPs or parameters, either may be
        blank) and the scores they have, on benchmarks of the fit.
    ci : float
        Central interval probability in (0, 1).
    seed : int
        Seed of the importance sampling and the predictive noise (same seed, same numbers).
    n_particles : int
        Importance particles per posterior draw; a draw whose effective sample size is under
        half of them gets ``15 * n_particles`` more.

    Returns
    -------
    Forecast
        Every benchmark of every new model, with an ``observed`` column; the table's
        ``attrs["importance_ess_fraction"]`` holds each model's median effective sample size
        fraction over the draws.
    """
    return conditional_forecast(
        fit,
        new,
        ci=check_ci(ci),
        seed=seed,
        n_particles=check_positive_int(n_particles, "n_particles"),
    )


def theta_prior(
    fit, family: str | None, flops_1e21: float, params_b: float
) -> tuple[np.ndarray, np.ndarray]:
    """Per-draw Gaussian prior (mean (S, K), covariance (S, K, K)) of a new model's capabilities."""
    pa = fit.posterior
    x, sx = new_model_x(fit, flops_1e21, params_b)
    known_x, mx = sx == 0.0, x
    fi = pa.family_index(family) if isinstance(family, str) else None
    se2 = pa.residual_sd**2
    if fi is not None:
        a, b = pa.efficiency[:, fi], pa.slope[:, fi]
        if known_x:
            return a + b * x, _diag(se2)
        return a + b * mx, _diag(se2) + sx**2 * b[:, :, None] * b[:, None, :]
    ma, sa2 = pa.new_family_efficiency_mean, pa.efficiency_sd**2
    mb, sb2 = pa.slope_mean, pa.slope_sd**2
    if known_x:
        return ma + mb * x, _diag(sa2 + sb2 * x**2 + se2)
    cov = _diag(sa2 + sb2 * (mx**2 + sx**2) + se2) + sx**2 * mb[:, :, None] * mb[:, None, :]
    return ma + mb * mx, cov


def new_model_x(fit, flops_1e21: float, params_b: float) -> tuple[float, float]:
    """A new model's compute axis: ``(x, 0)`` where its FLOPs are known, else the mean and sd of
    its prior (from its parameters where known, :func:`x_prior_for_unknown`)."""
    if np.isfinite(flops_1e21) and flops_1e21 > 0:
        return float(compute_axis_np(flops_1e21, fit.posterior.x0, per_1e21=True)), 0.0
    mu, sd = x_prior_for_unknown(np.array([params_b], dtype=float), fit.spec)
    return float(mu[0]), float(sd[0])


def _diag(v: np.ndarray) -> np.ndarray:
    out = np.zeros(v.shape + (v.shape[-1],))
    idx = np.arange(v.shape[-1])
    out[..., idx, idx] = v
    return out


def conditional_forecast(fit, new: BenchmarkData, ci: float, seed: int, n_particles: int = 4):
    """Forecast every benchmark of every model in ``new`` from its given scores (see module)."""
    pa = fit.new_model_posterior  # new models: their anchors' misfit (spec)
    extra = sorted(set(new.scores["benchmark"]) - set(pa.benchmark_ids))
    if extra:
        raise DataError(
            f"{new.source}: benchmark(s) {extra[:5]} were not part of the fit "
            f"({', '.join(pa.benchmark_ids)}); drop those columns or refit with them"
        )
    if new.models.empty:
        raise DataError(f"{new.source}: no models to forecast; add at least one model row")
    b_pos = {b: i for i, b in enumerate(pa.benchmark_ids)}
    by_model = dict(iter(new.scores.groupby("model", sort=False)))
    empty = new.scores.iloc[0:0]
    rows = list(new.models.itertuples(index=False))
    rngs = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(len(rows))]
    cells, priors, offsets, known, extra = [], [], [], [], []
    s = pa.n_samples
    for row, rng in zip(rows, rngs, strict=True):
        sc = by_model.get(row.model, empty)
        j = sc["benchmark"].map(b_pos).to_numpy(dtype=int)
        y01 = (sc["value"].to_numpy(dtype=float) - pa.metric_min[j]) / (
            pa.metric_max[j] - pa.metric_min[j]
        )
        cells.append((j, y01))
        fam = row.family if isinstance(row.family, str) else None
        priors.append(theta_prior(fit, fam, float(row.flops_1e21), float(row.params_b)))
        # Family offsets: a seen family's enter the conditioning as they are.  An unseen
        # family's are unknown: its observed cells get their prior sd as extra logit misfit
        # (the offsets marginalised, delta method), and its blank cells fresh prior draws.
        off = pa.offset_of(fam, rng)
        seen = off is None or pa.family_index(fam) is not None
        # Benchmark slopes: c_j x at the model's x; an unknown x enters the conditioning at its
        # prior mean with c_j s_x as extra logit misfit (its correlation with theta through
        # b_f is dropped), and the blank cells at a fresh draw of x.
        mx, sx = new_model_x(fit, float(row.flops_1e21), float(row.params_b))
        slopes = pa.benchmark_slope is not None
        x_draw = mx + sx * rng.standard_normal(s) if slopes and sx > 0 else mx
        offsets.append(pa.offset_at(off, x_draw))
        known.append(pa.offset_at(off if seen else None, mx))
        ex = None if seen else pa.family_offset_sd
        if slopes and sx > 0:
            ex = np.hypot(0.0 if ex is None else ex, pa.benchmark_slope * sx)
        extra.append(ex)
    thetas, ess = [], []
    for part in _blocks([len(j) for j, _ in cells], s):
        th, e = _condition(fit, priors[part], cells[part], rngs[part], n_particles,
                           known[part], extra[part])  # fmt: skip
        thetas += list(th.reshape(-1, s, th.shape[-1]))
        ess += [float(np.median(v)) for v in e.reshape(-1, s)]
    names = [str(r.model) for r in rows]
    fams = [r.family if isinstance(r.family, str) else None for r in rows]
    flops_l = [float(r.flops_1e21) * 1e21 if np.isfinite(r.flops_1e21) else np.nan for r in rows]
    ys = [
        pa.to_metric(pa.scores(th, rng, o)[1])
        for th, rng, o in zip(thetas, rngs, offsets, strict=True)
    ]
    observed = new.scores[["model", "benchmark", "value"]].rename(columns={"value": "observed"})
    fc = package_forecast(
        fit, names, fams, flops_l, np.stack(thetas, 1), np.stack(ys, 1), ci, observed=observed
    )
    fc.table.attrs["importance_ess_fraction"] = dict(zip(names, ess, strict=True))
    return fc


def _blocks(n_obs: list[int], n_draws: int) -> list[slice]:
    """Consecutive models whose padded cells (draws x models x most scores) fit a block."""
    out, start, most = [], 0, 1
    for m, n in enumerate(n_obs):
        most = max(most, n)
        if m > start and n_draws * most * (m + 1 - start) > _BLOCK_CELLS:
            out.append(slice(start, m))
            start, most = m, max(1, n)
    return out + [slice(start, len(n_obs))]


def _condition(
    fit, priors, cells, rngs, n_particles: int, offsets=None, extra_logit_sd=None
) -> tuple[np.ndarray, np.ndarray]:
    """Capability draws ``(M * S, K)`` of a block of models and the ESS fraction per pair
    (``offsets``: each model's family offsets (S, J) or None; ``extra_logit_sd``: (S, J) logit
    misfit added in quadrature, or None)."""
    pa = fit.new_model_posterior
    s = pa.n_samples
    target = ConditionalTarget(
        pa,
        [m for m, _ in priors],
        [c for _, c in priors],
        [j for j, _ in cells],
        [y for _, y in cells],
        fit.spec.structure,
        offsets,
        extra_logit_sd,
    )
    # Newton start: each model's median mode over a few draws (a step or two from every draw's)
    pilot = np.linspace(0, s - 1, min(s, _PILOT_DRAWS)).astype(int)
    pairs = (np.arange(len(priors))[:, None] * s + pilot).ravel()
    modes, _ = find_modes(target.take(pairs), target.mean[pairs])
    start = np.median(modes.reshape(len(priors), len(pilot), -1), axis=1)
    mode, low = find_modes(target, np.repeat(start, s, axis=0))
    theta, ess = importance_resample(target, mode, low, rngs, n_particles)
    log.debug("conditioned %d models: median ESS fraction %.2f", len(priors), np.median(ess))
    return theta, ess
