"""Simulation-based calibration: ranks, uniformity tests, ECDF band, layout and replications.

The rank and test functions are checked on ranks whose distribution is known (uniform, or not);
the pipeline end to end on a case where SBC must hold exactly without sampling: a "posterior"
that is draws from the prior (:func:`obscale_bayes.testing.prior_fit`, which ignores the data)
and truths drawn from the same prior, so every rank is uniform.
"""

from __future__ import annotations

import numpy as np
import pytest

from obscale_bayes import testing
from obscale_bayes.checks.sbc import (
    FORECAST_GROUPS,
    PARAMETER_GROUPS,
    cluster_ecdf_test,
    ecdf_difference,
    group_tests,
    hold_out,
    prior_replications,
    rank_matrix,
    rank_pit,
    ranks_of,
    rao_scott_chi2,
    sbc_post,
    sbc_template,
    thin_index,
)
from obscale_bayes.errors import UsageError

L = 99

#: The family-slopes variant, so that every parameter group (slope_sd included) is ranked.
SPEC = "family_slopes"


def uniform_ranks(reps: int, elements: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, L + 1, (reps, elements)).astype(float)


# ---------------------------------------------------------------- ranks
def test_ranks_of_counts_draws_below_and_breaks_ties_at_random():
    draws = np.array([[0.0, 1.0], [1.0, 1.0], [2.0, 1.0], [3.0, 1.0]])  # (L=4, n=2)
    rng = np.random.default_rng(0)
    r = np.stack([ranks_of(draws, np.array([1.5, 1.0]), rng) for _ in range(2000)])
    assert np.all(r[:, 0] == 2)  # two draws below 1.5, no ties
    # four ties with the truth: rank uniform on 0..4
    counts = np.bincount(r[:, 1], minlength=5)
    assert counts.size == 5 and counts.min() > 300


def test_thin_index():
    idx = thin_index(1000, 99)
    assert len(idx) == 99 and idx[0] == 0 and idx[-1] == 999
    assert np.all(np.diff(idx) > 0)
    with pytest.raises(UsageError, match="n_ranks"):
        thin_index(50, 99)


def test_rank_pit_is_uniform():
    rng = np.random.default_rng(1)
    u = rank_pit(uniform_ranks(4000, 1).ravel(), L, rng)
    assert u.min() >= 0 and u.max() < 1
    assert abs(np.mean(u) - 0.5) < 0.02 and abs(np.var(u) - 1 / 12) < 0.005


def test_rank_matrix_marks_absent_elements():
    res = [{"g": {"a": 1, "b": 2}}, {"g": {"a": 3}}, {}]
    labels, mat = rank_matrix(res, "g")
    assert labels == ["a", "b"]
    np.testing.assert_array_equal(mat[0], [1, 2])
    assert mat[1, 0] == 3 and np.isnan(mat[1, 1]) and np.isnan(mat[2]).all()
    t = group_tests(mat, L)
    assert t["reps"] == 2 and t["ranks"] == 3 and t["elements"] == 2


# ---------------------------------------------------------------- uniformity tests
@pytest.mark.parametrize("elements", [1, 3, 40])
def test_uniform_ranks_pass(elements):
    t = group_tests(uniform_ranks(300, elements, seed=elements), L)
    assert t["verdict"] == "uniform"
    assert min(t["chi2_p"], t["ks_p"], t["element_p"]) > 0.01
    assert t["reps"] == 300 and t["ranks"] == 300 * elements and t["elements"] == elements
    assert t["delta"] < 1.5  # independent elements: no design effect


def test_rao_scott_corrects_for_dependent_elements():
    # every replication repeats one uniform rank 30 times: 300 independent ranks, not 9000
    one = uniform_ranks(300, 1, seed=3)
    mat = np.repeat(one, 30, axis=1)
    x2, p, delta = rao_scott_chi2(mat, L)
    x2_one, p_one, delta_one = rao_scott_chi2(one, L)
    assert delta == pytest.approx(30, rel=0.05) and delta_one == 1.0
    assert x2 == pytest.approx(x2_one, rel=0.05) and p > 0.01
    assert group_tests(mat, L)["verdict"] == "uniform"


@pytest.mark.parametrize(
    "kind",
    ["overdispersed", "underdispersed", "biased"],
)
def test_nonuniform_ranks_fail(kind):
    rng = np.random.default_rng(7)
    u = rng.uniform(size=(300, 5))
    # overdispersed posterior: truths near the middle; underdispersed: truths in the tails
    u = {
        "overdispersed": 0.5 + (u - 0.5) * 0.5,
        "underdispersed": np.where(u < 0.5, u**2 * 2 * 0.5, 1 - (1 - u) ** 2 * 2 * 0.5),
        "biased": u**1.6,
    }[kind]
    ranks = np.floor(u * (L + 1)).clip(0, L)
    t = group_tests(ranks, L)
    assert t["verdict"] == "NOT uniform"
    assert t["chi2_p"] < 1e-6 and t["ks_p"] < 0.01 and t["outside_band"]


def test_one_bad_element_is_caught():
    ranks = uniform_ranks(300, 20, seed=11)
    ranks[:, 4] = np.random.default_rng(2).integers(0, 10, 300)  # truth always low
    t = group_tests(ranks, L)
    assert t["element_p"] < 1e-10 and t["verdict"] == "NOT uniform"


def test_ecdf_band():
    rng = np.random.default_rng(5)
    u = rng.uniform(size=200)
    b = ecdf_difference(u, seed=0)
    assert not b["outside"]
    assert np.all(b["lower"] <= 1e-12) and np.all(b["upper"] >= -1e-12)
    assert b["z"][0] == 0 and b["z"][-1] == 1 and len(b["diff"]) == len(b["z"])
    wide = np.max(b["upper"] - b["lower"])
    big = ecdf_difference(rng.uniform(size=2000), seed=0)
    assert np.max(big["upper"] - big["lower"]) < 0.5 * wide  # the band shrinks like 1 / sqrt(n)
    assert ecdf_difference(u**2, seed=0)["outside"]


def test_cluster_ecdf_test_level_and_band():
    # uniform ranks, independent (1 element) or all equal within a replication (30 copies):
    # p-values uniform, so about 5% below 0.05 in either case
    rng = np.random.default_rng(8)
    for copies in (1, 30):
        p = []
        for _ in range(200):
            one = rng.integers(0, L + 1, (100, 1)).astype(float)
            p.append(cluster_ecdf_test(np.repeat(one, copies, axis=1), L, n_boot=500)["p"])
        assert 0.01 <= np.mean(np.array(p) < 0.05) <= 0.11, copies
    # with one element per replication the band matches ArviZ's for independent ranks
    b = cluster_ecdf_test(uniform_ranks(200, 1, seed=4), L, seed=1)
    ref = ecdf_difference((np.arange(200) + 0.5) / 200)
    mid = np.abs(b["z"] - 0.5).argmin(), np.abs(ref["z"] - 0.5).argmin()
    assert b["upper"][mid[0]] == pytest.approx(ref["upper"][mid[1]], rel=0.2)
    assert b["z"][0] == 0 and b["z"][-1] == 1 and b["diff"][0] == b["diff"][-1] == 0


# ---------------------------------------------------------------- layout and replications
@pytest.fixture(scope="module")
def template(shipped):
    return sbc_template(shipped, 16, 6, seed=0)


def test_template_layout(shipped):
    t = sbc_template(shipped, 40, 12, seed=0)
    assert len(t.model_ids) == 40 and len(t.families) == 12
    assert t.benchmark_ids == shipped.benchmark_ids
    sub = shipped.wide().loc[t.model_ids]
    np.testing.assert_array_equal(t.wide().isna().to_numpy(), sub.isna().to_numpy())
    with pytest.raises(UsageError, match="n_families"):
        sbc_template(shipped, 5, 12)


@pytest.fixture(scope="module")
def reps(template):
    return prior_replications(template, SPEC, 60, seed=3)


def test_replications_are_prior_predictive_draws(template, reps):
    r0 = reps[0]
    assert r0.data.model_ids == template.model_ids
    assert len(r0.data.scores) == len(template.scores) == len(r0.cells)
    # scores in metric units = cells on [0, 1] (these benchmarks' range is 0-1); not clipped
    np.testing.assert_allclose(r0.data.scores["value"].to_numpy(), r0.cells["y"].to_numpy())
    all_y = np.concatenate([r.cells["y"].to_numpy() for r in reps])
    assert ((all_y < 0) | (all_y > 1)).any()
    for name in ("capability", "efficiency", "loading_free", "misfit_free", "x_latent"):
        assert name in r0.truth
    assert not np.allclose(reps[0].truth["efficiency"], reps[1].truth["efficiency"])
    again = prior_replications(template, SPEC, 2, seed=3)
    np.testing.assert_array_equal(again[1].truth["capability"], reps[1].truth["capability"])


def test_hold_out(reps):
    h = hold_out(reps[0], seed=0)
    (g1, cell, y1), (g2, new, y2) = h.cells
    assert (g1, g2) == FORECAST_GROUPS
    full = reps[0].data
    assert len(h.train.model_ids) == len(full.model_ids) - 1
    gone = (set(full.model_ids) - set(h.train.model_ids)).pop()
    row = full.models.set_index("model").loc[gone]
    assert np.isfinite(row["flops_1e21"]) and new[0] == row["family"]
    n_gone = (full.scores["model"] == gone).sum()
    assert len(h.train.scores) == len(full.scores) - n_gone - 1
    s = h.train.scores
    assert not ((s["model"] == cell[0]) & (s["benchmark"] == cell[1])).any()


def test_ranks_uniform_when_posterior_is_prior(template, reps):
    """With the prior as 'posterior' and truths from the prior, every rank is uniform."""
    fit = testing.prior_fit(template, SPEC, draws=50, chains=2, seed=99)
    results = [sbc_post(fit, r.truth, hold_out(r).cells, n_ranks=L, seed=i)
               for i, r in enumerate(reps)]  # fmt: skip
    assert set(results[0]) == set(PARAMETER_GROUPS + FORECAST_GROUPS)
    for g in PARAMETER_GROUPS + FORECAST_GROUPS:
        _, mat = rank_matrix(results, g)
        fin = mat[np.isfinite(mat)]
        assert fin.min() >= 0 and fin.max() <= L
        t = group_tests(mat, L, bins=5)
        # 45 tests: a per-test floor of 1e-3 keeps false alarms rare, any real fault fails
        assert min(t["chi2_p"], t["ks_p"], np.nan_to_num(t["element_p"], nan=1)) > 1e-3, (g, t)


@pytest.mark.parametrize("shift, rank", [(1.0, 0), (-1.0, 19)])
def test_ranks_align_truth_and_posterior_by_coordinate(reps, shift, rank):
    """A posterior that is the truth shifted up (down) in every draw: every rank 0 (L)."""
    r = reps[0]
    h = hold_out(r)
    post = r.truth.copy()
    for g in PARAMETER_GROUPS:
        post[g] = r.truth[g] + shift
    post = post.sel(model=h.train.model_ids)  # the held-out model is not in the fit
    fit = testing.truth_fit(h.train, post, SPEC, draws=30, variables=list(post.data_vars))
    res = sbc_post(fit, r.truth, [], n_ranks=19)
    assert set(res) == set(PARAMETER_GROUPS)
    assert len(res["capability"]) == 3 * len(h.train.model_ids)
    for g in PARAMETER_GROUPS:
        assert set(res[g].values()) == {rank}, g
