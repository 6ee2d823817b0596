r"""The hierarchical capability model: ``build_model(data, spec) -> pm.Model``.

Notation: models :math:`m`, benchmarks :math:`j`, families :math:`f(m)`, capabilities
:math:`k = 1..K`.

.. math::

    x_m &= \log_{10}(\mathrm{FLOPs}_m / 10^{21}) - x_0
        \quad(\text{latent with a prior where FLOPs are unknown}) \\
    a_{fk} &\sim N(\mu^a_k + \gamma_k t_f, \sigma^a_k), \quad b_{fk} = \mu^b_k
        \quad(\text{family efficiency partially pooled, one slope per capability}) \\
    \theta_{mk} &\sim N(a_{f(m)k} + b_{f(m)k} x_m,\ \sigma^e_k)
        \quad(\text{capabilities}) \\
    \eta_{mj} &= \alpha_j + \delta_{f(m)j} + c_j x_m + \lambda_j \cdot \theta_m
        \quad(\text{factor model}) \\
    p_{mj} &= g_j + (1 - g_j)\,\mathrm{sigmoid}(\eta_{mj}) \quad(\text{chance floor } g_j) \\
    y_{mj} &\sim N\!\left(p_{mj},\ \sqrt{\tilde p_{mj}(1-\tilde p_{mj})/n_j + \tau_j^2}\right),
        \quad \tilde p = (n_j p + 1)/(n_j + 2)

The family-by-benchmark offsets :math:`\delta_{fj} \sim N(0, \sigma^\delta_j)` (zero on the
anchors) are there only with ``structure.family_offsets``; otherwise :math:`\delta = 0`.
The per-benchmark compute slopes :math:`c_j = \sigma^c z_j`, :math:`z_j \sim N(0, 1)` (zero on the
anchors, whose trend with compute is the capabilities' own :math:`b_k`) are there only with
``structure.benchmark_slopes``; otherwise :math:`c = 0`.
With ``structure.family_slopes`` each family has its own slope, :math:`b_{fk} \sim N(\mu^b_k,
\sigma^b_k)` (partial pooling; the ``family_slopes`` variant).  The release-date trend
:math:`\gamma_k t_f` (``t_f`` the family's median release date in years
since ``release_ref_year``; latent with a prior from the dated families where no member has a
date) is there only with ``structure.release_trend``; otherwise :math:`\gamma = 0`.

Scores are rescaled to [0, 1] by each benchmark's metric range before they enter.  The
equations (link, bounded scale, noise, misfit switch, likelihood) are those of
:mod:`obscale_bayes.model.equations`, whose PyTensor functions this graph calls; the arrays
come from :func:`~obscale_bayes.model.inputs.prepare_inputs`.

Identification (anchors)
------------------------
A factor model is invariant to :math:`\theta \to A\theta + c`,
:math:`\lambda \to \lambda A^{-1}`, :math:`\alpha \to \alpha - \lambda A^{-1} c` for any
invertible :math:`A`: rotation, sign flips, scale and location.  Lower-triangular loadings only
remove rotation, leave sign flips to a positivity constraint and scale to the prior, and in
practice the weak third factor then does not mix.  Here each capability :math:`k` has an
*anchor benchmark* whose loading row is the unit vector :math:`e_k` and whose intercept is 0, so
:math:`\theta_{mk}` *is* model :math:`m`'s latent logit on anchor :math:`k` (above its floor).
Any :math:`(A, c)` that keeps the anchor rows equal to the identity and the anchor intercepts at
0 must be :math:`A = I`, :math:`c = 0`: rotation, sign, scale and location are all fixed, the
posterior has a single mode, and every parameter has a meaning in score units.  The remaining
trade-off, between a model's residual :math:`e_{mk}` and its family terms, is handled by the
hierarchical priors (a family with one model shrinks to the population).
"""

from __future__ import annotations

import weakref
from typing import Protocol

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from obscale_bayes.data.tables import BenchmarkData
from obscale_bayes.model.equations import (
    compute_shift_pt,
    efficiency_centre_pt,
    expected_score_pt,
    free_misfit_name,
    misfits_pt,
    noise_sd_pt,
    observation_pm,
)
from obscale_bayes.model.inputs import ModelInputs, coords_of, prepare_inputs
from obscale_bayes.spec.spec import ModelSpec

__all__ = ["build_model", "model_for_fit"]


def build_model(
    data: BenchmarkData, spec: ModelSpec, inputs: ModelInputs | None = None
) -> pm.Model:
    """Build the PyMC model of the module docstring for ``data`` under ``spec``.

    Parameters
    ----------
    data : BenchmarkData
        Models (with family and FLOPs), long-format scores and benchmark metadata.
    spec : ModelSpec
        Structure and priors.
    inputs : ModelInputs, optional
        Pre-computed :func:`~obscale_bayes.model.inputs.prepare_inputs` result (saves
        recomputing it).

    Returns
    -------
    pm.Model
        With dims ``model, family, benchmark, factor`` and observed ``score`` over ``obs``.
    """
    inp = inputs if inputs is not None else prepare_inputs(data, spec)
    pr = spec.priors
    st = spec.structure
    n_b = len(inp.benchmark_ids)
    n_k = len(inp.factor_ids)
    free = inp.free_bench
    with pm.Model(coords=coords_of(inp)) as model:
        # --- compute axis, with latent FLOPs where unknown
        x_known = np.nan_to_num(inp.x, nan=0.0)
        if len(inp.unknown_x):
            x_lat = pm.Normal(
                "x_latent",
                mu=inp.x_prior_mu[inp.unknown_x],
                sigma=inp.x_prior_sd[inp.unknown_x],
                dims="latent_flops_model",
            )
            x = pt.set_subtensor(pt.as_tensor(x_known)[inp.unknown_x], x_lat)
        else:
            x = pt.as_tensor(x_known)
        # --- family efficiency (intercept), partial pooling; slope shared or per family
        mu_a = pr["efficiency_mean"].to_pymc("efficiency_mean", dims="factor")
        sd_a = pr["efficiency_sd"].to_pymc("efficiency_sd", dims="factor")
        if st["release_trend"]:
            # centre of each family's efficiency: mu_k + gamma_k t_f (t_f latent where undated)
            gamma = pr["efficiency_trend"].to_pymc("efficiency_trend", dims="factor")
            t = pt.as_tensor(np.nan_to_num(inp.family_year, nan=0.0))
            und = inp.undated_families
            if len(und):
                t_lat = pm.Normal("release_latent", mu=inp.year_prior[0],
                                  sigma=inp.year_prior[1], dims="undated_family")  # fmt: skip
                t = pt.set_subtensor(t[und], t_lat)
            centre = efficiency_centre_pt(mu_a, gamma, t)
        else:
            centre = mu_a
        if st["noncentered_efficiency"]:
            z_a = pm.Normal("efficiency_z", 0.0, 1.0, dims=("family", "factor"))
            a = pm.Deterministic("efficiency", centre + sd_a * z_a, dims=("family", "factor"))
        else:
            # Centred (the noncentered/downstream specs): fine where every family has several
            # well-measured models; the default non-centres (efficiency_sd funnel otherwise).
            a = pm.Normal("efficiency", mu=centre, sigma=sd_a, dims=("family", "factor"))
        mu_b = pr["slope_mean"].to_pymc("slope_mean", dims="factor")
        if st["family_slopes"]:
            sd_b = pr["slope_sd"].to_pymc("slope_sd", dims="factor")
            z_b = pm.Normal("slope_z", 0.0, 1.0, dims=("family", "factor"))
            b = pm.Deterministic("slope", mu_b + sd_b * z_b, dims=("family", "factor"))
        else:
            b = pm.Deterministic(
                "slope", pt.tile(mu_b[None, :], (len(inp.family_ids), 1)), dims=("family", "factor")
            )
        theta_mean = a[inp.family_idx] + b[inp.family_idx] * x[:, None]
        sd_e = pr["residual_sd"].to_pymc("residual_sd", dims="factor")
        # Non-centred where the anchor says little per model (HumanEval: 164 items, zeros and
        # missing cells; any anchor near chance, as on weak training sets), which otherwise
        # forms a funnel with residual_sd; the default non-centres all three.
        nc = np.array([f in st["noncentered_factors"] for f in inp.factor_ids])
        parts = []
        if (~nc).any():
            parts.append(
                pm.Normal(
                    "capability_c",
                    mu=theta_mean[:, ~nc],
                    sigma=sd_e[~nc],
                    shape=(len(inp.model_ids), int((~nc).sum())),
                )
            )
        if nc.any():
            z_e = pm.Normal("capability_z", 0.0, 1.0, shape=(len(inp.model_ids), int(nc.sum())))
            parts.append(theta_mean[:, nc] + sd_e[nc] * z_e)
        order = np.argsort(np.concatenate([np.flatnonzero(~nc), np.flatnonzero(nc)]))
        theta = pt.concatenate(parts, axis=1)[:, order]
        theta = pm.Deterministic("capability", theta, dims=("model", "factor"))
        # --- factor model with anchors: identity rows, zero intercepts
        if len(inp.bounded_bench):
            # Loadings on the bounded scale are >= 0 (their own prior); the rest are signed.
            lam_free = pt.zeros((len(free), n_k))
            if len(inp.signed_bench):
                lam_s = pr["loading"].to_pymc("loading_free", dims=("signed_benchmark", "factor"))
                lam_free = pt.set_subtensor(
                    lam_free[np.searchsorted(free, inp.signed_bench)], lam_s
                )
            lam_p = pr["positive_loading"].to_pymc(
                "loading_positive", dims=("bounded_benchmark", "factor")
            )
            lam_free = pt.set_subtensor(lam_free[np.searchsorted(free, inp.bounded_bench)], lam_p)
        else:
            lam_free = pr["loading"].to_pymc("loading_free", dims=("free_benchmark", "factor"))
        lam = pt.zeros((n_b, n_k))
        lam = pt.set_subtensor(lam[inp.anchor_idx, np.arange(n_k)], 1.0)
        lam = pt.set_subtensor(lam[free], lam_free)
        lam = pm.Deterministic("loading", lam, dims=("benchmark", "factor"))
        alpha_free = pr["intercept"].to_pymc("intercept_free", dims="free_benchmark")
        alpha = pm.Deterministic(
            "intercept", pt.set_subtensor(pt.zeros(n_b)[free], alpha_free), dims="benchmark"
        )
        alpha_obs = alpha[inp.obs_bench]
        if st["family_offsets"]:
            # Non-centred: most families have two to five models, so each offset is weakly
            # informed and a centred one would form a funnel with its sd.  Zero on the anchors,
            # where a family's lead is its efficiency a_fk.
            sd_d = pr["family_offset_sd"].to_pymc("family_offset_sd", dims="free_benchmark")
            z_d = pm.Normal("family_offset_z", 0.0, 1.0, dims=("family", "free_benchmark"))
            delta = pt.set_subtensor(pt.zeros((len(inp.family_ids), n_b))[:, free], sd_d * z_d)
            delta = pm.Deterministic("family_offset", delta, dims=("family", "benchmark"))
            alpha_obs = alpha_obs + delta[inp.family_idx[inp.obs_model], inp.obs_bench]
        if st["benchmark_slopes"]:
            # Pooled towards 0 (non-centred: with few decades of compute per benchmark each
            # slope is weakly informed).  Zero on the anchors: their trend is b_k itself.
            sd_c = pr["benchmark_slope_sd"].to_pymc("benchmark_slope_sd")
            z_c = pm.Normal("benchmark_slope_z", 0.0, 1.0, dims="free_benchmark")
            c = pm.Deterministic(
                "benchmark_slope", pt.set_subtensor(pt.zeros(n_b)[free], sd_c * z_c),
                dims="benchmark",
            )  # fmt: skip
            # every model's compute axis (latent ones included), read by the NumPy paths
            x = pm.Deterministic("compute_axis", x, dims="model")
            alpha_obs = alpha_obs + compute_shift_pt(c[inp.obs_bench], x[inp.obs_model])
        # --- chance floors: fixed from metadata, or fitted where metadata leave them blank
        fitted = np.flatnonzero(np.isnan(inp.floor))
        floor = pt.as_tensor(np.nan_to_num(inp.floor, nan=0.0))
        if len(fitted):
            g_fit = pr["floor"].to_pymc("floor_fitted", dims="fitted_floor_benchmark")
            floor = pt.set_subtensor(floor[fitted], g_fit)
        floor = pm.Deterministic("floor", floor, dims="benchmark")
        # An anchor's misfit and its capability residual e_mk are the same quantity (theta_k *is*
        # the anchor's logit), so an anchor's misfit is fixed (structure.anchor_misfit), not
        # estimated: estimating both leaves a ridge the sampler cannot cross (R-hat 1.75 on
        # HumanEval).  A fixed value > 0, as for a single-indicator factor in SEM, lets the other
        # benchmarks inform theta and keeps scores under the chance floor from pinning it.
        est = free_misfit_name(st["misfit_scale"])
        est_free = pr[est].to_pymc(f"{est}_free", dims="free_benchmark")
        tau, nu = misfits_pt(st, est_free, free, inp.anchor_idx, n_b)
        # (Deterministics in the order the graph always had: the estimated misfit first.)
        if est == "misfit":
            tau = pm.Deterministic("misfit", tau, dims="benchmark")
            nu = pm.Deterministic("logit_misfit", nu, dims="benchmark")
        else:
            # Misfit on the logit scale (delta method): small where a task sits at its floor,
            # large on the steep part of its curve.  A fixed small score-scale floor keeps
            # scores that sit off the curve at the floor from forcing the capabilities.
            nu = pm.Deterministic("logit_misfit", nu, dims="benchmark")
            tau = pm.Deterministic("misfit", tau, dims="benchmark")
        # --- likelihood
        ob = inp.obs_bench
        g_obs = floor[ob]
        bounded = inp.bounded[ob] if len(inp.bounded_bench) else None
        p = expected_score_pt(theta[inp.obs_model], alpha_obs, lam[ob], g_obs, bounded)
        sd = noise_sd_pt(p, inp.inv_n[ob], tau[ob], g_obs, nu[ob])
        observation_pm("score", p, sd, st, observed=inp.y, dims="obs")
    return model


class _FitLike(Protocol):
    """What :func:`model_for_fit` needs of a fit (a :class:`~obscale_bayes.fit.CapabilityModel`)."""

    data: BenchmarkData
    spec: ModelSpec

    @property
    def inputs(self) -> ModelInputs: ...


# the model of each fit, built once; weak so a dropped fit frees its graph
_FIT_MODELS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def model_for_fit(fit: _FitLike) -> pm.Model:
    """The PyMC model a fit was sampled from, rebuilt from its data and spec (cached per fit).

    Everything that evaluates densities of a fit's posterior draws (pointwise log-likelihood
    for LOO, log prior for power-scaling) calls this, so the graph is built once per fit.
    """
    model = _FIT_MODELS.get(fit)
    if model is None:
        model = build_model(fit.data, fit.spec, inputs=fit.inputs)
        _FIT_MODELS[fit] = model
    return model
