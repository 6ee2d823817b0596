"""Every NumPy path of the model's equations agrees with the PyMC graph at the same parameters.

For every spec in ``models/``, on a small simulated table (standard and emergent benchmarks, so
``downstream`` has benchmarks on the bounded capability scale; models with unknown FLOPs and a
benchmark with a fitted floor), one parameter point is evaluated on the PyMC graph: the
deterministics (checked against :func:`pymc.compute_deterministics`), the mean and sd of the
likelihood of every observed cell and its pointwise log density.  A one-draw posterior
(chain = 1, draw = 1) holding that point is then fed to every NumPy consumer, and each must give
the graph's expected scores (and sd, and log density where it computes them):

* ``PosteriorArrays.scores`` (forecasts from compute, interventions), with each model's family
  offsets and benchmark slopes (``offset_at``, at the model's compute axis) where the spec has
  them,
* the conditional forecast's target (``ConditionalTarget.cell_params``),
* posterior checks (``predictive_tree``: the cells' predictive mean / sd and log-likelihood),
* the K-fold path (``cell_log_density``),
* the joint draws of what-to-evaluate-next (``joint_draws``),
* ``simulate`` with the point as its parameters (specs without bounded groups; it refuses them).

Compiled with FAST_COMPILE and the Python linker (seconds, not the Numba linker's ~30 s).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pymc as pm
import pytensor
import pytest
import xarray as xr

from obscale_bayes.checks.kfold import cell_log_density
from obscale_bayes.checks.ppc import predictive_tree
from obscale_bayes.data.tables import load_shipped
from obscale_bayes.fit.fitted import CapabilityModel
from obscale_bayes.forecast.conditional import ConditionalTarget, theta_prior
from obscale_bayes.forecast.joint import joint_draws
from obscale_bayes.model.build import build_model
from obscale_bayes.model.inputs import prepare_inputs
from obscale_bayes.model.simulate import simulate
from obscale_bayes.model.truth import PARAMETER_DIMS
from obscale_bayes.spec.spec import available_specs, load_spec

FAST = {"mode": "FAST_COMPILE", "linker": "py"}
TOL = {"rtol": 1e-10, "atol": 1e-12}

MODELS = [
    "huggyllama/llama-7b",
    "meta-llama/Llama-2-13b-hf",
    "meta-llama/Llama-2-70b-hf",
    "meta-llama/Meta-Llama-3-8B",
    "EleutherAI/pythia-160m-deduped",
    "EleutherAI/pythia-1.4b-deduped",
    "EleutherAI/pythia-6.9b-deduped",
    "EleutherAI/gpt-neox-20b",
    "bigscience/bloom-560m",
    "bigscience/bloom-3b",
    "bigcode/starcoderbase-1b",
    "mistralai/Mistral-7B-v0.1",  # unknown FLOPs
    "openai-community/gpt2",  # unknown FLOPs
]


@pytest.fixture(scope="module")
def table():
    template = load_shipped(groups=["standard", "emergent"]).subset(models=MODELS)
    data, _ = simulate(template, "default", seed=11)
    assert data.models["flops_1e21"].isna().sum() == 2
    assert data.benchmarks.set_index("benchmark")["floor"].isna().any()  # truthfulqa: fitted
    return data


def _point(model: pm.Model, seed: int) -> dict[str, np.ndarray]:
    """The initial point moved off its symmetric centre (value space), so every term matters."""
    rng = np.random.default_rng(seed)
    return {k: v + rng.normal(0.0, 0.6, np.shape(v)) for k, v in model.initial_point().items()}


def _dims(model: pm.Model, name: str, ndim: int) -> tuple[str, ...]:
    dims = model.named_vars_to_dims.get(name)
    return tuple(dims) if dims else tuple(f"{name}_dim_{i}" for i in range(ndim))


def _graph_at(model: pm.Model, point: dict) -> tuple[xr.Dataset, dict[str, np.ndarray]]:
    """Free variables and deterministics at ``point`` as a one-draw posterior, and the
    likelihood's mean, sd and pointwise log density of every observed cell."""
    score = model["score"]
    names = [v.name for v in model.free_RVs + model.deterministics]
    # the likelihood's mu and sigma are its last two distribution parameters (Normal, StudentT)
    mu, sigma = score.owner.inputs[-2:]
    with pytensor.config.change_flags(**FAST):
        outs = model.replace_rvs_by_values([model[n] for n in names] + [mu, sigma])
        fn = model.compile_fn(
            outs + [model.logp(vars=[score], sum=False)[0]],
            inputs=model.value_vars,
            on_unused_input="ignore",
        )
        *vals, p, sd, ll = fn(point)
    coords = {k: list(v) for k, v in model.coords.items()}
    data_vars = {}
    for n, v in zip(names, vals, strict=True):
        dims = _dims(model, n, np.ndim(v))
        data_vars[n] = (("chain", "draw", *dims), np.asarray(v, dtype=float)[None, None])
    post = xr.Dataset(data_vars, coords={"chain": [0], "draw": [0]})
    post = post.assign_coords({d: coords[d] for d in post.dims if d in coords})
    return post, {"p": p, "sd": sd, "ll": ll}


def _one_draw_fit(spec, data, post: xr.Dataset) -> CapabilityModel:
    inp = prepare_inputs(data, spec)
    obs = xr.Dataset(
        {"score": ("obs", inp.y)},
        coords={
            "obs": np.arange(len(inp.y)),
            "obs_model": ("obs", np.asarray(inp.model_ids)[inp.obs_model]),
            "obs_benchmark": ("obs", np.asarray(inp.benchmark_ids)[inp.obs_bench]),
        },
    )
    tree = xr.DataTree.from_dict({"posterior": post, "observed_data": obs})
    return CapabilityModel(spec, data, tree, diagnostics=None, meta={})


@pytest.mark.parametrize("name", available_specs())
def test_numpy_paths_match_the_graph(table, name):
    spec = load_spec(name)
    model = build_model(table, spec)
    post, ref = _graph_at(model, _point(model, seed=5))
    fit = _one_draw_fit(spec, table, post)
    inp = fit.inputs
    om, ob = inp.obs_model, inp.obs_bench
    if spec.structure["bounded_groups"]:
        assert inp.bounded[ob].any()  # the bounded scale is exercised

    # the point is consistent: compute_deterministics gives the deterministics evaluated above
    free = post[[v.name for v in model.free_RVs]]
    with pytensor.config.change_flags(**FAST):
        det = pm.compute_deterministics(free, model=model, progressbar=False)
    for v in model.deterministics:
        np.testing.assert_allclose(det[v.name].values, post[v.name].values, **TOL)

    cap = post["capability"].values[0]  # (1, M, K)
    pa = fit.posterior
    if spec.structure["family_offsets"]:
        assert np.abs(pa.family_offset).max() > 0.1  # the offsets are exercised
    x = np.zeros(len(inp.model_ids))
    if spec.structure["benchmark_slopes"]:
        assert np.abs(pa.benchmark_slope).max() > 0.1  # the slopes are exercised
        x = post["compute_axis"].values[0, 0]  # latent where FLOPs are unknown
        assert np.isfinite(x).all() and x[inp.unknown_x].std() > 0
    families = [inp.family_ids[f] for f in inp.family_idx]
    rng = np.random.default_rng(0)
    offsets = [pa.offset_at(pa.offset_of(f, rng), xm) for f, xm in zip(families, x, strict=True)]

    # forecasts from compute (and interventions): PosteriorArrays.scores
    p_all = np.stack([pa.scores(cap[:, m], None, o)[0] for m, o in enumerate(offsets)], axis=1)
    np.testing.assert_allclose(p_all[0, om, ob], ref["p"], **TOL)

    # fill in the blanks: the conditional forecast's target, one model at a time
    mean, cov = theta_prior(fit, None, 1.0, float("nan"))
    for m in range(len(inp.model_ids)):
        sel = om == m
        target = ConditionalTarget(pa, mean, cov, ob[sel], inp.y[sel], offsets=offsets[m])
        p, sd = target.cell_params(cap[:, m])
        np.testing.assert_allclose(p[0], ref["p"][sel], **TOL)
        np.testing.assert_allclose(sd[0], ref["sd"][sel], **TOL)

    # posterior checks: the cells' predictive mean and sd, and the pointwise log-likelihood
    with pytensor.config.change_flags(**FAST):
        tree = predictive_tree(fit, log_likelihood=True)
    np.testing.assert_allclose(tree["cell_params"]["mu"].values[0, 0], ref["p"], **TOL)
    np.testing.assert_allclose(tree["cell_params"]["sd"].values[0, 0], ref["sd"], **TOL)
    np.testing.assert_allclose(tree["log_likelihood"]["score"].values[0, 0], ref["ll"], **TOL)

    # K-fold: the log density of cells (here the observed ones) for a one-draw posterior
    lo, hi = inp.metric_min[ob], inp.metric_max[ob]
    cells = pd.DataFrame(
        {
            "model": np.asarray(inp.model_ids)[om],
            "benchmark": np.asarray(inp.benchmark_ids)[ob],
            "value": lo + inp.y * (hi - lo),
        }
    )
    np.testing.assert_allclose(cell_log_density(fit, cells), ref["ll"], rtol=1e-8, atol=1e-8)

    # what to evaluate next: the joint draws' expected scores and noise sd
    jd = joint_draws(fit, list(zip(cells["model"], cells["benchmark"], strict=True)))
    np.testing.assert_allclose(jd.p[0], ref["p"], **TOL)
    np.testing.assert_allclose(jd.sd[0], ref["sd"], **TOL)

    # simulate with the point as its true parameters (it refuses bounded groups)
    if not spec.structure["bounded_groups"]:
        params = {k: post[k].values[0, 0] for k in PARAMETER_DIMS if k in post}
        _, truth = simulate(table, spec, seed=0, params=params)
        np.testing.assert_allclose(truth["expected_score"].values[om, ob], ref["p"], **TOL)


@pytest.mark.parametrize("link", ["sigmoid", "floored_sigmoid"])
@pytest.mark.parametrize("noise", ["normal", "hetero", "censored"])
def test_target_module_numpy_matches_its_graph(link, noise):
    """The downstream module: ``TargetFit.expected / sd / log_likelihood`` (what forecasts and
    LOO use) against the graph's ``p``, the likelihood's sd and its pointwise log density."""
    from obscale_bayes.fit.downstream import TargetFit
    from obscale_bayes.model.downstream import build_target_model

    rng = np.random.default_rng(3)
    z = rng.normal(size=(12, 3))
    y = np.clip(rng.uniform(-0.02, 1.0, 12), None, 1.0)
    y[:2] = 0.0, 1.0  # exact bounds: the censored likelihood's masses
    model = build_target_model(z, y, link, noise)
    obs = model["y"]
    # the normal inside a censored likelihood holds its mean and sd
    dist = obs.owner.inputs[0] if noise == "censored" else obs
    mu, sigma = dist.owner.inputs[-2:]
    names = [v.name for v in model.free_RVs]
    with pytensor.config.change_flags(**FAST):
        outs = model.replace_rvs_by_values([model[n] for n in names] + [mu, sigma])
        fn = model.compile_fn(outs + [model.logp(vars=[obs], sum=False)[0]],
                              inputs=model.value_vars, on_unused_input="ignore")  # fmt: skip
        *vals, p, sd, ll = fn(_point(model, seed=4))
    v = dict(zip(names, vals, strict=True))
    one = lambda a: np.asarray(a, dtype=float)[None]  # noqa: E731 - one draw
    draws = {"bias": one(v["bias"]), "weight": one(v["weight"]), "sigma": one(v["sigma"]),
             "tau": one(v.get("tau", 0.0)), "floor": one(v.get("floor_fitted", 0.0))}  # fmt: skip
    fit = TargetFit(link, noise, draws, diagnostics=None, tree=xr.DataTree())
    p_np = fit.expected(z)
    np.testing.assert_allclose(p_np[0], p, **TOL)
    np.testing.assert_allclose(fit.sd(p_np)[0], np.broadcast_to(sd, p.shape), **TOL)
    # (PyTensor's normal log-CDF and SciPy's agree to ~1e-8 at the censored bounds)
    tol = {"rtol": 1e-7, "atol": 1e-7} if noise == "censored" else {"rtol": 1e-9, "atol": 1e-9}
    np.testing.assert_allclose(fit.log_likelihood(z, y)[0], ll, **tol)
    if noise == "censored":  # the selection rule's clipped-scale score is this likelihood
        np.testing.assert_allclose(fit.log_score(z, y)[0], ll, **tol)
