"""The anchors' misfit of new models (spec ``new_model_anchor_misfit``): where it acts, where not."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from obscale_bayes import testing
from obscale_bayes.data.tables import BenchmarkData
from obscale_bayes.errors import SpecError
from obscale_bayes.fit.fitted import CapabilityModel
from obscale_bayes.forecast.compute import forecast_compute
from obscale_bayes.forecast.conditional import forecast_from_scores
from obscale_bayes.spec.spec import ModelSpec, load_spec


def _with(fit: CapabilityModel, value: float | None) -> CapabilityModel:
    # compute forecasts follow new_model_anchor_misfit here (their own key left out)
    spec = fit.spec.with_overrides(new_model_anchor_misfit=value, compute_anchor_misfit=None)
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


# --- compute_anchor_misfit: the anchors' noise of compute-only forecasts alone


def _with_compute(fit: CapabilityModel, value: float | None, new: float | None = 0.08):
    spec = fit.spec.with_overrides(new_model_anchor_misfit=new, compute_anchor_misfit=value)
    return CapabilityModel(spec, fit.data, fit.idata, fit.diagnostics, fit.meta)


@pytest.mark.parametrize("bad", [-0.01, 0.5, True, "0.1"])
def test_the_compute_key_is_validated(bad):
    with pytest.raises(SpecError, match="compute_anchor_misfit"):
        load_spec("default").with_overrides(compute_anchor_misfit=bad)


def test_compute_key_left_out_is_the_new_models_value(truth_fit):
    fit = _with_compute(truth_fit, None)
    assert fit.compute_posterior is fit.new_model_posterior
    target = [("NewFamily", 8.4e24), (truth_fit.family_ids[0], 3e23)]
    same = _with_compute(truth_fit, 0.08)  # the same value given explicitly
    np.testing.assert_array_equal(
        forecast_compute(fit, target, seed=2).draws, forecast_compute(same, target, seed=2).draws
    )


def test_compute_key_sets_the_compute_anchors_only(truth_fit):
    loose, tight = _with_compute(truth_fit, None), _with_compute(truth_fit, 0.015)
    target = [("NewFamily", 8.4e24)]
    fl, ft = forecast_compute(loose, target, seed=3), forecast_compute(tight, target, seed=3)
    anchors = list(loose.spec.anchors)
    other = [x for x in fl.draws["benchmark"].values if x not in anchors]
    np.testing.assert_array_equal(fl.draws.sel(benchmark=other), ft.draws.sel(benchmark=other))
    sl = fl.draws.sel(benchmark=anchors).std("sample")
    st = ft.draws.sel(benchmark=anchors).std("sample")
    assert bool((st < sl).all())
    assert np.all(tight.compute_posterior.misfit[:, [tight.benchmark_ids.index(a)
                                                     for a in anchors]] == 0.015)  # fmt: skip


def test_compute_key_leaves_fill_in_alone(mock_fit):
    m = mock_fit.data.models.iloc[[0, 3]].copy()
    s = mock_fit.data.scores
    s = s[s["model"].isin(m["model"]) & (s["benchmark"] == "mmlu")]
    new = BenchmarkData(m, s, mock_fit.data.benchmarks, source="new.csv")
    a = forecast_from_scores(_with_compute(mock_fit, None), new, seed=1).table
    b = forecast_from_scores(_with_compute(mock_fit, 0.015), new, seed=1).table
    pd.testing.assert_frame_equal(a, b)


def test_a_fit_file_without_the_compute_key_forecasts_as_before():
    d = json.loads(load_spec("default").to_json())
    del d["structure"]["compute_anchor_misfit"]
    old = ModelSpec.from_json(json.dumps(d))
    assert old.structure["compute_anchor_misfit"] is None  # compute forecasts: 0.08, as then
    assert load_spec("default").structure["compute_anchor_misfit"] == 0.015
