r"""The hierarchical capability model: ``build_model(data, spec) -> pm.Model``.

Notation: models :math:`m`, benchmarks :math:`j`, families :math:`f(m)`, capabilities
:math:`k = 1..K`.

.. math::

    x_m &= \log_{10}(\mathrm{FLOPs}_m / 10^{21}) - x_0
        \quad(\text{latent with a prior where FLOPs are unknown}) \\
    a_{fk} &\sim N(\mu^a_k, \sigma^a_k), \quad b_{fk} \sim N(\mu^b_k, \sigma^b_k)
        \quad(\text{family efficiency and slope, partial pooling}) \\
    \theta_{mk} &\sim N(a_{f(m)k} + b_{f(m)k} x_m,\ \sigma^e_k)
        \quad(\text{capabilities}) \\
    \eta_{mj} &= \alpha_j + \lambda_j \cdot \theta_m \quad(\text{factor model}) \\
    p_{mj} &= g_j + (1 - g_j)\,\mathrm{sigmoid}(\eta_{mj}) \quad(\text{chance floor } g_j) \\
    y_{mj} &\sim N\!\left(p_{mj},\ \sqrt{\tilde p_{mj}(1-\tilde p_{mj})/n_j + \tau_j^2}\right),
        \quad \tilde p = (n_j p + 1)/(n_j + 2)

Scores are rescaled to [0, 1] by each benchmark's metric range before they enter.

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

from dataclasses import dataclass, field

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from obscale_bayes.errors import DataError, SpecError
from obscale_bayes.model.equations import bounded_pt, floored_sigmoid_pt, inv_items, noise_sd_pt
from obscale_bayes.spec.spec import ModelSpec

# Scores this far outside [floor-ish, 1] after rescaling are data errors, not noise.
_RANGE_SLACK = 1e-9


@dataclass(frozen=True)
class ModelInputs:
    """Arrays the PyMC graph is built from, with their labels (all derived from the data)."""

    model_ids: list[str]
    family_ids: list[str]
    benchmark_ids: list[str]
    factor_ids: list[str]
    family_idx: np.ndarray  # (M,) family of each model
    x: np.ndarray  # (M,) centred log10 FLOPs, NaN where unknown
    x_prior_mu: np.ndarray  # (M,) prior mean for x where unknown (NaN where known)
    x_prior_sd: np.ndarray  # (M,)
    obs_model: np.ndarray  # (N,)
    obs_bench: np.ndarray  # (N,)
    y: np.ndarray  # (N,) scores rescaled to [0, 1]
    floor: np.ndarray  # (J,) rescaled chance floor, NaN = fitted
    inv_n: np.ndarray  # (J,) 1 / n_items (spec's default_n_items where unknown)
    anchor_idx: np.ndarray  # (K,) benchmark index of each factor's anchor
    metric_min: np.ndarray  # (J,)
    metric_max: np.ndarray  # (J,)
    # non-anchor benchmarks on the bounded capability scale with loadings >= 0
    bounded_bench: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))

    @property
    def bounded(self) -> np.ndarray:
        """(J,) True where the benchmark is linked to the bounded capability scale."""
        flag = np.zeros(len(self.benchmark_ids), dtype=bool)
        flag[self.bounded_bench] = True
        return flag

    @property
    def signed_bench(self) -> np.ndarray:
        """Free benchmarks whose loadings may take either sign."""
        return np.setdiff1d(self.free_bench, self.bounded_bench)

    @property
    def unknown_x(self) -> np.ndarray:
        return np.flatnonzero(~np.isfinite(self.x))

    @property
    def free_bench(self) -> np.ndarray:
        """Benchmarks whose loadings and intercept are estimated (not anchors)."""
        return np.setdiff1d(np.arange(len(self.benchmark_ids)), self.anchor_idx)


def x_prior_for_unknown(params_b: np.ndarray, spec: ModelSpec) -> tuple[np.ndarray, np.ndarray]:
    """Prior mean and sd of centred log10 FLOPs for models whose FLOPs are unknown.

    With the parameter count N (in B) known, FLOPs/1e21 = 6 N D with D in T tokens, so
    ``log10 FLOPs = log10(6 N) + log10 D`` and the token prior carries the uncertainty.
    Otherwise the spec's ``log10_flops`` prior is used.
    """
    tok = spec.priors["log10_tokens_t"]
    flo = spec.priors["log10_flops"]
    x0 = spec.structure["x0"]
    for name, pr in (("log10_tokens_t", tok), ("log10_flops", flo)):
        if pr["dist"] != "normal":
            raise SpecError(f"{spec.source}: prior '{name}' must be a normal distribution")
    has_n = np.isfinite(params_b) & (params_b > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        mu = np.where(has_n, np.log10(6.0 * params_b) + tok["mu"], flo["mu"]) - x0
    sd = np.where(has_n, tok["sigma"], flo["sigma"])
    return mu, sd


def prepare_inputs(data, spec: ModelSpec) -> ModelInputs:
    """Turn a :class:`~obscale_bayes.data.BenchmarkData` into the arrays of the model.

    Benchmarks without any score are dropped; models without any score are dropped.
    """
    scores = data.scores
    bench = data.benchmarks.set_index("benchmark")
    used_b = [b for b in data.benchmarks["benchmark"] if b in set(scores["benchmark"])]
    models = data.models[data.models["model"].isin(set(scores["model"]))].reset_index(drop=True)
    if models.empty or not used_b:
        raise DataError(
            f"{data.source}: no scores to fit; the table has no non-missing score cells"
        )
    k = spec.n_factors
    anchors = spec.anchors
    missing = [a for a in anchors if a not in used_b]
    if missing:
        raise SpecError(
            f"{spec.source}: anchor benchmark(s) {missing} have no scores in {data.source}; "
            f"choose anchors among {used_b} in [structure].anchors"
        )
    if len(used_b) <= k:
        raise SpecError(
            f"{spec.source}: n_factors = {k} needs more than {k} benchmarks with scores, "
            f"the data have {len(used_b)}; lower n_factors"
        )
    if models["family"].isna().any():
        bad = models.loc[models["family"].isna(), "model"].iloc[0]
        raise DataError(f"{data.source}: model '{bad}' has no family; fill its family column")
    fam_ids = sorted(models["family"].unique())
    fam_pos = {f: i for i, f in enumerate(fam_ids)}
    m_pos = {m: i for i, m in enumerate(models["model"])}
    b_pos = {b: i for i, b in enumerate(used_b)}

    st = spec.structure
    x0 = st["x0"]
    flops = models["flops_1e21"].to_numpy(dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        x = np.where(np.isfinite(flops) & (flops > 0), np.log10(flops) - x0, np.nan)
    mu, sd = x_prior_for_unknown(models["params_b"].to_numpy(dtype=float), spec)
    x_mu = np.where(np.isfinite(x), np.nan, mu)
    x_sd = np.where(np.isfinite(x), np.nan, sd)

    lo = bench.loc[used_b, "metric_min"].to_numpy(dtype=float)
    hi = bench.loc[used_b, "metric_max"].to_numpy(dtype=float)
    s = scores[scores["model"].isin(m_pos) & scores["benchmark"].isin(b_pos)]
    ob = s["benchmark"].map(b_pos).to_numpy()
    y = (s["value"].to_numpy(dtype=float) - lo[ob]) / (hi[ob] - lo[ob])
    floor = (bench.loc[used_b, "floor"].to_numpy(dtype=float) - lo) / (hi - lo)
    groups = set(st["bounded_groups"])
    bounded = []
    if groups and "group" in bench.columns:
        g = bench.loc[used_b, "group"].astype(str).to_numpy()
        bounded = [j for j, b in enumerate(used_b) if g[j] in groups and b not in anchors]
    return ModelInputs(
        model_ids=list(models["model"]),
        family_ids=fam_ids,
        benchmark_ids=used_b,
        factor_ids=list(anchors),
        family_idx=models["family"].map(fam_pos).to_numpy(),
        x=x,
        x_prior_mu=x_mu,
        x_prior_sd=x_sd,
        obs_model=s["model"].map(m_pos).to_numpy(),
        obs_bench=ob,
        y=y,
        floor=floor,
        inv_n=inv_items(bench.loc[used_b, "n_items"].to_numpy(dtype=float), st["default_n_items"]),
        anchor_idx=np.array([b_pos[a] for a in anchors]),
        metric_min=lo,
        metric_max=hi,
        bounded_bench=np.array(bounded, dtype=int),
    )


def prior(name: str, p: dict, **kwargs) -> pt.TensorVariable:
    """Create the PyMC random variable a validated prior dict describes."""
    d = p["dist"]
    if d == "normal":
        return pm.Normal(name, mu=p["mu"], sigma=p["sigma"], **kwargs)
    if d == "halfnormal":
        return pm.HalfNormal(name, sigma=p["sigma"], **kwargs)
    if d == "exponential":
        return pm.Exponential(name, lam=p["lam"], **kwargs)
    if d == "lognormal":
        return pm.LogNormal(name, mu=p["mu"], sigma=p["sigma"], **kwargs)
    if d == "beta":
        return pm.Beta(name, alpha=p["alpha"], beta=p["beta"], **kwargs)
    if d == "uniform":
        return pm.Uniform(name, lower=p["lower"], upper=p["upper"], **kwargs)
    if d == "gamma":
        return pm.Gamma(name, alpha=p["alpha"], beta=p["beta"], **kwargs)
    raise SpecError(f"unknown prior distribution {d!r} for '{name}'")


def coords_of(inp: ModelInputs) -> dict[str, list]:
    """Named coordinates of the model (used by the graph and by forecasts)."""
    return {
        "model": inp.model_ids,
        "family": inp.family_ids,
        "benchmark": inp.benchmark_ids,
        "factor": inp.factor_ids,
        "free_benchmark": [inp.benchmark_ids[j] for j in inp.free_bench],
        "signed_benchmark": [inp.benchmark_ids[j] for j in inp.signed_bench],
        "bounded_benchmark": [inp.benchmark_ids[j] for j in inp.bounded_bench],
        "fitted_floor_benchmark": [
            inp.benchmark_ids[j] for j in np.flatnonzero(np.isnan(inp.floor))
        ],
        "latent_flops_model": [inp.model_ids[i] for i in inp.unknown_x],
        "obs": np.arange(len(inp.y)),
    }


def build_model(data, spec: ModelSpec, inputs: ModelInputs | None = None) -> pm.Model:
    """Build the PyMC model of the module docstring for ``data`` under ``spec``.

    Parameters
    ----------
    data : BenchmarkData
        Models (with family and FLOPs), long-format scores and benchmark metadata.
    spec : ModelSpec
        Structure and priors.
    inputs : ModelInputs, optional
        Pre-computed :func:`prepare_inputs` result (saves recomputing it).

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
        # --- family efficiency (intercept) and slope: partial pooling
        mu_a = prior("efficiency_mean", pr["efficiency_mean"], dims="factor")
        sd_a = prior("efficiency_sd", pr["efficiency_sd"], dims="factor")
        if st["noncentered_efficiency"]:
            z_a = pm.Normal("efficiency_z", 0.0, 1.0, dims=("family", "factor"))
            a = pm.Deterministic("efficiency", mu_a + sd_a * z_a, dims=("family", "factor"))
        else:
            # Centred: family efficiencies are well informed by their models' scores, and the
            # non-centred form then couples mu_a and every z_a (bulk ESS ~120 for mu_a).
            a = pm.Normal("efficiency", mu=mu_a, sigma=sd_a, dims=("family", "factor"))
        mu_b = prior("slope_mean", pr["slope_mean"], dims="factor")
        if st["family_slopes"]:
            sd_b = prior("slope_sd", pr["slope_sd"], dims="factor")
            z_b = pm.Normal("slope_z", 0.0, 1.0, dims=("family", "factor"))
            b = pm.Deterministic("slope", mu_b + sd_b * z_b, dims=("family", "factor"))
        else:
            b = pm.Deterministic(
                "slope", pt.tile(mu_b[None, :], (len(inp.family_ids), 1)), dims=("family", "factor")
            )
        theta_mean = a[inp.family_idx] + b[inp.family_idx] * x[:, None]
        sd_e = prior("residual_sd", pr["residual_sd"], dims="factor")
        # Centred where the anchor pins capabilities tightly (MMLU, HellaSwag: thousands of
        # items), non-centred where it does not (HumanEval: 164 items, many zeros and missing
        # cells), which otherwise forms a funnel with residual_sd.
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
                lam_s = prior("loading_free", pr["loading"], dims=("signed_benchmark", "factor"))
                lam_free = pt.set_subtensor(
                    lam_free[np.searchsorted(free, inp.signed_bench)], lam_s
                )
            lam_p = prior(
                "loading_positive", pr["positive_loading"], dims=("bounded_benchmark", "factor")
            )
            lam_free = pt.set_subtensor(lam_free[np.searchsorted(free, inp.bounded_bench)], lam_p)
        else:
            lam_free = prior("loading_free", pr["loading"], dims=("free_benchmark", "factor"))
        lam = pt.zeros((n_b, n_k))
        lam = pt.set_subtensor(lam[inp.anchor_idx, np.arange(n_k)], 1.0)
        lam = pt.set_subtensor(lam[free], lam_free)
        lam = pm.Deterministic("loading", lam, dims=("benchmark", "factor"))
        alpha_free = prior("intercept_free", pr["intercept"], dims="free_benchmark")
        alpha = pm.Deterministic(
            "intercept", pt.set_subtensor(pt.zeros(n_b)[free], alpha_free), dims="benchmark"
        )
        # --- chance floors: fixed from metadata, or fitted where metadata leave them blank
        fitted = np.flatnonzero(np.isnan(inp.floor))
        floor = pt.as_tensor(np.nan_to_num(inp.floor, nan=0.0))
        if len(fitted):
            g_fit = prior("floor_fitted", pr["floor"], dims="fitted_floor_benchmark")
            floor = pt.set_subtensor(floor[fitted], g_fit)
        floor = pm.Deterministic("floor", floor, dims="benchmark")
        # An anchor's misfit and its capability residual e_mk are the same quantity (theta_k *is*
        # the anchor's logit), so an anchor's misfit is fixed (structure.anchor_misfit), not
        # estimated: estimating both leaves a ridge the sampler cannot cross (R-hat 1.75 on
        # HumanEval).  A fixed value > 0, as for a single-indicator factor in SEM, lets the other
        # benchmarks inform theta and keeps scores under the chance floor from pinning it.
        zeros = pt.zeros(n_b)
        if st["misfit_scale"] == "score":
            tau_free = prior("misfit_free", pr["misfit"], dims="free_benchmark")
            tau = pt.set_subtensor(zeros[free], tau_free)
            tau = pt.set_subtensor(tau[inp.anchor_idx], st["anchor_misfit"])
            tau = pm.Deterministic("misfit", tau, dims="benchmark")
            nu = pm.Deterministic("logit_misfit", zeros, dims="benchmark")
        else:
            # Misfit on the logit scale (delta method): small where a task sits at its floor,
            # large on the steep part of its curve.  A fixed small score-scale floor keeps
            # scores that sit off the curve at the floor from forcing the capabilities.
            nu_free = prior("logit_misfit_free", pr["logit_misfit"], dims="free_benchmark")
            nu = pm.Deterministic(
                "logit_misfit", pt.set_subtensor(zeros[free], nu_free), dims="benchmark"
            )
            tau = pt.set_subtensor(zeros[free], st["misfit_floor"])
            tau = pt.set_subtensor(tau[inp.anchor_idx], st["anchor_misfit"])
            tau = pm.Deterministic("misfit", tau, dims="benchmark")
        # --- likelihood
        th_obs = theta[inp.obs_model]
        if len(inp.bounded_bench):
            on_bounded = inp.bounded[inp.obs_bench][:, None]
            th_obs = pt.where(on_bounded, bounded_pt(th_obs), th_obs)
        eta = alpha[inp.obs_bench] + (lam[inp.obs_bench] * th_obs).sum(axis=1)
        g_obs = floor[inp.obs_bench]
        p = floored_sigmoid_pt(eta, g_obs)
        sd = noise_sd_pt(p, inp.inv_n[inp.obs_bench], tau[inp.obs_bench], g_obs, nu[inp.obs_bench])
        if st["likelihood"] == "student_t":
            pm.StudentT("score", nu=st["student_t_nu"], mu=p, sigma=sd, observed=inp.y, dims="obs")
        else:
            pm.Normal("score", mu=p, sigma=sd, observed=inp.y, dims="obs")
    return model
