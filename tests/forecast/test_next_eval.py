"""What to evaluate next: variance-reduction ranking, greedy batches, the paper's V-optimal subsets.

Known answers: a nearly linear-Gaussian fake fit (built by hand, no sampling) where the expected
reduction is ``Cov^2 / Var`` with moments from Gauss-Hermite quadrature; exact Gaussian draws for
the reweighting estimator; toy designs for the V-optimality search.  The slow test samples a
small fit on simulated data and checks that the greedy pick is the obviously informative cell.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from obscale_bayes.data.tables import BenchmarkData, load_shipped
from obscale_bayes.errors import UsageError
from obscale_bayes.evaluation.subset_selection import (
    enumerate_family_subsets,
    greedy_schur,
    paper_pc_features,
    random_family_subsets,
    v_optimal_subsets,
    v_optimality,
)
from obscale_bayes.fit.fitted import CapabilityModel
from obscale_bayes.forecast.joint import joint_draws
from obscale_bayes.forecast.next_eval import (
    rank_evaluations,
    reweighted_reduction,
    reweighted_variance_reduction,
    select_batch,
)
from obscale_bayes.spec.spec import load_spec

# ---------------------------------------------------------------- a hand-made Gaussian "fit"
BENCH = ["mmlu", "b1", "b2", "b3"]
LOADING = np.array([1.0, 1.5, 1.0, 2.0])
N_ITEMS = np.array([14042.0, 400.0, 200.0, 1000.0])
MISFIT = np.array([0.015, 0.02, 0.01, 0.03])
THETA_SD = 0.2  # eta = loading * theta stays where the sigmoid is nearly linear


def _fake_fit(n_draws: int = 6000, seed: int = 0) -> CapabilityModel:
    """K = 1, intercepts and floors 0, fixed loadings; m0, m2 ~ N(0, THETA_SD) independent."""
    spec = load_spec("k1")
    bench = pd.DataFrame({"benchmark": BENCH, "display_name": BENCH, "group": "standard",
                          "floor": 0.0, "n_items": N_ITEMS, "metric_min": 0.0,
                          "metric_max": 1.0, "unit": "fraction"})  # fmt: skip
    models = pd.DataFrame({"model": ["m0", "m1", "m2"], "family": ["F0", "F1", "F2"],
                           "kind": "base", "params_b": 1.0, "tokens_t": 1.0,
                           "flops_1e21": [1.0, 2.0, 3.0]})  # fmt: skip
    scores = pd.DataFrame({"model": ["m0", "m2"] + ["m1"] * 4,
                           "benchmark": ["mmlu", "mmlu"] + BENCH,
                           "value": 0.5})  # fmt: skip
    data = BenchmarkData(models, scores, bench, source="fake")
    rng = np.random.default_rng(seed)
    s = n_draws
    cap = THETA_SD * rng.standard_normal((1, s, 3, 1))
    z = np.zeros((1, s, 3, 1))
    full = lambda v, *sh: np.broadcast_to(np.asarray(v, float), (1, s, *sh)).copy()  # noqa: E731
    post = xr.Dataset(
        {
            "capability": (("chain", "draw", "model", "factor"), cap),
            "efficiency": (("chain", "draw", "family", "factor"), z),
            "slope": (("chain", "draw", "family", "factor"), z),
            "efficiency_mean": (("chain", "draw", "factor"), full(0.0, 1)),
            "efficiency_sd": (("chain", "draw", "factor"), full(1.0, 1)),
            "slope_mean": (("chain", "draw", "factor"), full(0.5, 1)),
            "slope_sd": (("chain", "draw", "factor"), full(0.1, 1)),
            "residual_sd": (("chain", "draw", "factor"), full(THETA_SD, 1)),
            "loading": (("chain", "draw", "benchmark", "factor"), full(LOADING[:, None], 4, 1)),
            "intercept": (("chain", "draw", "benchmark"), full(0.0, 4)),
            "floor": (("chain", "draw", "benchmark"), full(0.0, 4)),
            "misfit": (("chain", "draw", "benchmark"), full(MISFIT, 4)),
            "logit_misfit": (("chain", "draw", "benchmark"), full(0.0, 4)),
        },
        coords={
            "chain": [0],
            "draw": np.arange(s),
            "model": ["m0", "m1", "m2"],
            "family": ["F0", "F1", "F2"],
            "benchmark": BENCH,
            "factor": ["mmlu"],
        },  # fmt: skip
    )
    obs = xr.Dataset(
        {"score": ("obs", scores["value"].to_numpy())},
        coords={
            "obs": np.arange(len(scores)),
            "obs_model": ("obs", scores["model"].to_numpy()),
            "obs_benchmark": ("obs", scores["benchmark"].to_numpy()),
        },  # fmt: skip
    )
    tree = xr.DataTree.from_dict({"posterior": post, "observed_data": obs})
    return CapabilityModel(spec, data, tree, diagnostics=None, meta={})


def _moments(js: list[int]) -> np.ndarray:
    """Exact covariance of y_j = sigmoid(l_j theta) + noise on one model (Gauss-Hermite)."""
    x, w = np.polynomial.hermite_e.hermegauss(80)
    w = w / w.sum()
    th = THETA_SD * x
    p = np.stack([1.0 / (1.0 + np.exp(-LOADING[j] * th)) for j in js])  # (J, nodes)
    mean = p @ w
    cov = (p - mean[:, None]) * w @ (p - mean[:, None]).T
    for k, j in enumerate(js):
        inv_n = 1.0 / N_ITEMS[j]
        pt = (p[k] + inv_n) / (1.0 + 2.0 * inv_n)
        cov[k, k] += float((pt * (1.0 - pt) * inv_n) @ w) + MISFIT[j] ** 2
    return cov


@pytest.fixture(scope="module")
def fake_fit() -> CapabilityModel:
    return _fake_fit()


def test_single_reduction_matches_closed_form(fake_fit):
    target = ("m0", "b1")
    r = rank_evaluations(fake_fit, target, [("m0", "b2"), ("m0", "b3"), ("m2", "b3")], seed=1,
                         max_draws=None).set_index(["model", "benchmark"])  # fmt: skip
    for j in (2, 3):
        c = _moments([1, j])
        exact = c[0, 1] ** 2 / c[1, 1]
        got = r.loc[("m0", BENCH[j]), "variance_reduction"]
        assert got == pytest.approx(exact, rel=0.1), (j, got, exact)
        assert r.loc[("m0", BENCH[j]), "fraction_removed"] == pytest.approx(
            exact / c[0, 0], rel=0.1
        )
    # another model's cell is independent of the target here (fixed loadings): ~ no reduction
    assert r.loc[("m2", "b3"), "fraction_removed"] < 0.01
    # b3 (loading 2, 1000 items) tells more about b1 than b2 (loading 1, 200 items)
    assert r.index[0] == ("m0", "b3")


def test_greedy_pair_matches_closed_form(fake_fit):
    b = select_batch(fake_fit, ("m0", "b1"), 2, [("m0", "b2"), ("m0", "b3"), ("m2", "b2")],
                     seed=2, max_draws=None)  # fmt: skip
    assert list(b["benchmark"]) == ["b3", "b2"] and list(b["model"]) == ["m0", "m0"]
    c = _moments([1, 3, 2])
    exact = c[0, 1:] @ np.linalg.solve(c[1:, 1:], c[1:, 0])
    assert b["cumulative_reduction"].iloc[-1] == pytest.approx(exact, rel=0.1)
    assert (b["gain"].diff().dropna() < 0).all()  # diminishing returns


def test_reweighting_agrees_with_gaussian_on_the_fake_fit(fake_fit):
    chk = reweighted_variance_reduction(fake_fit, ("m0", "b1"), [("m0", "b3")], n_outcomes=300,
                                        seed=3, max_draws=3000)  # fmt: skip
    row = chk.iloc[0]
    c = _moments([1, 3])
    assert row["reweighted"] == pytest.approx(c[0, 1] ** 2 / c[1, 1], rel=0.15)
    assert row["reweighted"] == pytest.approx(row["gaussian"], rel=0.15)


def test_reweighting_on_exact_gaussian_draws():
    rng = np.random.default_rng(0)
    s, sd_p, sd_n, sd_t = 4000, 1.0, 0.7, 0.5
    p = sd_p * rng.standard_normal(s)
    y = p + sd_n * rng.standard_normal(s)
    t = 2.0 * p + sd_t * rng.standard_normal(s)
    exact = (2.0 * sd_p**2) ** 2 / (sd_p**2 + sd_n**2)
    red, mean_ess, _ = reweighted_reduction(t[:, None], y, p, np.full(s, sd_n), 300, rng)
    assert red == pytest.approx(exact, rel=0.1)
    assert mean_ess > 100


def test_greedy_schur_is_exact_for_a_known_covariance():
    rng = np.random.default_rng(4)
    a = rng.standard_normal((6, 6))
    cov = a @ a.T + np.eye(6)
    picks = greedy_schur(cov, [0, 1], [2, 3, 4, 5], 3)
    first = max([2, 3, 4, 5], key=lambda i: (cov[[0, 1], i] ** 2).sum() / cov[i, i])
    assert picks[0][0] == first
    chosen = [i for i, _, _ in picks]
    t = [0, 1]
    cond = cov[np.ix_(t, t)] - cov[np.ix_(t, chosen)] @ np.linalg.solve(
        cov[np.ix_(chosen, chosen)], cov[np.ix_(chosen, t)]
    )
    assert picks[-1][2] == pytest.approx(np.trace(cond), rel=1e-9)


def test_joint_draws_of_a_new_benchmark_use_the_prior(fake_fit):
    # 'gsm8k' is not in the fake fit: loading/intercept/misfit come from the spec's priors and
    # its metadata (floor 0, 1319 items) from the shipped table.
    jd = joint_draws(fake_fit, [("m0", "gsm8k"), ("m2", "gsm8k")], seed=0, max_draws=2000)
    assert jd.y.shape == (2000, 2)
    assert 0.15 < jd.p.std(axis=0).mean() < 0.5  # prior heads: wide, unlike the fixed heads
    # the two models share the drawn head, so their cells are correlated
    assert np.corrcoef(jd.y.T)[0, 1] > 0.5


def test_bad_input_gives_one_line_errors(fake_fit):
    with pytest.raises(UsageError, match="not a cell"):
        rank_evaluations(fake_fit, ("m0",))
    with pytest.raises(UsageError, match="not in the fit"):
        rank_evaluations(fake_fit, ("nope", "b1"), [("m0", "b2")])
    with pytest.raises(UsageError, match="budget"):
        select_batch(fake_fit, ("m0", "b1"), 0)
    with pytest.raises(UsageError, match="no candidate"):
        rank_evaluations(fake_fit, ("m0", "b1"), [("m1", "b2")])  # observed cell
    with pytest.raises(UsageError, match="FLOPs"):
        rank_evaluations(fake_fit, ("F0", -1.0, "b1"))


def test_default_candidates_are_the_unobserved_cells(fake_fit):
    r = rank_evaluations(fake_fit, ("m0", "b1"))
    cells = set(zip(r["model"], r["benchmark"], strict=True))
    assert cells == {("m0", "b2"), ("m0", "b3"), ("m2", "b1"), ("m2", "b2"), ("m2", "b3")}


def test_several_targets_add_up(fake_fit):
    cand = [("m0", "b3")]
    both = rank_evaluations(fake_fit, (("m0", "b1"), ("m0", "b2")), cand, max_draws=None)
    one = [
        rank_evaluations(fake_fit, t, cand, max_draws=None) for t in (("m0", "b1"), ("m0", "b2"))
    ]
    parts = sum(r["variance_reduction"].iloc[0] for r in one)
    # equal up to Monte Carlo noise (the noise draws come in another order)
    assert both["variance_reduction"].iloc[0] == pytest.approx(parts, rel=0.1)
    assert len(both.attrs["targets"]) == 2


# ---------------------------------------------------------------- the paper's V-optimal subsets
def _toy():
    rows = {"a1": (1.0, 0.0), "a2": (0.0, 1.0),  # family A: orthogonal, unit
            "b1": (1.0, 1.0), "b2": (1.0, 1.01),  # family B: nearly collinear
            "c1": (3.0, 0.0), "c2": (0.0, 3.0),  # family C: orthogonal, large
            "d1": (0.2, 0.0)}  # fmt: skip
    feats = pd.DataFrame(rows, index=["PC-1", "PC-2"]).T
    fams = pd.Series({m: m[0].upper() for m in rows})
    return feats, fams


def test_v_optimality_toy_optimum():
    feats, fams = _toy()
    x = feats.to_numpy()
    # budget 2: one family of two models; C's Gram is 9 I, the best by far
    best = v_optimal_subsets(feats, fams, [2, 4])
    assert best[2].families == ("C",)
    assert best[2].objective == pytest.approx(np.trace(x.T @ x) / 9.0)
    # budget 4: the search agrees with a direct loop over all family pairs
    ref = min(
        (v_optimality(x, x[fams.isin(c).to_numpy()]), c)
        for k in (1, 2)
        for c in itertools.combinations("ABCD", k)
        if fams.isin(c).sum() <= 4
    )
    assert best[4].objective == pytest.approx(ref[0])
    assert set(best[4].families) == set(ref[1])
    # a single model cannot identify two PCs
    assert v_optimality(x, x[:1]) == float("inf")


def test_enumeration_and_random_baseline_sizes():
    feats, fams = _toy()
    tab = enumerate_family_subsets(feats, fams, max_families=4)
    assert len(tab) == 2**4 - 1
    subs = random_family_subsets(feats, fams, budget=4, n=3, seed=0, max_families=4)
    assert all(3 <= s.n_models <= 4 for s in subs)
    assert len({s.families for s in subs}) == 3


def test_paper_pc_features_are_centred_and_ordered():
    d = load_shipped().wide().dropna()
    pcs = paper_pc_features(d.iloc[:40])
    assert np.allclose(pcs.mean(), 0.0, atol=1e-12)
    v = pcs.var().to_numpy()
    assert v[0] > v[1] > v[2]
