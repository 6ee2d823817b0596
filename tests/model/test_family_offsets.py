"""Family-by-benchmark offsets (``structure.family_offsets``, on in the default; the
``no_offsets`` variant has none): the spec key, the draws every forecast uses for seen and unseen families, their effect on compute-only and
fill-in forecasts, simulation, and recovery by NUTS."""

from __future__ import annotations

import json

import numpy as np
import pytest

from obscale_bayes import testing
from obscale_bayes.data.tables import BenchmarkData, load_shipped
from obscale_bayes.errors import SpecError
from obscale_bayes.forecast.compute import forecast_compute
from obscale_bayes.forecast.conditional import forecast_from_scores
from obscale_bayes.model.simulate import simulate
from obscale_bayes.spec.spec import ModelSpec, load_spec


@pytest.fixture(scope="module")
def spec() -> ModelSpec:
    return load_spec("default")


@pytest.fixture(scope="module")
def sim(spec):
    """A table simulated with offsets on the shipped layout, and its truth."""
    return simulate(load_shipped(), spec, seed=3)


def _truth_fit(data, truth, spec, **changes):
    return testing.truth_fit(data, truth.assign(**changes), spec, variables=list(truth.data_vars))


@pytest.mark.parametrize("bad", [1, "yes", None])
def test_the_spec_key_is_validated(bad):
    with pytest.raises(SpecError, match="structure.family_offsets must be true or false"):
        load_spec("default").with_overrides(family_offsets=bad)


def test_a_fit_file_written_before_the_key_has_no_offsets():
    d = json.loads(load_spec("default").to_json())
    del d["structure"]["family_offsets"]
    assert ModelSpec.from_json(json.dumps(d)).structure["family_offsets"] is False


def test_without_the_option_nothing_changes(subset):
    fit = testing.prior_fit(subset, "no_offsets", draws=20, chains=2, seed=0)
    pa = fit.posterior
    assert "family_offset" not in fit.idata["posterior"]
    assert pa.family_offset is None
    rng = np.random.default_rng(0)
    assert pa.offset_of("Llama-2", rng) is None and pa.offsets_of(["x", "y"], rng) is None
    assert rng.random() == np.random.default_rng(0).random()  # no random numbers used
    _, truth = simulate(load_shipped(), "no_offsets", seed=7)
    assert "family_offset" not in truth and "family_offset_sd" not in truth


def test_offsets_are_zero_on_the_anchors_and_drawn_for_unseen_families(sim, spec):
    data, truth = sim
    fit = _truth_fit(data, truth, spec)
    pa = fit.posterior
    anchors = [pa.benchmark_ids.index(a) for a in spec.anchors]
    assert np.all(pa.family_offset[:, :, anchors] == 0)
    assert np.all(pa.family_offset_sd[:, anchors] == 0)
    seen = pa.family_ids[4]
    np.testing.assert_array_equal(
        pa.offset_of(seen, np.random.default_rng(0)), pa.family_offset[:, 4]
    )
    # an unseen family: N(0, family_offset_sd) per draw; one draw shared by its models
    draws = pa.offsets_of(["NewFam"] * 3 + [None], np.random.default_rng(1))
    assert draws.shape == (pa.n_samples, 4, len(pa.benchmark_ids))
    np.testing.assert_array_equal(draws[:, 0], draws[:, 2])
    assert not np.allclose(draws[:, 0], draws[:, 3])  # no family: a draw of its own
    many = np.concatenate([pa.offset_of("NewFam", np.random.default_rng(s)) for s in range(50)])
    free = [j for j in range(len(pa.benchmark_ids)) if j not in anchors]
    sd_true = truth["family_offset_sd"].values
    np.testing.assert_allclose(many[:, free].std(axis=0), sd_true, rtol=0.08)


def test_a_family_lead_on_a_benchmark_moves_its_forecasts_there_only(sim, spec):
    data, truth = sim
    fam = "Llama-2"
    none = truth["family_offset"] * 0.0
    lead = none.copy()
    lead.loc[{"family": fam, "benchmark": "arc_c"}] = 1.0
    up = _truth_fit(data, truth, spec, family_offset=lead)
    flat = _truth_fit(data, truth, spec, family_offset=none)
    target = [(fam, 8e23), ("Pythia", 8e23)]
    fu = forecast_compute(up, target, seed=0).table.set_index(["model", "benchmark"])["median"]
    ff = forecast_compute(flat, target, seed=0).table.set_index(["model", "benchmark"])["median"]
    diff = (fu - ff).unstack("benchmark")
    first, second = diff.index  # the targets' names, in order
    assert diff.loc[first, "arc_c"] > 0.05
    others = [b for b in diff.columns if b != "arc_c"]
    assert np.abs(diff.loc[first, others]).max() < 0.02  # the family's other benchmarks
    assert np.abs(diff.loc[second]).max() < 0.02  # other families


def test_fill_in_uses_the_familys_offset(sim, spec):
    """Given a model's other scores, its blank ARC-C follows its family's ARC-C offset."""
    data, truth = sim
    fam = "Llama-2"
    model = data.models.loc[data.models["family"] == fam, "model"].iloc[0]
    given = data.scores[(data.scores["model"] == model) & (data.scores["benchmark"] != "arc_c")]
    new = BenchmarkData(data.models[data.models["model"] == model].assign(model="probe"),
                        given.assign(model="probe"), data.benchmarks, source="probe")  # fmt: skip
    out = {}
    for v in (-0.5, 0.5):
        off = truth["family_offset"].copy()
        off.loc[{"family": fam, "benchmark": "arc_c"}] = v
        fc = forecast_from_scores(_truth_fit(data, truth, spec, family_offset=off), new, seed=0)
        out[v] = fc.table.set_index("benchmark").loc["arc_c", "median"]
    assert out[0.5] - out[-0.5] > 0.05


@pytest.mark.slow
def test_nuts_recovers_family_offsets():
    """Simulated with offsets of sd 0.5 (logit), the posterior means of the offsets track the
    true ones and their 90% intervals cover them.  With the chance floors from metadata: with
    the default's fitted floors this small fit (2 x 300 draws, a subset of the table) covers
    only 0.72 of the offsets (measured 2026-12-08; the floors and offsets trade off there)."""
    spec = load_spec("metadata_floors")
    template = testing.shipped_subset()
    sd = np.full(len(template.benchmarks) - 3, 0.5)
    data, truth = simulate(template, spec, seed=5, params={"family_offset_sd": sd})
    fit = testing.small_fit(data, spec, draws=300, tune=400, chains=2, seed=2)
    post = fit.idata["posterior"].dataset["family_offset"]
    free = [b for b in post["benchmark"].values if b not in spec.anchors]
    est = post.sel(benchmark=free).stack(s=("chain", "draw"))
    tru = truth["family_offset"].sel(benchmark=free, family=est["family"].values).values
    mean = est.mean("s").values
    lo, hi = est.quantile(0.05, "s").values, est.quantile(0.95, "s").values
    assert np.corrcoef(mean.ravel(), tru.ravel())[0, 1] > 0.5
    assert ((lo <= tru) & (tru <= hi)).mean() >= 0.8


def test_an_unseen_familys_offsets_loosen_what_its_scores_say(sim, spec):
    """For a family the fit has not seen, the offsets of the observed cells are marginalised
    (extra logit misfit of their prior sd): the larger that sd, the wider the capabilities
    given the same scores; blank cells get fresh prior draws of the offsets."""
    data, truth = sim
    model = data.models["model"].iloc[10]
    given = data.scores[(data.scores["model"] == model) & (data.scores["benchmark"] != "arc_c")]
    row = data.models[data.models["model"] == model].assign(model="probe", family="NewFam")
    new = BenchmarkData(row, given.assign(model="probe"), data.benchmarks, source="probe")
    width = {}
    for sd in (0.01, 1.5):
        fit = _truth_fit(data, truth, spec, family_offset_sd=truth["family_offset_sd"] * 0 + sd)
        fc = forecast_from_scores(fit, new, seed=0)
        width[sd] = float(fc.capability.std("sample").mean())
        t = fc.table.set_index("benchmark")
        width[("arc_c", sd)] = float(t.loc["arc_c", "upper"] - t.loc["arc_c", "lower"])
    assert width[1.5] > 1.5 * width[0.01]
    assert width[("arc_c", 1.5)] > 2 * width[("arc_c", 0.01)]
