"""The PyMC graph of build_model: dims, coordinates, anchors, latent FLOPs, floors, finite logp.

Everything is compiled with PyTensor's FAST_COMPILE mode and the Python linker: the default
(Numba) needs ~30 s per function on this model, the Python linker ~1 s.
"""

from __future__ import annotations

from functools import partial

import numpy as np
import pymc as pm
import pytensor
import pytest
from pymc.testing import mock_sample

from obscale_bayes.fit.diagnostics import compute_diagnostics
from obscale_bayes.fit.fitted import CapabilityModel
from obscale_bayes.model.build import build_model
from obscale_bayes.model.inputs import prepare_inputs
from obscale_bayes.spec.spec import available_specs, load_spec

FAST = {"mode": "FAST_COMPILE", "linker": "py"}


@pytest.fixture(scope="module")
def data(shipped):
    return shipped


@pytest.fixture(scope="module")
def default_model(data):
    return build_model(data, load_spec())


def _evaluate(model, names):
    """Values of named variables at the model's initial point.

    ``replace_rvs_by_values``: a deterministic's graph refers to the random variables, which
    would otherwise be drawn afresh on every call instead of taking the point's values.
    """
    with pytensor.config.change_flags(**FAST):
        outs = model.replace_rvs_by_values([model[n] for n in names])
        fn = model.compile_fn(outs, inputs=model.value_vars, on_unused_input="ignore")
        return dict(zip(names, fn(model.initial_point()), strict=True))


def _logp(model):
    with pytensor.config.change_flags(**FAST):
        return float(model.compile_logp()(model.initial_point()))


def test_dims_and_coords_match_data(data, default_model):
    m = default_model
    spec = load_spec()
    assert list(m.coords["model"]) == data.model_ids  # every shipped model has scores
    assert list(m.coords["family"]) == data.families
    assert list(m.coords["benchmark"]) == data.benchmark_ids
    assert list(m.coords["factor"]) == spec.anchors == ["mmlu", "hellaswag", "humaneval"]
    assert list(m.coords["free_benchmark"]) == [
        b for b in data.benchmark_ids if b not in spec.anchors
    ]
    dims = m.named_vars_to_dims
    assert dims["capability"] == ("model", "factor")
    assert dims["efficiency"] == ("family", "factor")
    assert dims["slope"] == ("family", "factor")
    assert dims["loading"] == ("benchmark", "factor")
    for name in ("intercept", "misfit", "floor"):
        assert dims[name] == ("benchmark",)
    for name in ("efficiency_mean", "efficiency_sd", "slope_mean", "residual_sd"):
        assert dims[name] == ("factor",)
    assert "slope_sd" not in dims  # the default: one slope per capability (family_slopes: one each)
    assert dims["score"] == ("obs",)
    # one observation per non-missing cell
    assert len(m.coords["obs"]) == len(data.scores) == int(data.wide().notna().sum().sum())
    y = np.asarray(m.rvs_to_values[m["score"]].data)
    assert y.shape == (len(data.scores),)
    assert np.all((y >= 0) & (y <= 1))


def test_anchor_rows_unit_vectors_and_zero_intercepts(default_model):
    m = default_model
    spec = load_spec()
    v = _evaluate(m, ["loading", "intercept", "misfit", "logit_misfit", "floor"])
    bench = list(m.coords["benchmark"])
    factors = list(m.coords["factor"])
    for k, f in enumerate(factors):
        j = bench.index(f)
        np.testing.assert_array_equal(v["loading"][j], np.eye(len(factors))[k])
        assert v["intercept"][j] == 0.0
        # an anchor's misfit is fixed by the spec, not estimated
        assert v["misfit"][j] == spec.structure["anchor_misfit"] == 0.015
    free = [bench.index(b) for b in m.coords["free_benchmark"]]
    # free rows are free parameters (the initial point is the prior mean 0; check shape only)
    assert v["loading"][free].shape == (len(bench) - len(factors), len(factors))
    assert np.all(v["misfit"][free] > 0)
    np.testing.assert_array_equal(v["logit_misfit"], 0.0)  # misfit_scale = "score"


def test_logit_misfit_scale_graph(data):
    """misfit_scale = "logit": a free logit-scale misfit per non-anchor benchmark."""
    spec = load_spec().with_overrides(misfit_scale="logit")
    m = build_model(data, spec)
    names = {v.name for v in m.free_RVs}
    assert "logit_misfit_free" in names and "misfit_free" not in names
    assert m.named_vars_to_dims["logit_misfit_free"] == ("free_benchmark",)
    v = _evaluate(m, ["misfit", "logit_misfit"])
    bench = list(m.coords["benchmark"])
    anchors = [bench.index(a) for a in spec.anchors]
    free = [bench.index(b) for b in m.coords["free_benchmark"]]
    np.testing.assert_array_equal(v["logit_misfit"][anchors], 0.0)
    assert np.all(v["logit_misfit"][free] > 0)
    np.testing.assert_array_equal(v["misfit"][free], spec.structure["misfit_floor"])
    np.testing.assert_array_equal(v["misfit"][anchors], spec.structure["anchor_misfit"])
    assert np.isfinite(_logp(m))


def test_latent_flops_only_for_unknown(data, default_model):
    m = default_model
    unknown = data.models.loc[data.models["flops_1e21"].isna(), "model"].tolist()
    assert len(unknown) == 16
    assert list(m.coords["latent_flops_model"]) == unknown
    assert m.named_vars_to_dims["x_latent"] == ("latent_flops_model",)
    # without unknown FLOPs there is no latent variable at all
    known = data.subset(models=[i for i in data.model_ids if i not in set(unknown)])
    m2 = build_model(known, load_spec())
    assert "x_latent" not in m2.named_vars
    assert list(m2.coords["latent_flops_model"]) == []


def test_fitted_floors_of_every_non_anchor_benchmark(data, default_model):
    """The default (``fitted_floors = "non_anchor"``) fits every floor but the anchors' (q. 12)."""
    m = default_model
    bench = list(m.coords["benchmark"])
    anchors = load_spec().anchors
    assert list(m.coords["fitted_floor_benchmark"]) == [b for b in bench if b not in anchors]
    v = _evaluate(m, ["floor"])["floor"]
    meta = data.benchmarks.set_index("benchmark")["floor"]
    for j, b in enumerate(bench):
        if b in anchors:
            assert v[j] == meta[b]


def test_metadata_floors_fit_only_truthfulqa(data):
    """``fitted_floors = "blank"`` fits only the floor the metadata leave blank."""
    m = build_model(data, load_spec("metadata_floors"))
    assert list(m.coords["fitted_floor_benchmark"]) == ["truthfulqa"]
    assert m.named_vars_to_dims["floor_fitted"] == ("fitted_floor_benchmark",)
    v = _evaluate(m, ["floor"])["floor"]
    bench = list(m.coords["benchmark"])
    meta = data.benchmarks.set_index("benchmark")["floor"]
    for j, b in enumerate(bench):
        if b != "truthfulqa":
            assert v[j] == meta[b]
        else:
            assert 0.0 < v[j] < 0.5  # the uniform(0, 0.5) prior's initial point


def test_free_rvs_of_default(default_model):
    names = {v.name for v in default_model.free_RVs}
    assert names == {
        "x_latent",
        "efficiency_mean",
        "efficiency_sd",
        "efficiency_z",
        "slope_mean",
        "residual_sd",
        "capability_z",
        "loading_free",
        "intercept_free",
        "floor_fitted",
        "misfit_free",
        "family_offset_sd",
        "family_offset_z",
    }


@pytest.mark.parametrize("name", available_specs())
def test_every_spec_builds_with_finite_logp(data, name):
    spec = load_spec(name)
    m = build_model(data, spec)
    k = spec.n_factors
    assert list(m.coords["factor"]) == spec.anchors and len(spec.anchors) == k
    # one compiled function: deterministics, logp and its gradient (what NUTS needs)
    logp = m.logp()
    grad = pytensor.grad(logp, m.continuous_value_vars)
    dets = m.replace_rvs_by_values([m["loading"], m["intercept"], m["capability"], m["slope"]])
    outs = [*dets, logp, *grad]
    with pytensor.config.change_flags(**FAST):
        fn = m.compile_fn(outs, inputs=m.value_vars, on_unused_input="ignore")
        lam, alpha, theta, slope, lp, *dlp = fn(m.initial_point())
    assert lam.shape == (len(data.benchmark_ids), k)
    assert theta.shape == (len(data.model_ids), k)
    bench = list(m.coords["benchmark"])
    for i, a in enumerate(spec.anchors):
        np.testing.assert_array_equal(lam[bench.index(a)], np.eye(k)[i])
        assert alpha[bench.index(a)] == 0.0
    assert np.isfinite(lp)
    assert len(dlp) == len(m.continuous_value_vars)
    assert all(np.all(np.isfinite(g)) for g in dlp)
    if not spec.structure["family_slopes"]:
        assert "slope_sd" not in m.named_vars
        assert np.allclose(slope, slope[:1])
    if spec.structure["likelihood"] == "student_t":
        assert isinstance(m["score"].owner.op, type(pm.StudentT.dist(nu=4).owner.op))


def test_logp_finite_with_exact_zero_and_one_scores(data):
    """Scores of exactly 0 (GSM8K, HumanEval) and 1, and under the chance floor, keep logp finite."""
    s = data.scores.copy()
    s.loc[s["benchmark"] == "humaneval", "value"] = 0.0
    s.loc[(s["benchmark"] == "gsm8k") & (s.index % 2 == 0), "value"] = 1.0
    s.loc[s["benchmark"] == "mmlu", "value"] = 0.2  # below the 0.25 floor
    from obscale_bayes.data.tables import BenchmarkData

    d = BenchmarkData(data.models, s, data.benchmarks, source="edited")
    assert np.isfinite(_logp(build_model(d, load_spec())))


def test_inputs_consistent_with_graph(data, default_model):
    inp = prepare_inputs(data, load_spec())
    assert inp.unknown_x.size == len(default_model.coords["latent_flops_model"])
    assert np.isnan(inp.floor).sum() == len(inp.benchmark_ids) - len(
        inp.anchor_idx
    )  # all but anchors
    np.testing.assert_allclose(inp.inv_n, 1.0 / data.benchmarks["n_items"].to_numpy())


def _diverging(size, n=3):
    out = np.zeros(size, dtype=bool)
    out.flat[:n] = True
    return out


def test_diagnostics_read_divergences_from_mocked_sampler(data, monkeypatch):
    """fit(sampler="pymc") with pm.sample mocked: the gate counts the sampler's divergences."""
    mocked = partial(mock_sample, sample_stats={"diverging": _diverging})
    monkeypatch.setattr(pm, "sample", mocked)
    small = data.subset(models=data.model_ids[:30])
    with pytensor.config.change_flags(**FAST):
        fit = CapabilityModel.fit(
            small, None, draws=12, tune=5, chains=2, sampler="pymc", progress=False
        )
    post = fit.idata["posterior"].dataset
    assert post.sizes["chain"] == 2 and post.sizes["draw"] == 12
    assert set(post["capability"].dims) == {"chain", "draw", "model", "factor"}
    d = fit.diagnostics
    assert d.divergences == 3
    assert not d.passed
    assert any("3 divergent" in f for f in d.failures())
    # and the same function straight on a tree with no divergences
    tree = fit.idata.copy()
    ss = tree["sample_stats"].to_dataset()
    ss["diverging"] = ss["diverging"] & False
    tree["sample_stats"] = ss
    assert compute_diagnostics(tree).divergences == 0


def test_gate_leaves_out_the_repeated_shared_slope(subset):
    """With one slope for all families, ``slope`` is ``slope_mean`` per family: not gated twice."""
    from obscale_bayes import testing
    from obscale_bayes.fit.diagnostics import gate_summary, gate_vars

    shared = testing.prior_fit(subset, "default", draws=20, chains=2, seed=0).idata
    per_family = testing.prior_fit(subset, "family_slopes", draws=20, chains=2, seed=0).idata
    assert "slope" in shared["posterior"].dataset and "slope" not in gate_vars(
        shared["posterior"].dataset
    )
    assert {"slope", "slope_sd"} <= set(gate_vars(per_family["posterior"].dataset))
    assert not any(str(i).startswith("slope[") for i in gate_summary(shared).index)
    assert any(str(i).startswith("slope[") for i in gate_summary(per_family).index)
