"""Per-benchmark compute slopes (``structure.benchmark_slopes``, the ``benchmark_slopes``
variant): the spec key, the shift ``c_j x`` every forecast path adds (compute, fill-in with known
and unknown FLOPs, interventions), simulation, and recovery by NUTS."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from obscale_bayes import testing
from obscale_bayes.data.tables import BenchmarkData, load_shipped
from obscale_bayes.errors import SpecError, UsageError
from obscale_bayes.forecast.compute import forecast_compute
from obscale_bayes.forecast.conditional import forecast_from_scores
from obscale_bayes.forecast.interventions import effect_vs_capability, effect_vs_compute
from obscale_bayes.model.equations import floored_sigmoid_np
from obscale_bayes.model.simulate import simulate
from obscale_bayes.spec.spec import ModelSpec, load_spec


@pytest.fixture(scope="module")
def spec() -> ModelSpec:
    return load_spec("benchmark_slopes")


@pytest.fixture(scope="module")
def sim(spec):
    """A table simulated with benchmark slopes on the shipped layout, and its truth."""
    return simulate(load_shipped(), spec, seed=3)


def _truth_fit(data, truth, spec, **changes):
    return testing.truth_fit(data, truth.assign(**changes), spec, variables=list(truth.data_vars))


def _slope_on(truth, bench: str, value: float):
    c = truth["benchmark_slope"] * 0.0
    c.loc[{"benchmark": bench}] = value
    return c


@pytest.mark.parametrize("bad", [1, "yes", None])
def test_the_spec_key_is_validated(bad):
    with pytest.raises(SpecError, match="structure.benchmark_slopes must be true or false"):
        load_spec("default").with_overrides(benchmark_slopes=bad)


def test_a_fit_file_written_before_the_key_has_no_slopes():
    d = json.loads(load_spec("default").to_json())
    del d["structure"]["benchmark_slopes"]
    assert ModelSpec.from_json(json.dumps(d)).structure["benchmark_slopes"] is False


def test_without_the_option_nothing_changes(subset):
    fit = testing.prior_fit(subset, "default", draws=20, chains=2, seed=0)
    pa = fit.posterior
    post = fit.idata["posterior"]
    assert "benchmark_slope" not in post and "compute_axis" not in post
    assert pa.benchmark_slope is None
    off = pa.offset_of("Llama-2", np.random.default_rng(0))
    assert pa.offset_at(off, 2.0) is off and pa.offset_at(None, 2.0) is None
    _, truth = simulate(load_shipped(), "default", seed=7)
    assert "benchmark_slope" not in truth


def test_the_graph_has_the_slopes_and_every_models_compute_axis(subset, spec):
    fit = testing.prior_fit(subset, spec, draws=20, chains=2, seed=0)
    post = fit.idata["posterior"].dataset
    c = post["benchmark_slope"]
    assert (c.sel(benchmark=spec.anchors) == 0).all() and float(np.abs(c).max()) > 0
    x = post["compute_axis"]
    known = fit.inputs.x
    ok = np.isfinite(known)
    full = np.broadcast_to(known[ok], x.shape[:2] + (ok.sum(),))
    np.testing.assert_allclose(x.values[..., ok], full)
    if (~ok).any():
        assert float(x.values[..., ~ok].std()) > 0  # latent where FLOPs are unknown


def test_a_slope_moves_its_benchmark_by_c_times_x_and_nothing_else(sim, spec):
    """At x = 0 (FLOPs 10^(21 + x0)) a slope changes nothing; two decades up it moves its own
    benchmark's logit by 2 c, the other benchmarks not at all (same seed, same draws)."""
    data, truth = sim
    up = _truth_fit(data, truth, spec, benchmark_slope=_slope_on(truth, "arc_c", 0.5))
    flat = _truth_fit(data, truth, spec, benchmark_slope=_slope_on(truth, "arc_c", 0.0))
    x0 = spec.structure["x0"]
    target = [("Llama-2", 10 ** (21 + x0)), ("Llama-2", 10 ** (23 + x0))]
    med = {
        k: forecast_compute(f, target, seed=0).capability for k, f in (("up", up), ("flat", flat))
    }
    xr_ = {k: forecast_compute(f, target, seed=0).table.set_index(["model", "benchmark"])["median"]
           for k, f in (("up", up), ("flat", flat))}  # fmt: skip
    np.testing.assert_array_equal(med["up"].values, med["flat"].values)  # same capabilities
    diff = (xr_["up"] - xr_["flat"]).unstack("benchmark")
    at0, at2 = diff.index
    np.testing.assert_allclose(diff.loc[at0].to_numpy(), 0.0, atol=1e-12)
    others = [b for b in diff.columns if b != "arc_c"]
    np.testing.assert_allclose(diff.loc[at2, others].to_numpy(), 0.0, atol=1e-12)
    assert diff.loc[at2, "arc_c"] > 0.05


def test_fill_in_adds_the_shift_at_known_flops_and_widens_at_unknown(sim, spec):
    """Given a model's other scores, its blank ARC-C follows the ARC-C slope at its FLOPs; with
    its FLOPs unknown, a steep slope widens the blank cell's band (x's prior sd times c)."""
    data, truth = sim
    row = data.models[data.models["flops_1e21"] > 300].iloc[[0]]  # x well above 0
    model = row["model"].iloc[0]
    given = data.scores[(data.scores["model"] == model) & (data.scores["benchmark"] != "arc_c")]
    new = BenchmarkData(row.assign(model="probe"), given.assign(model="probe"), data.benchmarks,
                        source="probe")  # fmt: skip
    blind = BenchmarkData(row.assign(model="probe", flops_1e21=np.nan, params_b=np.nan),
                          given.assign(model="probe"), data.benchmarks, source="probe")  # fmt: skip
    med, width = {}, {}
    for v in (0.0, 0.6):
        fit = _truth_fit(data, truth, spec, benchmark_slope=_slope_on(truth, "arc_c", v))
        med[v] = forecast_from_scores(fit, new, seed=0).table.set_index("benchmark")
        t = forecast_from_scores(fit, blind, seed=0).table.set_index("benchmark")
        width[v] = float(t.loc["arc_c", "upper"] - t.loc["arc_c", "lower"])
    assert med[0.6].loc["arc_c", "median"] - med[0.0].loc["arc_c", "median"] > 0.03
    assert width[0.6] > 1.3 * width[0.0]


def _hand_pa():
    """The interventions' hand-made posterior with a slope on the treated variant only."""
    from tests.forecast.test_interventions import _pa

    pa = _pa(s=200)
    c = np.zeros_like(pa.intercept)
    c[:, 2] = 0.4
    return replace(pa, benchmark_slope=c)


def test_effect_vs_compute_adds_the_treated_variants_slope():
    pa = _hand_pa()
    flops = np.array([1e21, 1e25])
    t = effect_vs_compute(pa, ("treated", "control"), "A", flops, residual=False)
    x = np.log10(flops) - 21 - pa.x0
    theta = pa.efficiency[:, 0, None, :] + pa.slope[:, 0, None, :] * x[None, :, None]
    eta = pa.intercept[:, None, :] + np.einsum("snk,sjk->snj", theta, pa.loading)
    eta = eta + pa.benchmark_slope[:, None, :] * x[None, :, None]
    p = floored_sigmoid_np(eta, pa.floor[:, None, :])
    np.testing.assert_allclose(t["median"], np.median(p[..., 2] - p[..., 3], axis=0))


def test_effect_vs_capability_needs_the_fit_for_the_compute_axis():
    pa = _hand_pa()
    cap = np.random.default_rng(0).normal(size=(pa.n_samples, 20, 2))
    with pytest.raises(UsageError, match="benchmark slopes; give the fit"):
        effect_vs_capability(None, ("treated", "control"), [0.6], capability=cap, pa=pa)


def test_simulate_keeps_the_anchors_without_slope(sim, spec):
    data, truth = sim
    c = truth["benchmark_slope"].copy()
    c.loc[{"benchmark": "mmlu"}] = 0.3
    with pytest.raises(UsageError, match="must be 0 on the anchors"):
        simulate(load_shipped(), spec, seed=1, params={"benchmark_slope": c})
    assert (truth["benchmark_slope"].sel(benchmark=spec.anchors) == 0).all()
    assert float(np.abs(truth["benchmark_slope"]).max()) > 0


@pytest.mark.slow
def test_nuts_recovers_benchmark_slopes(spec):
    """Simulated with slopes of +-0.5 (logit per decade) on the free benchmarks, the posterior
    means track the true ones and their 90% intervals cover most of them."""
    template = testing.shipped_subset()
    free = [b for b in template.benchmarks["benchmark"] if b not in spec.anchors]
    _, truth0 = simulate(template, spec, seed=5)
    c = truth0["benchmark_slope"] * 0.0
    for i, b in enumerate(free):
        c.loc[{"benchmark": b}] = 0.5 if i % 2 == 0 else -0.5
    data, truth = simulate(template, spec, seed=5, params={"benchmark_slope": c})
    fit = testing.small_fit(data, spec, draws=300, tune=400, chains=2, seed=2)
    est = fit.idata["posterior"].dataset["benchmark_slope"].sel(benchmark=free)
    est = est.stack(s=("chain", "draw"))
    tru = truth["benchmark_slope"].sel(benchmark=free).values
    mean = est.mean("s").values
    lo, hi = est.quantile(0.05, "s").values, est.quantile(0.95, "s").values
    assert np.corrcoef(mean, tru)[0, 1] > 0.7
    assert ((lo <= tru) & (tru <= hi)).mean() >= 0.6
