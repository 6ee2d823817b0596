"""The downstream module's coordinates and graph, on synthetic data with known answers (fast)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from obscale_bayes.errors import DataError, UsageError
from obscale_bayes.fit.downstream_select import (
    _mean_abs_diff,
    blocked_folds,
    stack,
    stack_by,
    stack_crps,
)
from obscale_bayes.model.coordinates import PCAImputer, PrincipalAxes, to_score_scale
from obscale_bayes.model.downstream import build_target_model, free_names, observed_target


def _scores(seed=0, n=40, j=6, missing=0.0):
    """Scores of rank 3 plus noise, with known variance order of the three directions."""
    rng = np.random.default_rng(seed)
    basis = np.linalg.qr(rng.normal(size=(j, 3)))[0].T  # (3, J) orthonormal
    f = rng.normal(size=(n, 3)) * np.array([0.2, 0.08, 0.03])
    x = 0.5 + f @ basis + rng.normal(0, 0.002, (n, j))
    x[rng.random(x.shape) < missing] = np.nan
    cols = [f"b{i}" for i in range(j)]
    return pd.DataFrame(x, columns=cols, index=[f"m{i}" for i in range(n)]), basis


def test_axes_recover_the_directions_in_variance_order_with_the_sign_rule():
    s, basis = _scores()
    ax = PrincipalAxes(3).fit(s)
    assert np.all(np.diff(ax.explained_variance_ratio_) < 0)  # variance-ordered
    assert np.all(ax.axes_.sum(axis=1) > 0)  # sign rule: positive sum of loadings
    # each fitted axis is the true direction of its rank, up to sign
    cos = np.abs(np.sum(ax.axes_ * basis, axis=1))
    assert np.all(cos > 0.99), cos
    np.testing.assert_allclose(ax.axes_ @ ax.axes_.T, np.eye(3), atol=1e-10)


def test_training_coordinates_are_centred_with_unit_sd():
    s, _ = _scores(1)
    ax = PrincipalAxes().fit(s)
    z = ax.transform(s)
    np.testing.assert_allclose(z.mean(axis=0), 0.0, atol=1e-10)
    np.testing.assert_allclose(z.std(axis=0, ddof=1), 1.0, rtol=1e-10)
    # the same linear map for complete score arrays (draws): broadcasting over leading axes
    draws = np.stack([s.to_numpy()] * 2)
    np.testing.assert_allclose(ax.transform_scores(draws)[1], z)


def test_same_map_and_same_fill_for_training_and_new_models():
    s, _ = _scores(2, missing=0.1)
    train, new = s.iloc[:30], s.iloc[30:]
    ax = PrincipalAxes().fit(train)
    # a training model passed as a new one gets the same coordinates ...
    z_train = ax.transform(train)
    z_again = np.vstack([ax.transform(train.iloc[[i]]) for i in range(len(train))])
    np.testing.assert_allclose(z_again, z_train, atol=1e-6)
    # ... and a new model's missing cell is filled by the training imputer, not refitted
    imp = PCAImputer(1).fit(train.to_numpy())
    np.testing.assert_allclose(ax.complete(new), imp.transform(new.to_numpy()))
    # adding new models does not move the training coordinates (fitted on training only)
    np.testing.assert_allclose(ax.transform(pd.concat([train, new])).__getitem__(slice(30)),
                               z_train, atol=1e-6)  # fmt: skip


def test_standardised_coordinates_do_not_depend_on_the_score_unit():
    s, _ = _scores(3)
    ax = PrincipalAxes().fit(s)
    s2 = s * 0.5  # (inside [0, 1], where the imputer clips) same axes, same unit-sd coordinates
    np.testing.assert_allclose(PrincipalAxes().fit(s2).transform(s2), ax.transform(s), atol=1e-8)


def test_coordinates_errors():
    s, _ = _scores()
    with pytest.raises(DataError, match="scores"):
        PrincipalAxes(3).fit(s.iloc[:3])
    ax = PrincipalAxes().fit(s)
    blank = s.iloc[[0]] * np.nan
    with pytest.raises(DataError, match="no input score"):
        ax.transform(blank)
    with pytest.raises(UsageError, match="n_axes"):
        PrincipalAxes(0)
    meta = pd.DataFrame({"benchmark": ["b0"], "metric_min": [0.0], "metric_max": [100.0]})
    np.testing.assert_allclose(to_score_scale(pd.DataFrame({"b0": [50.0]}), meta)["b0"], 0.5)
    with pytest.raises(DataError, match="metric range"):
        to_score_scale(s, meta)


def test_target_graph_parameters_and_errors():
    z, y = np.zeros((5, 3)), np.full(5, 0.1)
    m = build_target_model(z, y, "floored_sigmoid", "hetero")
    assert {v.name for v in m.free_RVs} == set(free_names("floored_sigmoid", "hetero"))
    m = build_target_model(z, y, "sigmoid", "normal")
    assert {v.name for v in m.free_RVs} == {"bias", "weight", "sigma"}
    with pytest.raises(UsageError, match="noise"):
        build_target_model(z, y, "sigmoid", "beta")
    with pytest.raises(UsageError, match="link"):
        build_target_model(z, y, "probit", "normal")
    with pytest.raises(UsageError, match="z"):
        build_target_model(z[:4], y, "sigmoid", "normal")


def test_censored_graph_clips_the_target_and_every_candidate_has_the_same_parameters():
    z, y = np.zeros((4, 3)), np.array([-0.03, 0.0, 0.4, 1.02])
    m = build_target_model(z, y, "sigmoid", "censored")
    assert {v.name for v in m.free_RVs} == {"bias", "weight", "sigma"}
    np.testing.assert_array_equal(m["y_data"].get_value(), [0.0, 0.0, 0.4, 1.0])
    np.testing.assert_array_equal(observed_target(y, "normal"), y)  # only censored clips


def test_blocked_folds_are_contiguous_in_the_first_coordinate():
    z1 = np.random.default_rng(0).permutation(23).astype(float)
    folds = blocked_folds(z1, 5)
    assert np.bincount(folds).tolist() == [5, 5, 5, 4, 4]
    # every model of a later fold is above every model of an earlier one
    order = folds[np.argsort(z1)]
    assert np.all(np.diff(order) >= 0)
    with pytest.raises(UsageError, match="n_folds"):
        blocked_folds(np.zeros(1))


def test_stacking_weights_known_answers():
    # one candidate better on every model: all the weight
    lpd = pd.DataFrame({"a": np.zeros(20), "b": np.full(20, -2.0)})
    assert stack(lpd).to_dict() == {"a": 1.0, "b": 0.0}
    # two candidates, each far better on its own half: the stacked density is the equal mix
    half = np.r_[np.zeros(10), np.full(10, -30.0)]
    w = stack(pd.DataFrame({"a": half, "b": half[::-1]}))
    np.testing.assert_allclose(w.to_numpy(), [0.5, 0.5], atol=1e-3)
    # an interior optimum: 3 models favour a by 1 nat, 1 favours b by 3 nats (grid search)
    lpd = pd.DataFrame({"a": [0.0, 0.0, 0.0, -3.0], "b": [-1.0, -1.0, -1.0, 0.0]})
    ea, eb = np.exp(lpd["a"]), np.exp(lpd["b"])
    grid = np.linspace(0, 1, 100001)
    best = grid[np.argmax([np.log(g * ea + (1 - g) * eb).sum() for g in grid])]
    assert abs(stack(lpd)["a"] - best) < 1e-3


def test_mean_abs_diff_is_the_mean_over_all_pairs():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(300, 4)), rng.normal(1.0, 2.0, size=(200, 4))
    brute = np.abs(a[:, None, :] - b[None, :, :]).mean(axis=(0, 1))
    np.testing.assert_allclose(_mean_abs_diff(a, b), brute)


def test_crps_stacking_weights_known_answers():
    from obscale_bayes.evaluation.metrics import crps_from_draws

    rng = np.random.default_rng(1)
    y = rng.normal(size=30)
    noise = 0.1 * rng.normal(size=(2000, 30))
    # one candidate right on every model, one shifted by 1: all the weight on the first
    w = stack_crps({"right": y + noise, "shifted": y + 1.0 + noise}, y)
    assert w.to_dict() == {"right": 1.0, "shifted": 0.0}
    # each candidate right on its own half (off by 1 on the other): the equal mix, which a grid
    # over mixtures of the draws (evaluation's CRPS of the pooled draws) also finds
    y0 = np.zeros(20)
    da = rng.normal(0.0, 0.05, size=(2000, 20))
    db = da.copy()
    da[:, 10:] += 1.0
    db[:, :10] += 1.0
    w = stack_crps({"a": da, "b": db}, y0)
    np.testing.assert_allclose(w.to_numpy(), [0.5, 0.5], atol=1e-3)
    grid = np.linspace(0.0, 1.0, 21)
    crps = [crps_from_draws(np.vstack([da[: int(g * 2000)], db[int(g * 2000) :]]), y0).sum()
            for g in grid]  # fmt: skip
    assert grid[int(np.argmin(crps))] == 0.5
    with pytest.raises(UsageError, match="draws"):
        stack_crps({"a": np.full((10, 3), np.nan)}, np.zeros(3))


def test_top_block_stacking_weighs_only_the_top_two_blocks():
    """Candidate "low" is right on the lower three blocks, "high" on the top two: the log score
    over every model prefers "low" (more models), the top blocks' score all "high"."""
    folds = np.repeat(np.arange(5), 4)  # 5 blocks of 4 models
    top = folds >= 3
    lpd = pd.DataFrame({"low": np.where(top, -5.0, 1.0), "high": np.where(top, 1.0, -5.0)})
    y = np.zeros(len(folds))
    draws = {c: np.zeros((10, len(folds))) for c in lpd}
    w_all = stack_by("lpd", lpd, draws, y, folds)
    w_top = stack_by("lpd_top", lpd, draws, y, folds)
    assert w_all["low"] > w_all["high"]
    assert w_top.to_dict() == {"low": 0.0, "high": 1.0}
    pd.testing.assert_series_equal(w_top, stack(lpd[top]))  # the same stacking, fewer rows
    # with two blocks only, the top two are every model
    two = np.repeat([0, 1], 10)
    pd.testing.assert_series_equal(stack_by("lpd_top", lpd, draws, y, two), stack(lpd))


def test_an_unknown_stacking_score_is_one_line_before_any_fit():
    from obscale_bayes.fit.downstream import fit_target_module

    scores = pd.DataFrame(np.random.default_rng(2).uniform(size=(12, 3)), columns=list("abc"))
    with pytest.raises(UsageError, match="score: unknown stacking score 'mse'"):
        fit_target_module(scores, np.linspace(0.1, 0.9, 12), score="mse")


def test_log_score_is_the_law_of_the_clipped_forecast():
    """exp(log_score) at 0 and 1 is the share of forecast draws clipped there; inside, a density."""
    from obscale_bayes.fit.downstream import TargetFit, TargetModule
    from obscale_bayes.forecast.downstream import target_draws_from_coordinates

    n = 200_000
    one = np.ones(n)
    draws = {"bias": 0.0 * one, "weight": np.zeros((n, 3)), "sigma": 0.3 * one,
             "tau": 0.0 * one, "floor": 0.0 * one}  # fmt: skip
    fit = TargetFit("sigmoid", "normal", draws, diagnostics=None, tree=None)
    module = TargetModule(PrincipalAxes(), "sigmoid", {"n": fit}, {"n": 1.0})
    z = np.zeros((1, 3))  # p = 0.5, sd 0.3: P(clipped at 0) = P(clipped at 1) = Phi(-5/3)
    d = target_draws_from_coordinates(module, z, seed=0)[:, 0]
    sub = fit.subset(np.arange(10))
    at0, at1 = np.exp(sub.log_score(z, [0.0])[0, 0]), np.exp(sub.log_score(z, [1.0])[0, 0])
    assert at0 == pytest.approx(0.0478, abs=1e-3) and at1 == pytest.approx(at0)
    assert np.mean(d == 0.0) == pytest.approx(at0, abs=3e-3)
    assert np.mean(d == 1.0) == pytest.approx(at1, abs=3e-3)
    inside = np.exp(sub.log_score(z, [0.5])[0, 0])
    assert np.mean(np.abs(d - 0.5) < 0.01) / 0.02 == pytest.approx(inside, rel=0.05)
