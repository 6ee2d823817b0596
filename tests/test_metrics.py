"""Metrics: CRPS closed form, coverage, LPD, point scores and pooling."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

from obscale_bayes.errors import UsageError
from obscale_bayes.metrics import (
    crps_from_draws,
    lpd_from_draws,
    score_draws,
    score_points,
    summarize,
)


def _crps_normal(mu, sigma, y):
    z = (y - mu) / sigma
    return sigma * (z * (2 * norm.cdf(z) - 1) + 2 * norm.pdf(z) - 1 / np.sqrt(np.pi))


def test_crps_matches_normal_closed_form():
    rng = np.random.default_rng(0)
    draws = rng.normal(size=(20000, 3))
    y = np.array([0.0, 1.0, -2.5])
    got = crps_from_draws(draws, y)
    assert got[0] == pytest.approx((np.sqrt(2) - 1) / np.sqrt(np.pi), abs=0.01)
    np.testing.assert_allclose(got, _crps_normal(0.0, 1.0, y), atol=0.015)


def test_crps_sorting_form_equals_pairwise_definition():
    rng = np.random.default_rng(1)
    d = rng.gamma(2.0, size=(50, 4))
    y = rng.normal(size=4)
    n = d.shape[0]
    pair = np.abs(d[:, None, :] - d[None, :, :]).sum(axis=(0, 1)) / (n * (n - 1))
    brute = np.abs(d - y).mean(axis=0) - 0.5 * pair
    np.testing.assert_allclose(crps_from_draws(d, y), brute, rtol=1e-12)


def test_coverage_of_true_distribution_is_nominal():
    rng = np.random.default_rng(2)
    n_cells = 4000
    mu = rng.normal(size=n_cells)
    draws = mu + rng.normal(size=(1000, n_cells))
    y = mu + rng.normal(size=n_cells)
    summ = summarize(score_draws(y, draws))
    for level in (50, 80, 90, 95):
        assert summ[f"coverage{level}"].iloc[0] == pytest.approx(level / 100, abs=0.025)
    assert summ["width90"].iloc[0] == pytest.approx(2 * norm.ppf(0.95), rel=0.03)
    assert summ["n"].iloc[0] == n_cells


def test_lpd_estimates_and_exact_density():
    rng = np.random.default_rng(3)
    draws = rng.normal(0.5, 2.0, size=(20000, 3))
    y = np.array([0.5, 1.5, -3.0])
    exact = norm.logpdf(y, 0.5, 2.0)
    np.testing.assert_allclose(lpd_from_draws(draws, y, "gaussian"), exact, atol=0.05)
    np.testing.assert_allclose(lpd_from_draws(draws, y, "kde"), exact, atol=0.08)
    table = score_draws(y, draws, log_density=lambda v: norm.logpdf(v, 0.5, 2.0))
    np.testing.assert_allclose(table["lpd"], exact)


def test_score_points_and_summary_columns():
    y = pd.Series([0.1, 0.5, 0.9], index=["a", "b", "c"])
    table = score_points(y, [0.2, 0.5, np.nan])
    assert list(table.index) == ["a", "b", "c"]
    summ = summarize(table)
    assert list(summ.columns[:10]) == ["mse", "mae", "crps", "lpd", "coverage50", "coverage80",
                                       "coverage90", "coverage95", "width90", "n"]  # fmt: skip
    assert summ["n"].iloc[0] == 2
    assert summ["mse"].iloc[0] == pytest.approx(0.01 / 2)
    assert summ["mae"].iloc[0] == pytest.approx(0.05)
    assert summ[["crps", "lpd", "coverage90", "width90"]].isna().all(axis=None)


def test_draw_scores_mean_and_median_errors():
    draws = np.array([[0.0, 1.0], [1.0, 1.0], [5.0, 1.0]])
    table = score_draws([1.0, 1.0], draws)
    assert table["mean"].tolist() == [2.0, 1.0]
    assert table["median"].tolist() == [1.0, 1.0]
    assert table["se"].iloc[0] == 1.0 and table["se_median"].iloc[0] == 0.0


def test_bad_shapes_raise():
    with pytest.raises(UsageError):
        score_points([0.1, 0.2], [0.1])
    with pytest.raises(UsageError):
        score_draws([0.1, 0.2], np.zeros((10, 3)))
    with pytest.raises(UsageError):
        score_draws([0.1], np.zeros((10, 1)), levels=(120,))
