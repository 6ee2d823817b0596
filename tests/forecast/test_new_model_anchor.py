"""The anchors' misfit of new models (spec ``new_model_anchor_misfit``): where it acts, where not."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from obscale_bayes import testing
from obscale_bayes.data.tables import BenchmarkData
from obscale_bayes.errors import SpecError
from obscale_bayes.fit.fitted import CapabilityModel
from obscale_bayes.forecast.compute import forecast_compute
from obscale_bayes.forecast.conditional import forecast_from_scores
from obscale_bayes.spec.spec import load_spec


def _with(fit: CapabilityModel, value: float | None) -> CapabilityModel:
    spec = fit.spec.with_overrides(new_model_anchor_misfit=value)
    return CapabilityModel(spec, fit.data, fit.idata, fit.diagnostics, fit.meta)


@pytest.mark.parametrize("bad", [-0.01, 0.5, True, "0.1"])
def test_the_spec_key_is_validated(bad):
    with pytest.raises(SpecError, match="new_model_anchor_misfit"):
        load_spec("family_slopes").with_overrides(new_model_anchor_misfit=bad)


def test_left_out_it_is_the_fits_own_anchor_misfit(mock_fit):
    fit = _with(mock_fit, None)
    assert fit.new_model_posterior is fit.posterior
    st = fit.spec.structure
    same = _with(mock_fit, st["anchor_misfit"]).new_model_posterior
    np.testing.assert_array_equal(same.misfit, fit.posterior.misfit)


def test_only_the_anchor_columns_change(mock_fit):
    fit = _with(mock_fit, 0.1)
    pa, new = fit.posterior, fit.new_model_posterior
    anchors = [pa.benchmark_ids.index(a) for a in fit.spec.anchors]
    others = [j for j in range(len(pa.benchmark_ids)) if j not in anchors]
    assert np.all(new.misfit[:, anchors] == 0.1)
    np.testing.assert_array_equal(new.misfit[:, others], pa.misfit[:, others])
    assert np.all(pa.misfit[:, anchors] == fit.spec.structure["anchor_misfit"])  # not mutated


@pytest.fixture(scope="module")
def truth_fit():
    """Default-spec data simulated on the shipped layout, posterior = every truth parameter."""
    data, truth = testing.synthetic_table("default", 3)
    return testing.truth_fit(data, truth, "default", variables=list(truth.data_vars))


def test_compute_forecast_widens_the_anchors_only(truth_fit):
    a, b = _with(truth_fit, None), _with(truth_fit, 0.1)
    target = [("NewFamily", 8.4e24)]
    fa, fb = forecast_compute(a, target, seed=3), forecast_compute(b, target, seed=3)
    anchors = list(a.spec.anchors)
    other = [x for x in fa.draws["benchmark"].values if x not in anchors]
    np.testing.assert_array_equal(fa.draws.sel(benchmark=other), fb.draws.sel(benchmark=other))
    sa = fa.draws.sel(benchmark=anchors).std("sample")
    sb = fb.draws.sel(benchmark=anchors).std("sample")
    assert bool((sb > sa).all())


def test_a_noisier_given_anchor_informs_the_blanks_less(mock_fit):
    """Given only MMLU, the blanks' bands are wider when the anchor is noisier for new models;
    with the fit's own value the forecast is the one without the key."""
    m = mock_fit.data.models.iloc[[0, 3]].copy()
    s = mock_fit.data.scores
    s = s[s["model"].isin(m["model"]) & (s["benchmark"] == "mmlu")]
    new = BenchmarkData(m, s, mock_fit.data.benchmarks, source="new.csv")
    base = forecast_from_scores(_with(mock_fit, None), new, seed=1).table
    same = forecast_from_scores(_with(mock_fit, 0.015), new, seed=1).table
    pd.testing.assert_frame_equal(base, same)
    loose = forecast_from_scores(_with(mock_fit, 0.15), new, seed=1).table
    blank = base["benchmark"] != "mmlu"
    assert (loose.loc[blank, "upper"] - loose.loc[blank, "lower"]).mean() > (
        base.loc[blank, "upper"] - base.loc[blank, "lower"]
    ).mean()
