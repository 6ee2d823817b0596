"""The true parameters of a simulation (:func:`~obscale_bayes.model.simulate.simulate`).

Population and benchmark parameters are a fixed *realistic* set by default (rounded posterior
means of the default model on the shipped base table: :data:`REALISTIC_FACTORS`,
:data:`REALISTIC_BENCHMARKS`, :data:`GENERIC_FACTOR` for an unknown anchor) or drawn from the
spec's priors; :class:`Overrides` aligns a user's ``params`` on the model's coordinates, and
:func:`check_identified` keeps them in the model's identified frame (anchor rows, fixed
misfits, metadata floors).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

from obscale_bayes.errors import UsageError
from obscale_bayes.model.equations import misfits_np
from obscale_bayes.model.inputs import ModelInputs
from obscale_bayes.spec.spec import ModelSpec

__all__ = [
    "GENERIC_FACTOR",
    "PARAMETER_DIMS",
    "REALISTIC_BENCHMARKS",
    "REALISTIC_FACTORS",
    "REALISTIC_FAMILY_OFFSET_SD",
    "REALISTIC_TRENDS",
    "Overrides",
    "benchmark_parameters",
    "check_identified",
    "fixed_misfits",
    "population_parameters",
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

#: Release-date trend of family efficiency per year (``release_trend`` specs only), by anchor:
#: rounded slopes of the default fit's family efficiencies on their release dates
#: (``plot_efficiency_by_release``), which has no such term; 0.5 for other anchors.
REALISTIC_TRENDS: dict[str, float] = {"mmlu": 0.8, "hellaswag": -0.1, "humaneval": 0.8}
GENERIC_TREND = 0.5
#: Spread of the family-by-benchmark offsets (logit; structure.family_offsets): the family means
#: of the default fit's residuals on the shipped table exceed what independent residuals give
#: by about 2-4 pp on ARC-C, GSM8K, Winogrande and XWinograd, some 0.1-0.2 on the logit scale.
REALISTIC_FAMILY_OFFSET_SD = 0.15
#: Spread of the per-benchmark compute slopes (logit per decade of FLOPs;
#: structure.benchmark_slopes): a round value between no trend of its own and the spread of the
#: capability slopes themselves.
REALISTIC_BENCHMARK_SLOPE_SD = 0.15

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
    "efficiency_trend": ("factor",),
    "release_latent": ("undated_family",),
    "efficiency": ("family", "factor"),
    "slope": ("family", "factor"),
    "x_latent": ("latent_flops_model",),
    "capability": ("model", "factor"),
    "loading": ("benchmark", "factor"),
    "intercept": ("benchmark",),
    "misfit": ("benchmark",),
    "logit_misfit": ("benchmark",),
    "floor": ("benchmark",),
    "family_offset_sd": ("free_benchmark",),
    "family_offset": ("family", "benchmark"),
    "benchmark_slope_sd": (),
    "benchmark_slope": ("benchmark",),
}


class Overrides:
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


def population_parameters(
    inp: ModelInputs, spec: ModelSpec, from_prior: bool, rng
) -> dict[str, np.ndarray]:
    keys = ("efficiency_mean", "efficiency_sd", "slope_mean", "slope_sd", "residual_sd")
    k = len(inp.factor_ids)
    if from_prior:
        return {key: spec.priors[key].draw(rng, k) for key in keys}
    return {
        key: np.array([REALISTIC_FACTORS.get(f, GENERIC_FACTOR)[key] for f in inp.factor_ids])
        for key in keys
    }


def fixed_misfits(inp: ModelInputs, spec: ModelSpec) -> dict[str, np.ndarray]:
    """The misfit entries the model fixes rather than estimates (NaN = estimated; see
    :func:`~obscale_bayes.model.equations.misfits_np`)."""
    nan = np.full(len(inp.free_bench), np.nan)
    tau, nu = misfits_np(
        spec.structure, nan, inp.free_bench, inp.anchor_idx, len(inp.benchmark_ids)
    )
    return {"misfit": tau, "logit_misfit": nu}


def benchmark_parameters(
    inp: ModelInputs, spec: ModelSpec, from_prior: bool, rng
) -> dict[str, np.ndarray]:
    """Loadings, intercepts, misfits and floors; anchors get unit rows and 0 intercept."""
    n_b, n_k = len(inp.benchmark_ids), len(inp.factor_ids)
    pr = spec.priors
    lam = pr["loading"].draw(rng, (n_b, n_k))
    alpha = pr["intercept"].draw(rng, n_b)
    tau = pr["misfit"].draw(rng, n_b)
    nu = pr["logit_misfit"].draw(rng, n_b)
    floor = inp.floor.copy()
    fitted = np.isnan(floor)
    floor[fitted] = pr["floor"].draw(rng, int(fitted.sum()))
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
        # a fitted floor with a metadata chance level: realistically, that level (the prior
        # Uniform(0, 0.5) would put e.g. GSM8K's floor anywhere up to 0.5)
        if inp.chance is not None:
            meta = fitted & np.isfinite(inp.chance)
            floor[meta] = inp.chance[meta]
    lam[inp.anchor_idx] = np.eye(n_k)
    alpha[inp.anchor_idx] = 0.0
    fixed = fixed_misfits(inp, spec)
    for key, val in (("misfit", tau), ("logit_misfit", nu)):
        val[np.isfinite(fixed[key])] = fixed[key][np.isfinite(fixed[key])]
    return {"loading": lam, "intercept": alpha, "misfit": tau, "logit_misfit": nu, "floor": floor}


def check_identified(inp: ModelInputs, spec: ModelSpec, v: dict[str, np.ndarray]) -> None:
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
    for key, fixed in fixed_misfits(inp, spec).items():
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
