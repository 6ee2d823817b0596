"""The release-date trend of family efficiency (``structure.release_trend``, spec ``release``):
inputs, the unseen-family centre every forecast uses, simulation, and recovery by NUTS."""

from __future__ import annotations

import numpy as np
import pytest

from obscale_bayes import testing
from obscale_bayes.data.tables import BenchmarkData, load_shipped
from obscale_bayes.errors import DataError
from obscale_bayes.forecast.compute import forecast_compute
from obscale_bayes.model.inputs import prepare_inputs
from obscale_bayes.model.simulate import simulate
from obscale_bayes.spec.spec import load_spec


@pytest.fixture(scope="module")
def spec():
    return load_spec("release")


def test_family_years_are_median_dates_since_the_reference(spec):
    data = load_shipped()
    inp = prepare_inputs(data, spec)
    fy = dict(zip(inp.family_ids, inp.family_year, strict=True))
    # Llama-2: every model released 2023-07-18 -> 2023 + 198/365.25 - 2023
    assert fy["Llama-2"] == pytest.approx(198 / 365.25, abs=1e-9)
    assert np.isnan(fy["Pythia"])  # no dated model: latent
    assert inp.new_family_year == pytest.approx(np.nanmax(inp.family_year))
    dated = inp.family_year[np.isfinite(inp.family_year)]
    assert inp.year_prior[0] == pytest.approx(dated.mean())
    assert len(inp.undated_families) == np.isnan(inp.family_year).sum() > 0
    # without the option nothing of this is computed
    assert prepare_inputs(data, load_spec("default")).family_year is None


def test_too_few_dated_families_is_a_clear_error(spec):
    data = load_shipped()
    models = data.models.assign(release_date=np.nan)
    bare = BenchmarkData(models, data.scores, data.benchmarks, source="undated.csv")
    with pytest.raises(DataError, match="undated.csv: structure.release_trend needs release "
                       "dates for at least 3 families, the table has 0"):  # fmt: skip
        prepare_inputs(bare, spec)


def test_an_unseen_family_is_forecast_at_the_newest_release(spec):
    data, truth = simulate(load_shipped(), spec, seed=2)
    assert "efficiency_trend" in truth and "release_latent" in truth
    fit = testing.truth_fit(data, truth, spec, variables=list(truth.data_vars))
    pa = fit.posterior
    t_new = fit.inputs.new_family_year
    want = truth["efficiency_mean"].values + truth["efficiency_trend"].values * t_new
    np.testing.assert_allclose(pa.new_family_efficiency_mean, np.tile(want, (pa.n_samples, 1)))
    # a family's efficiencies in the truth follow the trend: regress them on the years
    inp = fit.inputs
    t = np.nan_to_num(inp.family_year, nan=0.0)
    t[inp.undated_families] = truth["release_latent"].values
    a = truth["efficiency"].sel(factor="mmlu").values
    slope = np.polyfit(t, a, 1)[0]
    assert slope == pytest.approx(float(truth["efficiency_trend"].sel(factor="mmlu")), abs=0.5)
    # and the forecast of a new family moves with the trend: a later newest release, higher MMLU
    later = testing.truth_fit(data, truth.assign(efficiency_trend=truth["efficiency_trend"] + 1.0),
                              spec, variables=list(truth.data_vars))  # fmt: skip
    f0 = forecast_compute(fit, ("NewFam", 1e23), seed=0).table.set_index("benchmark")
    f1 = forecast_compute(later, ("NewFam", 1e23), seed=0).table.set_index("benchmark")
    if t_new > 0:
        assert f1.loc["mmlu", "median"] > f0.loc["mmlu", "median"]


def test_default_simulation_is_unchanged_by_the_option():
    a, _ = simulate(load_shipped(), "default", seed=7)
    b, _ = simulate(
        load_shipped(), load_spec("default").with_overrides(release_trend=False), seed=7
    )
    assert a.fingerprint() == b.fingerprint()


@pytest.mark.slow
def test_nuts_recovers_a_release_trend(spec):
    """Simulated with the realistic trend (MMLU +0.8 per year), the release spec's posterior of
    the MMLU trend covers it and excludes 0."""
    data, truth = simulate(load_shipped(), spec, seed=4)
    fit = testing.small_fit(data, spec, draws=400, tune=400, chains=2, seed=1)
    g = fit.idata["posterior"].dataset["efficiency_trend"].sel(factor="mmlu").values.ravel()
    lo, hi = np.quantile(g, [0.05, 0.95])
    assert lo <= float(truth["efficiency_trend"].sel(factor="mmlu")) <= hi
    assert lo > 0
