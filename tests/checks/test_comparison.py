"""Model comparison: the verdict rule (pure function, synthetic tables) and LOO on sampled fits.

The slow test simulates a K = 1 table (a ~50-model subset of the shipped layout), corrupts one
model's scores on three benchmarks, fits K = 1 and K = 2 and checks that (a) the LOO verdict
picks K = 1 (the truth) -- the rule returns the simplest K within 2 SE of the best, so "K = 2
is better by a clear margin" would fail it -- and (b) the corrupted model is the one the fit
explains worst.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from matplotlib.figure import Figure

from obscale_bayes.checks.comparison import (
    compare_fits,
    k_verdict,
    loo_by_model,
    loo_cells,
    pointwise_loo,
    simplest_supported,
    worst_explained,
)
from obscale_bayes.checks.kfold import kfold_assign, kfold_compare, kfold_elpd
from obscale_bayes.data.tables import load_shipped
from obscale_bayes.errors import UsageError
from obscale_bayes.fit.fitted import CapabilityModel
from obscale_bayes.model.simulate import simulate
from obscale_bayes.plots.checks import dkw_band, plot_compare


def table(rows):
    """A compare-like table from (name, K, elpd, dse) rows; best first, as ArviZ orders it."""
    df = pd.DataFrame(rows, columns=["fit", "n_factors", "elpd", "dse"]).set_index("fit")
    df["se"] = 30.0
    df = df.sort_values("elpd", ascending=False)
    df["elpd_diff"] = df["elpd"] - df["elpd"].max()
    df["likelihood"] = "normal"
    return df


# ---------------------------------------------------------------- the rule (fast)
def test_simpler_within_two_se_is_chosen():
    t = table([("k1", 1, 990.0, 8.0), ("k2", 2, 1000.0, 0.0), ("k3", 3, 998.0, 3.0)])
    v = k_verdict(t)
    assert v.choice == "k1" and v.best == "k2"
    assert set(v.candidates) == {"k1", "k2", "k3"}
    assert "K = 1" in v.text and "10.0" in v.text


def test_clearly_better_complex_model_wins():
    t = table([("k1", 1, 900.0, 20.0), ("k2", 2, 960.0, 10.0), ("k3", 3, 1000.0, 0.0)])
    v = k_verdict(t)
    assert v.choice == "k3" and v.candidates == ["k3"]
    assert "more than 2 SE worse" in v.text and "Caution" not in v.text
    t["converged"] = [True, False, True]
    t["n_cells"], t["n_bad_k"] = 985, [100, 0, 0]
    text = k_verdict(t).text
    assert "'k2' failed the convergence gate" in text and "100 of 985 cells of 'k3'" in text
    # the boundary: k2 is 40 below with dse 10 -> 4 SE; with z = 4 it is just within
    assert k_verdict(t, z=4.0).choice == "k2"
    assert k_verdict(t, z=0.0).choice == "k3"


def test_ties_in_complexity_go_to_higher_elpd_and_reference_is_ignored():
    t = table([("a", 1, 995.0, 4.0), ("b", 1, 997.0, 4.0), ("c", 2, 1000.0, 0.0)])
    t["elpd_diff"] = t["elpd"] - 995.0  # a table with another reference model
    v = simplest_supported(t, {"a": 1, "b": 1, "c": 2})
    assert v.choice == "b"


def test_rule_input_errors():
    t = table([("k1", 1, 990.0, 8.0), ("k2", 2, 1000.0, 0.0)])
    with pytest.raises(UsageError, match="complexity given"):
        simplest_supported(t, {"k1": 1})
    with pytest.raises(UsageError, match="no column"):
        simplest_supported(t, "nope")
    with pytest.raises(UsageError, match="lacks columns"):
        simplest_supported(t.drop(columns="dse"), "n_factors")
    mixed = t.copy()
    mixed.loc["k2", "likelihood"] = "student_t"
    with pytest.raises(UsageError, match="mixes likelihoods"):
        k_verdict(mixed)


def test_compare_plot_and_band():
    t = table([("k1", 1, 990.0, 8.0), ("k2", 2, 1000.0, 0.0)])
    assert isinstance(plot_compare(t), Figure)
    # DKW: about 1.36 / sqrt(n) for a 95% band
    assert abs(dkw_band(100) - 0.1358) < 1e-3


# ---------------------------------------------------------------- K-fold (fast parts)
def test_kfold_folds_spread_each_model():
    d = load_shipped()
    f = kfold_assign(d, folds=5, seed=1)
    assert f.index.equals(d.scores.index)
    assert set(f.unique()) <= {-1, 0, 1, 2, 3, 4}
    per = pd.DataFrame({"model": d.scores["model"], "fold": f})
    # a model with n cells has at most ceil(n / 5) of them in any one fold
    for _, g in per.groupby("model"):
        assert g["fold"].value_counts().max() <= -(-len(g) // 5)
    assert f.equals(kfold_assign(d, folds=5, seed=1))
    with pytest.raises(UsageError, match="folds"):
        kfold_assign(d, folds=1)


def test_kfold_compare_paired_se():
    rng = np.random.default_rng(0)
    cells = pd.DataFrame({"model": [f"m{i}" for i in range(400)], "benchmark": "b"})
    a = cells.assign(elpd=rng.normal(1.0, 1.0, 400))
    b = a.assign(elpd=a["elpd"] - 0.1 + rng.normal(0, 0.2, 400))
    t = kfold_compare({"a": a, "b": b})
    assert list(t.index) == ["a", "b"]
    d = b["elpd"] - a["elpd"]
    np.testing.assert_allclose(t.loc["b", "elpd_diff"], d.sum())
    np.testing.assert_allclose(t.loc["b", "dse"], np.sqrt(400 * d.var(ddof=1)))
    # paired: the difference is far more precise than either total
    assert t.loc["b", "dse"] < 0.3 * t.loc["b", "se"]
    with pytest.raises(UsageError, match="different cells"):
        kfold_compare({"a": a, "b": b.iloc[:-1]})


# ---------------------------------------------------------------- sampled fits (slow)
SUBSET_FAMILIES = ("Pythia", "OPT", "Qwen1.5", "BLOOM", "GPT-Neo/J", "Llama", "Falcon", "Llama-2")
CORRUPTED = "EleutherAI/pythia-1.4b-deduped"
SHIFTS = {"arc_c": 0.25, "winogrande": -0.2, "truthfulqa": 0.25}


FIT_KW = dict(draws=400, tune=500, chains=2, seed=2, progress=False, cores=1)


@pytest.fixture(scope="module")
def corrupted():
    """A K = 1 simulation with one model's scores shifted on three non-anchor benchmarks."""
    d = load_shipped()
    keep = d.models.loc[d.models["family"].isin(SUBSET_FAMILIES), "model"].tolist()
    data, _ = simulate(d.subset(models=keep), "k1", seed=21)
    s = data.scores.copy()
    lo = data.benchmarks.set_index("benchmark")
    for b, d in SHIFTS.items():
        sel = (s["model"] == CORRUPTED) & (s["benchmark"] == b)
        assert sel.sum() == 1
        span = lo.loc[b, "metric_max"] - lo.loc[b, "metric_min"]
        s.loc[sel, "value"] = np.clip(s.loc[sel, "value"] + d * span, 0, lo.loc[b, "metric_max"])
    return type(data)(data.models, s, data.benchmarks, source="corrupted simulation")


@pytest.fixture(scope="module")
def fits(corrupted):
    return {n: CapabilityModel.fit(corrupted, n, **FIT_KW) for n in ("k1", "k2")}


@pytest.mark.slow
def test_loo_tables_and_the_corrupted_model(fits):
    t = compare_fits(fits)
    assert set(t.index) == {"k1", "k2"}
    cols = {"elpd", "se", "dse", "elpd_diff", "weight", "n_factors", "n_bad_k", "converged"}
    assert cols <= set(t.columns)
    assert (t["n_bad_k"] <= t["n_cells"]).all()

    lo = pointwise_loo(fits["k1"])
    cells = loo_cells(fits["k1"])
    assert len(cells) == fits["k1"].idata["observed_data"].sizes["obs"]
    np.testing.assert_allclose(cells["elpd"].sum(), lo.elpd, rtol=1e-9)
    by = loo_by_model(fits["k1"])
    np.testing.assert_allclose(by["elpd"].sum(), lo.elpd, rtol=1e-9)
    worst = worst_explained(fits["k1"], n=3)
    assert worst["model"].iloc[0] == CORRUPTED, worst
    assert worst["worst_benchmark"].iloc[0] in SHIFTS
    # the corrupted model stands out: its cells are far worse than the runner-up's
    assert worst["excess_per_cell"].iloc[0] < 2 * worst["excess_per_cell"].iloc[1]


@pytest.mark.slow
def test_kfold_picks_the_true_k(corrupted):
    """K-fold CV on K = 1 data: the rule keeps K = 1 (PSIS-LOO, optimistic for the larger K
    where Pareto k is high, put K = 2 ahead by ~2 SE on these data)."""
    kw = dict(FIT_KW, draws=300, tune=400)
    res = {n: kfold_elpd(corrupted, n, folds=3, fold_seed=1, **kw) for n in ("k1", "k2")}
    assert all(len(r) == len(corrupted.scores) for r in res.values())
    t = kfold_compare(res)
    v = simplest_supported(t, {"k1": 1, "k2": 2}, label="K")
    assert v.choice == "k1", v.text


@pytest.mark.slow
def test_compare_refuses_different_data(fits):
    obs = fits["k1"].idata["observed_data"].dataset.isel(obs=slice(1, None))
    other = SimpleNamespace(idata=xr.DataTree.from_dict({"observed_data": obs}))
    with pytest.raises(UsageError, match="different data"):
        compare_fits({"a": fits["k1"], "b": other})
