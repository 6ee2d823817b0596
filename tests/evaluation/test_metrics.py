"""Metrics: CRPS closed form, coverage, LPD, point scores and pooling."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

from obscale_bayes.errors import UsageError
from obscale_bayes.evaluation.metrics import (
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


def test_overconfident_forecaster_undercovers_by_the_known_amount():
    # draws with sd 0.5 around the true mean of a N(mu, 1) truth: a central interval of level L
    # covers with probability 2 Phi(0.5 z_L) - 1
    rng = np.random.default_rng(5)
    n_cells = 2500
    mu = rng.normal(size=n_cells)
    draws = mu + 0.5 * rng.normal(size=(500, n_cells))
    y = mu + rng.normal(size=n_cells)
    summ = summarize(score_draws(y, draws)).iloc[0]
    for level in (50, 80, 90, 95):
        z = norm.ppf(0.5 + level / 200)
        assert summ[f"coverage{level}"] == pytest.approx(2 * norm.cdf(0.5 * z) - 1, abs=0.03)
    assert summ["width90"] == pytest.approx(2 * 0.5 * norm.ppf(0.95), rel=0.03)
    # and its CRPS is worse than the calibrated forecaster's
    calibrated = summarize(score_draws(y, mu + rng.normal(size=(500, n_cells)))).iloc[0]
    assert calibrated["crps"] < summ["crps"]
    # the expected squared error of the mean is the truth's variance, 1
    assert summ["mse"] == pytest.approx(1.0, rel=0.08)
    assert summ["mae"] == pytest.approx(np.sqrt(2 / np.pi), rel=0.06)


def test_point_mass_crps_is_absolute_error_and_intervals_are_inclusive():
    d = np.full((10, 3), 0.3)
    y = np.array([0.3, 0.5, 0.0])
    np.testing.assert_allclose(crps_from_draws(d, y), np.abs(0.3 - y), atol=1e-12)
    t = score_draws(y, d)
    assert t["covered90"].tolist() == [1.0, 0.0, 0.0]  # lower <= y <= upper at a point mass
    assert (t["width50"] == 0).all()


def test_nan_cells_are_kept_but_not_pooled():
    rng = np.random.default_rng(6)
    d = rng.normal(size=(200, 3))
    d[:, 1] = np.nan
    t = score_draws(pd.Series([0.0, 1.0, np.nan], index=list("abc")), d)
    assert t.loc["b"].drop("y").isna().all() and t.loc["c"].drop("y").isna().all()
    s = summarize(t).iloc[0]
    assert s["n"] == 1 and s["mse"] == pytest.approx(t.loc["a", "se"])
    assert s["coverage90"] == t.loc["a", "covered90"]


def test_median_errors_differ_from_mean_errors_for_skewed_draws():
    rng = np.random.default_rng(7)
    d = rng.exponential(1.0, size=(100_000, 1))
    t = score_draws([0.0], d).iloc[0]
    assert t["mean"] == pytest.approx(1.0, rel=0.02)
    assert t["median"] == pytest.approx(np.log(2), rel=0.02)
    assert t["se"] == pytest.approx(1.0, rel=0.04) and t["ae_median"] == pytest.approx(
        np.log(2), rel=0.02
    )
    # CRPS of Exp(1) at 0: E|X| - E|X - X'| / 2 = 1 - 1/2
    assert t["crps"] == pytest.approx(0.5, rel=0.02)
    # Exp(1) central 90% interval: [-ln 0.95, -ln 0.05]
    assert t["lower90"] == pytest.approx(-np.log(0.95), rel=0.03)
    assert t["upper90"] == pytest.approx(-np.log(0.05), rel=0.03)
