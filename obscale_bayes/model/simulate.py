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
:func:`~obscale_bayes.model.equations.noise_sd_np`, as the spec's ``misfit_scale`` sets them
(:func:`~obscale_bayes.model.equations.misfits_np`).  The template's models, families, FLOPs (unknown
FLOPs stay unknown in the returned table, but get a true value), benchmark metadata and the
pattern of missing cells are kept exactly.

Which "true" parameters
-----------------------
By default the population-level and benchmark-level parameters are a fixed *realistic* set:
rounded posterior means of the default model fitted to the shipped base table (K = 3 anchored on
MMLU, HellaSwag, HumanEval; see :data:`~obscale_bayes.model.truth.REALISTIC_FACTORS` and
:data:`~obscale_bayes.model.truth.REALISTIC_BENCHMARKS`).
Everything below them (family efficiencies and slopes, unknown FLOPs, capabilities, noise) is
drawn from the model's generative process with ``seed``.  A factor anchored on a benchmark the
table does not know gets :data:`~obscale_bayes.model.truth.GENERIC_FACTOR`; a benchmark it does not know (or a loading on
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
from obscale_bayes.model.equations import (
    compute_shift_np,
    efficiency_centre_np,
    expected_score_np,
    free_misfit_name,
    noise_sd_np,
)
from obscale_bayes.model.inputs import coords_of, prepare_inputs
from obscale_bayes.model.truth import (
    GENERIC_TREND,
    REALISTIC_BENCHMARK_SLOPE_SD,
    REALISTIC_FAMILY_OFFSET_SD,
    REALISTIC_TRENDS,
    Overrides,
    benchmark_parameters,
    check_identified,
    population_parameters,
)
from obscale_bayes.spec.spec import ModelSpec, load_spec

__all__ = ["simulate"]


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
        are dropped, as in :func:`~obscale_bayes.model.inputs.prepare_inputs`.
    spec : ModelSpec, str or None
        Model structure (K, anchors, family slopes, likelihood) and priors; a variant name or
        file as for :func:`~obscale_bayes.spec.load_spec` (None = default).
    seed : int
        Seed of every random draw: the same seed gives the same table and truth.
    params : dict, optional
        Overrides of true parameters by name (see :data:`~obscale_bayes.model.truth.PARAMETER_DIMS`): a scalar
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
        (true centred log10 FLOPs of every model) and ``expected_score (model, benchmark)``;
        with family offsets ``family_offset_sd, family_offset``, with benchmark slopes
        ``benchmark_slope_sd, benchmark_slope, compute_axis``.
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
    ov = Overrides(params, coords)
    rng = np.random.default_rng(seed)
    st = spec.structure
    n_m, n_f, n_k = len(inp.model_ids), len(inp.family_ids), len(inp.factor_ids)

    # --- population parameters of each capability
    v: dict[str, np.ndarray] = population_parameters(inp, spec, from_prior, rng)
    for key in list(v):
        if key in ov:
            v[key] = ov.get(key)
    v.update(benchmark_parameters(inp, spec, from_prior, rng))
    for key in ("loading", "intercept", "misfit", "logit_misfit", "floor"):
        if key in ov:
            v[key] = ov.get(key)
    check_identified(inp, spec, v)

    # --- family efficiencies and slopes (partial pooling), unknown compute, capabilities
    centre = v["efficiency_mean"]
    trend_vars: dict[str, tuple] = {}
    if st["release_trend"]:  # (no draws otherwise: the same seed keeps giving the same table)
        gamma = (spec.priors["efficiency_trend"].draw(rng, n_k) if from_prior else
                 np.array([REALISTIC_TRENDS.get(f, GENERIC_TREND) for f in inp.factor_ids]))  # fmt: skip
        if "efficiency_trend" in ov:
            gamma = ov.get("efficiency_trend")
        und = inp.undated_families
        t_lat = inp.year_prior[0] + inp.year_prior[1] * rng.standard_normal(len(und))
        if "release_latent" in ov:
            t_lat = ov.get("release_latent")
        t = np.nan_to_num(inp.family_year, nan=0.0)
        t[und] = t_lat
        centre = efficiency_centre_np(v["efficiency_mean"], gamma, t[:, None])
        trend_vars = {"efficiency_trend": (("factor",), gamma),
                      "release_latent": (("undated_family",), t_lat)}  # fmt: skip
    a = centre + v["efficiency_sd"] * rng.standard_normal((n_f, n_k))
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

    # --- family-by-benchmark offsets (structure.family_offsets; no draws otherwise)
    free = inp.free_bench
    offset_vars: dict[str, tuple] = {}
    alpha = v["intercept"]
    if st["family_offsets"]:
        sd_d = (spec.priors["family_offset_sd"].draw(rng, len(free)) if from_prior
                else np.full(len(free), REALISTIC_FAMILY_OFFSET_SD))  # fmt: skip
        if "family_offset_sd" in ov:
            sd_d = ov.get("family_offset_sd")
        z = rng.standard_normal((n_f, len(free)))
        delta = np.zeros((n_f, len(inp.benchmark_ids)))
        delta[:, free] = sd_d * z
        if "family_offset" in ov:
            delta = ov.get("family_offset")
        alpha = v["intercept"] + delta[inp.family_idx]  # (M, J)
        offset_vars = {"family_offset_sd": (("free_benchmark",), sd_d),
                       "family_offset": (("family", "benchmark"), delta)}  # fmt: skip
    # --- per-benchmark compute slopes (structure.benchmark_slopes; no draws otherwise)
    if st["benchmark_slopes"]:
        sd_c = (float(spec.priors["benchmark_slope_sd"].draw(rng, 1)[0]) if from_prior
                else REALISTIC_BENCHMARK_SLOPE_SD)  # fmt: skip
        if "benchmark_slope_sd" in ov:
            sd_c = float(ov.get("benchmark_slope_sd"))
        c = np.zeros(len(inp.benchmark_ids))
        c[free] = sd_c * rng.standard_normal(len(free))
        if "benchmark_slope" in ov:
            c = ov.get("benchmark_slope")
            if np.any(c[inp.anchor_idx] != 0):
                raise UsageError(
                    "simulate: params['benchmark_slope'] must be 0 on the anchors (as in the model)"
                )
        alpha = alpha + compute_shift_np(c, x)  # (M, J)
        offset_vars |= {"benchmark_slope_sd": ((), sd_c), "benchmark_slope": (("benchmark",), c),
                        "compute_axis": (("model",), x)}  # fmt: skip

    # --- scores: floored sigmoid of the factor model, sampling noise + misfit, clipped
    p_all = expected_score_np(
        theta[:, None, :], alpha, v["loading"], v["floor"], inp.bounded
    )  # (M, J)
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
        **trend_vars,
        **offset_vars,
    }
    if st["family_slopes"]:
        dv["slope_sd"] = (("factor",), v["slope_sd"])
    # the free (estimated) misfit parameter of the fit, by misfit_scale
    est = free_misfit_name(st["misfit_scale"])
    dv[f"{est}_free"] = (("free_benchmark",), v[est][free])
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
