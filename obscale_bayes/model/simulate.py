r"""Simulate benchmark tables from the capability model (for parameter-recovery checks).

:func:`simulate` takes a real table as a *template* and replaces its scores with draws from the
generative process of :mod:`obscale_bayes.model.build`:

.. math::

    x_m &\sim N(\mu^x_m, \sigma^x_m) \quad(\text{only where FLOPs are unknown}) \\
    a_{fk} &\sim N(\mu^a_k, \sigma^a_k), \quad b_{fk} \sim N(\mu^b_k, \sigma^b_k) \\
    \theta_{mk} &\sim N(a_{f(m)k} + b_{f(m)k} x_m, \sigma^e_k) \\
    p_{mj} &= g_j + (1 - g_j)\,\mathrm{sigmoid}(\alpha_j + \lambda_j\cdot\theta_m) \\
    y_{mj} &= \mathrm{clip}_{[0, 1]}\big(p_{mj} + \mathrm{sd}_j(p_{mj})\,\varepsilon_{mj}\big),
        \quad \varepsilon \sim N(0, 1)\ (\text{or Student-}t_\nu)

with ``sd`` the Laplace-smoothed binomial sampling noise plus the score-scale misfit
:math:`\tau_j` and the logit-scale misfit :math:`\nu_j` (delta method) of
:func:`~obscale_bayes.links.noise_sd_np`, as the spec's ``misfit_scale`` sets them.  The template's models, families, FLOPs (unknown
FLOPs stay unknown in the returned table, but get a true value), benchmark metadata and the
pattern of missing cells are kept exactly.

Which "true" parameters
-----------------------
By default the population-level and benchmark-level parameters are a fixed *realistic* set:
rounded posterior means of the default model fitted to the shipped base table (K = 3 anchored on
MMLU, HellaSwag, HumanEval; see :data:`REALISTIC_FACTORS` and :data:`REALISTIC_BENCHMARKS`).
Everything below them (family efficiencies and slopes, unknown FLOPs, capabilities, noise) is
drawn from the model's generative process with ``seed``.  A factor anchored on a benchmark the
table does not know gets :data:`GENERIC_FACTOR`; a benchmark it does not know (or a loading on
an unknown factor) is drawn from the spec's priors.  ``from_prior=True`` draws *every*
parameter from the spec's priors instead (a prior-predictive data set; raw prior draws can be far
from any real table).  ``params`` overrides any parameter by name.

Anchors follow the spec: an anchor benchmark's loading row is the unit vector of its factor and
its intercept is 0; misfits the model fixes rather than estimates take the spec's values
(``misfit_scale = "score"``: the anchors' misfit is ``anchor_misfit``; ``"logit"``: the
score-scale misfit is ``misfit_floor`` off the anchors and ``anchor_misfit`` on them).  The truth is therefore in the model's identified frame and can be
compared with a fit's posterior directly: :func:`simulate` returns it as an ``xarray.Dataset``
with the same variable names, dims and coordinates as the fit's posterior (``capability
(model, factor)``, ``efficiency (family, factor)``, ``loading (benchmark, factor)``,
``loading_free (free_benchmark, factor)``, ``x_latent (latent_flops_model)``, ...).  Values are
on the model's internal scale (scores rescaled to [0, 1] by each benchmark's metric range).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from obscale_bayes.data.tables import BenchmarkData
from obscale_bayes.errors import SpecError, UsageError
from obscale_bayes.model.build import ModelInputs, coords_of, prepare_inputs
from obscale_bayes.model.equations import floored_sigmoid_np, noise_sd_np
from obscale_bayes.spec.spec import ModelSpec, load_spec

__all__ = [
    "GENERIC_FACTOR",
    "PARAMETER_DIMS",
    "RECOVERY_GROUPS",
    "REALISTIC_BENCHMARKS",
    "REALISTIC_FACTORS",
    "binomial_band",
    "interval_coverage",
    "simulate",
]

#: Per-capability population parameters, keyed by the factor's anchor benchmark.  Rounded
#: posterior means of the default model (anchor misfit fixed at 0.015) on the shipped base
#: table (128 models, 40 families; nutpie, 2 x 1000 draws).
REALISTIC_FACTORS: dict[str, dict[str, float]] = {
    "mmlu": {
        "efficiency_mean": -2.55,
        "efficiency_sd": 1.1,
        "slope_mean": 1.7,
        "slope_sd": 0.2,
        "residual_sd": 0.7,
    },
    "hellaswag": {
        "efficiency_mean": 0.22,
        "efficiency_sd": 0.52,
        "slope_mean": 0.92,
        "slope_sd": 0.21,
        "residual_sd": 0.28,
    },
    "humaneval": {
        "efficiency_mean": -2.23,
        "efficiency_sd": 1.2,
        "slope_mean": 0.89,
        "slope_sd": 0.17,
        "residual_sd": 0.075,
    },
}

#: Population parameters for a factor whose anchor is not in :data:`REALISTIC_FACTORS`.
GENERIC_FACTOR: dict[str, float] = {
    "efficiency_mean": -1.0,
    "efficiency_sd": 1.0,
    "slope_mean": 1.0,
    "slope_sd": 0.3,
    "residual_sd": 0.5,
}

#: Benchmark parameters of the same fit: loadings on the MMLU / HellaSwag / HumanEval factors,
#: intercept (logit scale), misfit (score scale) and, for TruthfulQA, the fitted chance floor.
#: (No logit-scale misfit was fitted: with ``misfit_scale = "logit"`` it is drawn from the prior.)
REALISTIC_BENCHMARKS: dict[str, dict[str, Any]] = {
    "arc_c": {
        "loading": {"mmlu": 0.107, "hellaswag": 0.867, "humaneval": 0.021},
        "intercept": -1.15,
        "misfit": 0.023,
    },
    "winogrande": {
        "loading": {"mmlu": 0.029, "hellaswag": 1.107, "humaneval": 0.024},
        "intercept": -1.0,
        "misfit": 0.008,
    },
    "truthfulqa": {
        "loading": {"mmlu": 1.99, "hellaswag": -0.93, "humaneval": 0.3},
        "intercept": -1.11,
        "misfit": 0.033,
        "floor": 0.38,
    },
    "gsm8k": {
        "loading": {"mmlu": 1.27, "hellaswag": -0.58, "humaneval": 0.425},
        "intercept": 0.7,
        "misfit": 0.045,
    },
    "xwinograd": {
        "loading": {"mmlu": 0.035, "hellaswag": 0.708, "humaneval": 0.158},
        "intercept": -0.54,
        "misfit": 0.044,
    },
}

#: Every parameter ``params`` may override, with its dims (coordinates as in the fit).
PARAMETER_DIMS: dict[str, tuple[str, ...]] = {
    "efficiency_mean": ("factor",),
    "efficiency_sd": ("factor",),
    "slope_mean": ("factor",),
    "slope_sd": ("factor",),
    "residual_sd": ("factor",),
    "efficiency": ("family", "factor"),
    "slope": ("family", "factor"),
    "x_latent": ("latent_flops_model",),
    "capability": ("model", "factor"),
    "loading": ("benchmark", "factor"),
    "intercept": ("benchmark",),
    "misfit": ("benchmark",),
    "logit_misfit": ("benchmark",),
    "floor": ("benchmark",),
}


def _prior_draw(p: dict, size, rng: np.random.Generator) -> np.ndarray:
    """Draw from a validated prior dict (same families as :func:`obscale_bayes.model.prior`)."""
    d = p["dist"]
    if d == "normal":
        return rng.normal(p["mu"], p["sigma"], size)
    if d == "halfnormal":
        return np.abs(rng.normal(0.0, p["sigma"], size))
    if d == "exponential":
        return rng.exponential(1.0 / p["lam"], size)
    if d == "lognormal":
        return rng.lognormal(p["mu"], p["sigma"], size)
    if d == "beta":
        return rng.beta(p["alpha"], p["beta"], size)
    if d == "uniform":
        return rng.uniform(p["lower"], p["upper"], size)
    if d == "gamma":
        return rng.gamma(p["alpha"], 1.0 / p["beta"], size)
    raise UsageError(f"simulate: unknown prior distribution {d!r}")


class _Overrides:
    """Turns the user's ``params`` into arrays of the right shape, aligned on coordinates."""

    def __init__(self, params: dict[str, Any] | None, coords: dict[str, list]):
        params = dict(params or {})
        unknown = sorted(set(params) - set(PARAMETER_DIMS))
        if unknown:
            raise UsageError(
                f"simulate: unknown parameter(s) {unknown} in params; choose from {sorted(PARAMETER_DIMS)}"
            )
        self.params = params
        self.coords = coords

    def __contains__(self, name: str) -> bool:
        return name in self.params

    def get(self, name: str) -> np.ndarray:
        dims = PARAMETER_DIMS[name]
        shape = tuple(len(self.coords[d]) for d in dims)
        v = self.params[name]
        if isinstance(v, xr.DataArray):
            if set(v.dims) != set(dims):
                raise UsageError(f"simulate: params['{name}'] must have dims {dims}, got {v.dims}")
            try:
                v = v.sel({d: list(self.coords[d]) for d in dims}).transpose(*dims)
            except KeyError as exc:
                raise UsageError(f"simulate: params['{name}'] lacks coordinate(s) {exc}") from None
            arr = v.to_numpy().astype(float)
        else:
            try:
                arr = np.broadcast_to(np.asarray(v, dtype=float), shape).copy()
            except ValueError:
                raise UsageError(
                    f"simulate: params['{name}'] has shape {np.shape(v)}, need {shape} {dims} "
                    "(or a scalar, or an xarray.DataArray with those dims)"
                ) from None
        if not np.all(np.isfinite(arr)):
            raise UsageError(f"simulate: params['{name}'] has non-finite values")
        return arr


def _factor_params(
    inp: ModelInputs, spec: ModelSpec, from_prior: bool, rng
) -> dict[str, np.ndarray]:
    keys = ("efficiency_mean", "efficiency_sd", "slope_mean", "slope_sd", "residual_sd")
    k = len(inp.factor_ids)
    if from_prior:
        return {key: _prior_draw(spec.priors[key], k, rng) for key in keys}
    return {
        key: np.array([REALISTIC_FACTORS.get(f, GENERIC_FACTOR)[key] for f in inp.factor_ids])
        for key in keys
    }


def _fixed_misfits(inp: ModelInputs, spec: ModelSpec) -> dict[str, np.ndarray]:
    """The misfit entries the model fixes rather than estimates (NaN = estimated).

    ``misfit_scale = "score"``: the anchors' score-scale misfit is ``anchor_misfit``, the
    logit-scale misfit is 0 everywhere.  ``"logit"``: the score-scale misfit is ``misfit_floor`` on
    the free benchmarks and ``anchor_misfit`` on the anchors, whose logit-scale misfit is 0.
    """
    st = spec.structure
    n_b = len(inp.benchmark_ids)
    a, free = inp.anchor_idx, inp.free_bench
    tau, nu = np.full(n_b, np.nan), np.full(n_b, np.nan)
    if st["misfit_scale"] == "score":
        tau[a] = st["anchor_misfit"]
        nu[:] = 0.0
    else:
        tau[free] = st["misfit_floor"]
        tau[a] = st["anchor_misfit"]
        nu[a] = 0.0
    return {"misfit": tau, "logit_misfit": nu}


def _benchmark_params(
    inp: ModelInputs, spec: ModelSpec, from_prior: bool, rng
) -> dict[str, np.ndarray]:
    """Loadings, intercepts, misfits and floors; anchors get unit rows and 0 intercept."""
    n_b, n_k = len(inp.benchmark_ids), len(inp.factor_ids)
    pr = spec.priors
    lam = _prior_draw(pr["loading"], (n_b, n_k), rng)
    alpha = _prior_draw(pr["intercept"], n_b, rng)
    tau = _prior_draw(pr["misfit"], n_b, rng)
    nu = _prior_draw(pr["logit_misfit"], n_b, rng)
    floor = inp.floor.copy()
    fitted = np.isnan(floor)
    floor[fitted] = _prior_draw(pr["floor"], int(fitted.sum()), rng)
    if not from_prior:
        for j, b in enumerate(inp.benchmark_ids):
            real = REALISTIC_BENCHMARKS.get(b)
            if real is None:
                continue
            for k, f in enumerate(inp.factor_ids):
                if f in real["loading"]:
                    lam[j, k] = real["loading"][f]
            alpha[j] = real["intercept"]
            tau[j] = real["misfit"]
            nu[j] = real.get("logit_misfit", nu[j])
            if fitted[j] and "floor" in real:
                floor[j] = real["floor"]
    lam[inp.anchor_idx] = np.eye(n_k)
    alpha[inp.anchor_idx] = 0.0
    fixed = _fixed_misfits(inp, spec)
    for key, val in (("misfit", tau), ("logit_misfit", nu)):
        val[np.isfinite(fixed[key])] = fixed[key][np.isfinite(fixed[key])]
    return {"loading": lam, "intercept": alpha, "misfit": tau, "logit_misfit": nu, "floor": floor}


def _check_identified(inp: ModelInputs, spec: ModelSpec, v: dict[str, np.ndarray]) -> None:
    """Overrides must stay in the model: anchors and fixed misfits as the spec says, floors too."""
    n_k = len(inp.factor_ids)
    a = inp.anchor_idx
    names = [inp.benchmark_ids[j] for j in a]
    if not np.allclose(v["loading"][a], np.eye(n_k), rtol=0, atol=1e-12):
        raise UsageError(
            f"simulate: the loading rows of the anchors {names} must be unit vectors (the spec's anchors)"
        )
    if not np.allclose(v["intercept"][a], 0.0, rtol=0, atol=1e-12):
        raise UsageError(
            f"simulate: the intercept of the anchors {names} must be 0 (as in the model)"
        )
    mode = spec.structure["misfit_scale"]
    for key, fixed in _fixed_misfits(inp, spec).items():
        m = np.isfinite(fixed)
        if not np.allclose(v[key][m], fixed[m], rtol=0, atol=1e-12):
            bad = [inp.benchmark_ids[j] for j in np.flatnonzero(m)]
            raise UsageError(
                f"simulate: with misfit_scale = '{mode}' the model fixes {key} of {bad} "
                f"at {sorted(set(fixed[m].tolist()))}; leave those entries at that value"
            )
        if np.any(v[key] < 0):
            raise UsageError(f"simulate: {key} must be >= 0")
    fixed = ~np.isnan(inp.floor)
    if not np.allclose(v["floor"][fixed], inp.floor[fixed], rtol=0, atol=1e-12):
        raise UsageError(
            "simulate: floor may differ from the benchmark metadata only where the metadata leave it blank"
        )
    fitted = ~fixed
    if np.any((v["floor"][fitted] < 0) | (v["floor"][fitted] >= 1)):
        raise UsageError("simulate: fitted floors must lie in [0, 1)")
    for key in ("efficiency_sd", "slope_sd", "residual_sd"):
        if np.any(v[key] < 0):
            raise UsageError(f"simulate: {key} must be >= 0")


def simulate(
    data_template: BenchmarkData,
    spec: ModelSpec | str | None = None,
    seed: int = 0,
    params: dict[str, Any] | None = None,
    *,
    from_prior: bool = False,
) -> tuple[BenchmarkData, xr.Dataset]:
    """Simulate a benchmark table from the capability model, with the template's layout.

    Parameters
    ----------
    data_template : BenchmarkData
        Real table whose models, families, FLOPs, benchmark metadata and missing cells are kept
        (e.g. :func:`~obscale_bayes.data.load_shipped`).  Models and benchmarks without scores
        are dropped, as in :func:`~obscale_bayes.model.prepare_inputs`.
    spec : ModelSpec, str or None
        Model structure (K, anchors, family slopes, likelihood) and priors; a variant name or
        file as for :func:`~obscale_bayes.spec.load_spec` (None = default).
    seed : int
        Seed of every random draw: the same seed gives the same table and truth.
    params : dict, optional
        Overrides of true parameters by name (see :data:`PARAMETER_DIMS`): a scalar
        (broadcast), an array of the parameter's shape, or an ``xarray.DataArray`` with its
        dims and coordinates.  An override replaces the value at its level and everything
        below is drawn given it (e.g. ``efficiency`` replaces the family draws; ``capability``
        fixes the capabilities).  Anchor rows must keep unit loadings and zero intercept,
        misfits the spec fixes must keep their values, and only blank metadata floors may be
        overridden.
    from_prior : bool
        Draw the population and benchmark parameters from the spec's priors instead of the
        realistic defaults.

    Returns
    -------
    data : BenchmarkData
        The template's models and benchmarks with simulated scores in the same cells, in metric
        units and clipped to ``[metric_min, metric_max]``.
    truth : xarray.Dataset
        The true parameters with the names and coordinates of a fit's posterior (no chain/draw
        dims): ``capability, efficiency, slope, efficiency_mean, efficiency_sd, slope_mean,
        slope_sd`` (only with family slopes), ``residual_sd, loading, intercept, misfit,
        logit_misfit, floor, loading_free, intercept_free, floor_fitted, x_latent``,
        ``misfit_free`` or ``logit_misfit_free`` (by ``misfit_scale``), plus ``x``
        (true centred log10 FLOPs of every model) and ``expected_score (model, benchmark)``.
    """
    if not isinstance(data_template, BenchmarkData):
        raise UsageError("simulate: data_template must be a BenchmarkData (e.g. load_shipped())")
    if not isinstance(spec, ModelSpec):
        spec = load_spec(spec)
    inp = prepare_inputs(data_template, spec)
    if len(inp.bounded_bench):
        raise SpecError(
            f"{spec.source}: simulate does not support structure.bounded_groups yet; "
            "simulate with a spec whose bounded_groups is empty"
        )
    coords = coords_of(inp)
    coords.pop("obs")
    ov = _Overrides(params, coords)
    rng = np.random.default_rng(seed)
    st = spec.structure
    n_m, n_f, n_k = len(inp.model_ids), len(inp.family_ids), len(inp.factor_ids)

    # --- population parameters of each capability
    v: dict[str, np.ndarray] = _factor_params(inp, spec, from_prior, rng)
    for key in list(v):
        if key in ov:
            v[key] = ov.get(key)
    v.update(_benchmark_params(inp, spec, from_prior, rng))
    for key in ("loading", "intercept", "misfit", "logit_misfit", "floor"):
        if key in ov:
            v[key] = ov.get(key)
    _check_identified(inp, spec, v)

    # --- family efficiencies and slopes (partial pooling), unknown compute, capabilities
    a = v["efficiency_mean"] + v["efficiency_sd"] * rng.standard_normal((n_f, n_k))
    if "efficiency" in ov:
        a = ov.get("efficiency")
    if st["family_slopes"]:
        b = v["slope_mean"] + v["slope_sd"] * rng.standard_normal((n_f, n_k))
    else:
        b = np.tile(v["slope_mean"], (n_f, 1))
    if "slope" in ov:
        b = ov.get("slope")
        if not st["family_slopes"] and not np.allclose(b, b[:1]):
            raise UsageError(
                "simulate: the spec has one slope for all families (family_slopes = false)"
            )
    unk = inp.unknown_x
    x_lat = inp.x_prior_mu[unk] + inp.x_prior_sd[unk] * rng.standard_normal(len(unk))
    if "x_latent" in ov:
        x_lat = ov.get("x_latent")
    x = inp.x.copy()
    x[unk] = x_lat
    theta_mean = a[inp.family_idx] + b[inp.family_idx] * x[:, None]
    theta = theta_mean + v["residual_sd"] * rng.standard_normal((n_m, n_k))
    if "capability" in ov:
        theta = ov.get("capability")

    # --- scores: floored sigmoid of the factor model, sampling noise + misfit, clipped
    eta = v["intercept"] + theta @ v["loading"].T  # (M, J)
    p_all = floored_sigmoid_np(eta, v["floor"][None, :])
    om, ob = inp.obs_model, inp.obs_bench
    p = p_all[om, ob]
    sd = noise_sd_np(p, inp.inv_n[ob], v["misfit"][ob], v["floor"][ob], v["logit_misfit"][ob])
    if st["likelihood"] == "student_t":
        eps = rng.standard_t(st["student_t_nu"], len(p))
    else:
        eps = rng.standard_normal(len(p))
    y01 = np.clip(p + sd * eps, 0.0, 1.0)
    lo, hi = inp.metric_min[ob], inp.metric_max[ob]
    value = np.clip(lo + y01 * (hi - lo), lo, hi)

    scores = pd.DataFrame(
        {
            "model": np.asarray(inp.model_ids, dtype=object)[om],
            "benchmark": np.asarray(inp.benchmark_ids, dtype=object)[ob],
            "value": value,
        }
    )
    tmpl = data_template
    models = tmpl.models[tmpl.models["model"].isin(set(inp.model_ids))]
    benchmarks = tmpl.benchmarks[tmpl.benchmarks["benchmark"].isin(set(inp.benchmark_ids))]
    data = BenchmarkData(
        models,
        scores,
        benchmarks,
        source=f"simulated (seed {seed}, spec '{spec.name}') from {tmpl.source}",
    )

    free = inp.free_bench
    fitted = np.flatnonzero(np.isnan(inp.floor))
    fk = ("family", "factor")
    dv: dict[str, tuple] = {
        "capability": (("model", "factor"), theta),
        "efficiency": (fk, a),
        "slope": (fk, b),
        "efficiency_mean": (("factor",), v["efficiency_mean"]),
        "efficiency_sd": (("factor",), v["efficiency_sd"]),
        "slope_mean": (("factor",), v["slope_mean"]),
        "residual_sd": (("factor",), v["residual_sd"]),
        "loading": (("benchmark", "factor"), v["loading"]),
        "intercept": (("benchmark",), v["intercept"]),
        "misfit": (("benchmark",), v["misfit"]),
        "floor": (("benchmark",), v["floor"]),
        "loading_free": (("free_benchmark", "factor"), v["loading"][free]),
        "intercept_free": (("free_benchmark",), v["intercept"][free]),
        "logit_misfit": (("benchmark",), v["logit_misfit"]),
        "floor_fitted": (("fitted_floor_benchmark",), v["floor"][fitted]),
        "x_latent": (("latent_flops_model",), x_lat),
        "x": (("model",), x),
        "expected_score": (("model", "benchmark"), p_all),
    }
    if st["family_slopes"]:
        dv["slope_sd"] = (("factor",), v["slope_sd"])
    # the free (estimated) misfit parameter of the fit, by misfit_scale
    if st["misfit_scale"] == "score":
        dv["misfit_free"] = (("free_benchmark",), v["misfit"][free])
    else:
        dv["logit_misfit_free"] = (("free_benchmark",), v["logit_misfit"][free])
    truth = xr.Dataset(
        {k: xr.Variable(d, np.asarray(val, dtype=float)) for k, (d, val) in dv.items()},
        coords={k: [str(c) for c in cs] for k, cs in coords.items()},
        attrs={
            "seed": int(seed),
            "spec": spec.to_json(),
            "from_prior": int(from_prior),
            "x0": float(st["x0"]),
            "scale": "scores rescaled to [0, 1] by each benchmark's metric range",
        },
    )
    return data, truth


# ---------------------------------------------------------------- recovery checks
#: Parameter groups a recovery check reports by default (``loading_free`` = non-anchor loadings).
RECOVERY_GROUPS = (
    "capability",
    "efficiency",
    "loading_free",
    "slope",
    "intercept_free",
    "misfit_free",
    "logit_misfit_free",
    "x_latent",
)


def interval_coverage(
    posterior: xr.Dataset | xr.DataTree,
    truth: xr.Dataset,
    var_names: tuple[str, ...] | list[str] = RECOVERY_GROUPS,
    probs: tuple[float, ...] = (0.5, 0.8, 0.9, 0.95),
) -> pd.DataFrame:
    """How often the true values lie inside central posterior intervals.

    Parameters
    ----------
    posterior : xarray.Dataset or DataTree
        A fit's posterior (dims ``chain, draw, ...``) or a tree with a ``posterior`` group.
    truth : xarray.Dataset
        The truth returned by :func:`simulate` (aligned on coordinates by name).
    var_names : sequence of str
        Parameter groups; names missing from the posterior or truth are skipped.
    probs : sequence of float
        Interval probabilities; each interval is the equal-tailed (central) one, from the
        ``(1 - prob) / 2`` and ``(1 + prob) / 2`` quantiles of the draws.

    Returns
    -------
    pandas.DataFrame
        One row per (group, prob): ``group, prob, n, covered, coverage``.
    """
    if isinstance(posterior, xr.DataTree):
        posterior = posterior["posterior"].to_dataset()
    rows = []
    for name in var_names:
        if name not in posterior or name not in truth:
            continue
        t = truth[name]
        if t.size == 0:
            continue
        draws = posterior[name].stack(sample=("chain", "draw"))
        draws = draws.sel({d: t[d].values for d in t.dims}).transpose("sample", *t.dims).to_numpy()
        tv = t.to_numpy()
        for q in probs:
            lo, hi = np.quantile(draws, [(1 - q) / 2, (1 + q) / 2], axis=0)
            inside = (tv >= lo) & (tv <= hi)
            rows.append(
                {
                    "group": name,
                    "prob": float(q),
                    "n": int(tv.size),
                    "covered": int(inside.sum()),
                    "coverage": float(inside.mean()),
                }
            )
    return pd.DataFrame(rows, columns=["group", "prob", "n", "covered", "coverage"])


def binomial_band(n: int, prob: float, z: float = 3.0) -> tuple[float, float]:
    """``prob -/+ z`` binomial standard deviations of a coverage fraction over ``n`` values.

    If the ``n`` true values were independent and the intervals exactly calibrated, the number
    covered would be Binomial(n, prob), with sd ``sqrt(prob (1 - prob) / n)`` of the fraction.
    """
    sd = float(np.sqrt(prob * (1.0 - prob) / n))
    return max(0.0, prob - z * sd), min(1.0, prob + z * sd)
