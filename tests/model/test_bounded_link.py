"""Downstream tasks on the anchors' bounded score scale with loadings >= 0 (spec `downstream`).

The PyMC likelihood of every observed cell must equal a NumPy re-computation of the same link
(bounded scale for the emergent tasks, anchor logits for the standard benchmarks).
"""

from __future__ import annotations

import numpy as np
import pytensor
import pytest
from scipy import stats

from obscale_bayes.data.tables import load_shipped
from obscale_bayes.errors import SpecError
from obscale_bayes.model.build import build_model
from obscale_bayes.model.equations import bounded_np, floored_sigmoid_np, noise_sd_np
from obscale_bayes.model.inputs import prepare_inputs
from obscale_bayes.model.simulate import simulate
from obscale_bayes.spec.spec import load_spec, spec_from_dict

FAST = {"mode": "FAST_COMPILE", "linker": "py"}


@pytest.fixture(scope="module")
def data():
    return load_shipped(groups=["standard", "emergent"])


@pytest.fixture(scope="module")
def spec():
    return load_spec("downstream")


def test_bounded_np_maps_the_floor_to_its_lower_end():
    theta = np.array([-30.0, -5.0, 0.0, 5.0, 30.0])
    u = bounded_np(theta)
    assert np.all(np.diff(u) > 0) and u[0] == pytest.approx(-5.0) and u[-1] == pytest.approx(5.0)
    assert u[2] == 0.0
    # a capability at its floor maps near -5 whatever its (poorly determined) logit
    assert abs(bounded_np(-4.0) - bounded_np(-7.0)) < 0.2


def test_groups_select_bounded_benchmarks(data, spec):
    inp = prepare_inputs(data, spec)
    groups = data.benchmarks.set_index("benchmark")["group"]
    names = [inp.benchmark_ids[j] for j in inp.bounded_bench]
    assert names and all(groups[b] == "emergent" for b in names)
    assert set(names) == {b for b in inp.benchmark_ids if groups[b] == "emergent"}
    assert not set(names) & set(spec.anchors)


def test_likelihood_matches_numpy_link(data, spec):
    model = build_model(data, spec)
    inp = prepare_inputs(data, spec)
    assert "loading_positive" in model.named_vars
    assert model.named_vars_to_dims["loading_free"] == ("signed_benchmark", "factor")
    rng = np.random.default_rng(3)
    point = {k: v + rng.normal(0, 0.3, np.shape(v)) for k, v in model.initial_point().items()}
    names = ["capability", "loading", "intercept", "floor", "misfit", "logit_misfit"]
    with pytensor.config.change_flags(**FAST):
        # replace_rvs_by_values: evaluate the deterministics at the point, not at random draws
        outs = model.replace_rvs_by_values([model[n] for n in names])
        fn = model.compile_fn(
            outs + [model.logp(vars=[model["score"]], sum=False)[0]],
            inputs=model.value_vars,
            on_unused_input="ignore",
        )
        *vals, lp = fn(point)
    cap, lam, alpha, floor, tau, nu = vals
    assert np.all(lam[inp.bounded_bench] >= 0)
    om, ob = inp.obs_model, inp.obs_bench
    th = cap[om]
    th = np.where(inp.bounded[ob][:, None], bounded_np(th), th)
    eta = alpha[ob] + np.sum(lam[ob] * th, axis=1)
    p = floored_sigmoid_np(eta, floor[ob])
    sd = noise_sd_np(p, inp.inv_n[ob], tau[ob], floor[ob], nu[ob])
    ref = stats.norm.logpdf(inp.y, p, sd)
    np.testing.assert_allclose(lp, ref, rtol=1e-6, atol=1e-8)
    # the bounded cells really use the bounded scale: with raw logits they would differ
    raw = alpha[ob] + np.sum(lam[ob] * cap[om], axis=1)
    assert np.abs(raw - eta)[inp.bounded[ob]].max() > 0.1


def test_spec_errors_are_one_line():
    with pytest.raises(SpecError, match="bounded_groups must be a list"):
        spec_from_dict({"structure": {"bounded_groups": "emergent"}})
    with pytest.raises(SpecError, match="'positive_loading' must be a positive distribution"):
        spec_from_dict({"priors": {"positive_loading": {"dist": "normal", "mu": 0, "sigma": 1}}})


def test_simulate_refuses_bounded_groups(data, spec):
    with pytest.raises(SpecError, match="bounded_groups"):
        simulate(data, spec, seed=0)


def test_linear_predictor_uses_the_bounded_scale_only_where_flagged():
    from obscale_bayes.model.equations import linear_predictor_np

    rng = np.random.default_rng(0)
    theta = rng.normal(0, 3, (5, 4, 2))  # (S, models, K)
    alpha = rng.normal(size=(5, 1, 3))
    lam = rng.normal(size=(5, 3, 2))  # (S, J, K)
    flag = np.array([False, True, False])
    # every benchmark at once: theta (S, M, 1, K) against loadings (S, 1, J, K)
    eta = linear_predictor_np(theta[..., None, :], alpha, lam[:, None], flag)
    for s in range(5):
        for m in range(4):
            for j in range(3):
                th = bounded_np(theta[s, m]) if flag[j] else theta[s, m]
                assert eta[s, m, j] == pytest.approx(alpha[s, 0, j] + lam[s, j] @ th)
    unbounded = linear_predictor_np(theta[..., None, :], alpha, lam[:, None], None)
    np.testing.assert_array_equal(unbounded[..., 0], eta[..., 0])
