"""The test helpers of :mod:`obscale_bayes.testing` do what they say."""

from __future__ import annotations

import numpy as np
import pytest

from obscale_bayes import CapabilityModel, forecast_compute, testing


def test_truth_fit_posterior_is_the_truth_in_every_draw(k1_truth_fit):
    post = k1_truth_fit.idata["posterior"].dataset
    assert post.sizes["chain"] == 1 and post.sizes["draw"] == 40
    cap = post["capability"].to_numpy()
    np.testing.assert_array_equal(cap[0, 0], cap[0, -1])
    data, truth = testing.synthetic_table("k1", 3)
    np.testing.assert_array_equal(cap[0, 0], truth["capability"].to_numpy())
    assert k1_truth_fit.data.fingerprint() == data.fingerprint()


def test_mock_fit_is_a_complete_fit(mock_fit, tmp_path):
    post = mock_fit.idata["posterior"].dataset
    assert (post.sizes["chain"], post.sizes["draw"]) == (2, 50)
    assert {"efficiency", "slope", "loading", "residual_sd"} <= set(post.data_vars)
    assert mock_fit.diagnostics.divergences == 0
    again = CapabilityModel.load(mock_fit.save(tmp_path / "mock.nc"))
    a = forecast_compute(mock_fit, ("Llama-2", 1e24), seed=1).table
    b = forecast_compute(again, ("Llama-2", 1e24), seed=1).table
    np.testing.assert_allclose(a["median"].to_numpy(), b["median"].to_numpy(), rtol=1e-12)


def test_prior_fit_draws_differ_across_chains_and_seeds(subset):
    a = testing.prior_fit(subset, "k1", draws=5, chains=2, seed=0)
    b = testing.prior_fit(subset, "k1", draws=5, chains=2, seed=1)
    la = a.idata["posterior"].dataset["efficiency_mean"].to_numpy()
    assert not np.allclose(la[0], la[1])
    assert not np.allclose(la, b.idata["posterior"].dataset["efficiency_mean"].to_numpy())


def test_hold_out_scores_splits_one_model(shipped):
    model = "meta-llama/Llama-2-13b-hf"
    train, new = testing.hold_out_scores(shipped, model, ["mmlu", "gsm8k"])
    assert model not in set(train.models["model"])
    assert list(new.models["model"]) == [model]
    assert set(new.scores["benchmark"]) == {"mmlu", "gsm8k"}
    assert len(train.scores) + len(shipped.scores[shipped.scores["model"] == model]) == len(
        shipped.scores
    )


def test_uncensored_cells_excludes_exact_bounds(k1_truth_fit):
    y = k1_truth_fit.idata["observed_data"].dataset["score"].to_numpy()
    m = testing.uncensored_cells(k1_truth_fit)
    assert m.any() and not m.all() or ((y > 0) & (y < 1)).all()
    assert np.all((y[m] > 0) & (y[m] < 1)) and np.all((y[~m] <= 0) | (y[~m] >= 1))


@pytest.mark.parametrize("families", [("Pythia",), ("Pythia", "OPT")])
def test_shipped_subset_keeps_only_those_families(families):
    d = testing.shipped_subset(families)
    assert set(d.models["family"]) == set(families)
