"""Intervention effects: the difference arithmetic (NumPy, exact) and recovery on simulated data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

from obscale_bayes.data.tables import BenchmarkData
from obscale_bayes.errors import UsageError
from obscale_bayes.forecast.intervention_pairs import (
    INTERVENTIONS,
    get_intervention,
    observed_effect,
)
from obscale_bayes.forecast.interventions import (
    effect_vs_capability,
    effect_vs_compute,
    summarize_effect,
)
from obscale_bayes.model.draws import PosteriorArrays
from obscale_bayes.model.equations import floored_sigmoid_np

BENCH = ["mmlu", "hs", "treated", "control"]


def _pa(seed: int = 0, s: int = 400) -> PosteriorArrays:
    """Hand-made posterior: 2 factors anchored on mmlu and hs, 2 task variants, 2 families."""
    rng = np.random.default_rng(seed)
    k, j = 2, 4
    loading = np.zeros((s, j, k))
    loading[:, 0, 0] = loading[:, 1, 1] = 1.0
    loading[:, 2] = [1.5, 0.2] + 0.1 * rng.standard_normal((s, k))
    loading[:, 3] = [1.0, 0.3] + 0.1 * rng.standard_normal((s, k))
    intercept = np.zeros((s, j))
    intercept[:, 2] = -0.5 + 0.2 * rng.standard_normal(s)
    intercept[:, 3] = -1.5 + 0.2 * rng.standard_normal(s)
    floor = np.tile([0.25, 0.25, 0.0, 0.1], (s, 1))
    z = np.zeros((s, k))
    return PosteriorArrays(
        family_ids=["A", "B"], benchmark_ids=BENCH, factor_ids=["mmlu", "hs"],
        efficiency=-1.0 + 0.3 * rng.standard_normal((s, 2, k)),
        slope=1.2 + 0.1 * rng.standard_normal((s, 2, k)),
        efficiency_mean=z - 1.0, efficiency_sd=z + 0.5, slope_mean=z + 1.2, slope_sd=z + 0.1,
        residual_sd=z + 0.3, loading=loading, intercept=intercept, floor=floor,
        misfit=np.full((s, j), 0.02), logit_misfit=np.zeros((s, j)),
        inv_n=np.full(j, 1 / 500), metric_min=np.zeros(j), metric_max=np.ones(j), x0=1.5,
    )  # fmt: skip


def _p(pa, theta):
    """Expected scores (S, N, J) of capabilities (S, N, K), written out independently."""
    eta = pa.intercept[:, None, :] + np.einsum("snk,sjk->snj", theta, pa.loading)
    return floored_sigmoid_np(eta, pa.floor[:, None, :])


def test_effect_vs_compute_is_the_per_draw_difference():
    pa = _pa()
    flops = np.array([1e21, 1e23, 1e25])
    t = effect_vs_compute(pa, ("treated", "control"), "A", flops, residual=False, ci=0.8)
    x = np.log10(flops) - 21 - pa.x0
    theta = pa.efficiency[:, 0, None, :] + pa.slope[:, 0, None, :] * x[None, :, None]
    p = _p(pa, theta)
    d = p[..., 2] - p[..., 3]
    np.testing.assert_allclose(t["median"], np.median(d, axis=0))
    np.testing.assert_allclose(t["mean"], d.mean(axis=0))
    np.testing.assert_allclose(t["lower"], np.quantile(d, 0.1, axis=0))
    np.testing.assert_allclose(t["upper"], np.quantile(d, 0.9, axis=0))
    np.testing.assert_allclose(t["p_positive"], (d > 0).mean(axis=0))
    np.testing.assert_allclose(t["control"], np.median(p[..., 3], axis=0))
    np.testing.assert_allclose(t["capability"], np.median(p[..., 0], axis=0))
    assert list(t["log10_flops"]) == [21.0, 23.0, 25.0]
    assert (t["lower"] <= t["median"]).all() and (t["median"] <= t["upper"]).all()


def test_new_family_residual_and_new_evaluation_widen_the_band():
    pa = _pa(s=4000)
    f = [1e23]
    known = effect_vs_compute(pa, ("treated", "control"), "A", f, residual=False)
    res = effect_vs_compute(pa, ("treated", "control"), "A", f, residual=True)
    new = effect_vs_compute(pa, ("treated", "control"), "Z", f, residual=True)
    noisy = effect_vs_compute(pa, ("treated", "control"), "Z", f, new_evaluation=True)
    w = [float((t["upper"] - t["lower"]).iloc[0]) for t in (known, res, new, noisy)]
    assert w[0] < w[1] < w[2] < w[3]
    # noise has mean zero: the noisy effect is centred where the expected one is
    assert noisy["mean"].iloc[0] == pytest.approx(new["mean"].iloc[0], abs=0.01)


def test_effect_vs_capability_uses_the_conditional_line():
    pa = _pa(s=50)
    rng = np.random.default_rng(3)
    s, m = pa.n_samples, 30
    t1 = rng.normal(0.0, 1.0, (s, m))
    slope, inter = 0.5 + 0.1 * rng.standard_normal(s), 0.2 + 0.1 * rng.standard_normal(s)
    t2 = inter[:, None] + slope[:, None] * t1  # exactly on a line: no scatter
    cap = np.stack([t1, t2], axis=-1)
    grid = np.array([0.4, 0.6, 0.8])
    t = effect_vs_capability(None, ("treated", "control"), grid, capability=cap, pa=pa)
    th1 = np.log((grid - 0.25) / 0.75) - np.log1p(-(grid - 0.25) / 0.75)
    theta = np.stack([np.broadcast_to(th1, (s, 3)), inter[:, None] + slope[:, None] * th1], -1)
    p = _p(pa, theta)
    np.testing.assert_allclose(t["median"], np.median(p[..., 2] - p[..., 3], axis=0))
    np.testing.assert_allclose(t["theta"], th1)
    # the grid is the anchor's expected score: mmlu's predicted score at theta1 equals the grid
    np.testing.assert_allclose(np.median(p[..., 0], axis=0), grid)
    spread = effect_vs_capability(None, ("treated", "control"), grid, capability=cap, pa=pa,
                                  spread=True)  # fmt: skip
    np.testing.assert_allclose(spread["median"], t["median"], atol=1e-9)  # zero scatter
    with pytest.raises(UsageError, match="strictly between"):
        effect_vs_capability(None, ("treated", "control"), [0.2], capability=cap, pa=pa)


def test_summarize_effect_known_normal():
    rng = np.random.default_rng(1)
    d = rng.normal(0.1, 0.05, size=(200_000, 1))
    s = summarize_effect(d, ci=0.9).iloc[0]
    assert s["median"] == pytest.approx(0.1, abs=0.001)
    assert s["lower"] == pytest.approx(0.1 - norm.ppf(0.95) * 0.05, abs=0.001)
    assert s["upper"] == pytest.approx(0.1 + norm.ppf(0.95) * 0.05, abs=0.001)
    assert s["p_positive"] == pytest.approx(norm.cdf(2.0), abs=0.002)


def test_intervention_names_and_errors():
    ids = [iv.treated for iv in INTERVENTIONS.values()] + [
        iv.control for iv in INTERVENTIONS.values()
    ]
    assert get_intervention("gsm8k_cot", ids).control == "gsm8k_5_exact_match,flexible-extract"
    for bad, msg in ((("nope"), "unknown name"), (("a", "a"), "the same"),
                     (("treated", "zzz"), "no benchmark 'zzz'"), (3, "give a name")):  # fmt: skip
        with pytest.raises(UsageError, match=msg) as e:
            get_intervention(bad, BENCH if bad != ("a", "a") else ["a"])
        assert "\n" not in str(e.value)
    with pytest.raises(UsageError):
        effect_vs_compute(_pa(s=10), ("treated", "control"), "A", [-1.0])


def test_observed_effect_arithmetic():
    models = pd.DataFrame({"model": ["m1", "m2", "m3"], "family": ["A", "A", "B"],
                           "kind": "base", "params_b": 1.0, "tokens_t": 1.0,
                           "flops_1e21": [1.0, 2.0, 3.0]})  # fmt: skip
    scores = pd.DataFrame({"model": ["m1", "m1", "m2", "m3", "m3"],
                           "benchmark": ["t", "c", "t", "t", "c"],
                           "value": [0.5, 0.2, 0.4, 0.3, 0.35]})  # fmt: skip
    bench = pd.DataFrame({"benchmark": ["t", "c"], "display_name": ["t", "c"],
                          "group": "post_training", "floor": 0.0, "n_items": 100.0,
                          "metric_min": 0.0, "metric_max": 1.0, "unit": "fraction"})  # fmt: skip
    obs = observed_effect(BenchmarkData(models, scores, bench), ("t", "c"))
    assert list(obs["model"]) == ["m1", "m3"]
    np.testing.assert_allclose(obs["effect"], [0.3, -0.05])
