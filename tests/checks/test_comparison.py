"""Model comparison: the verdict rule (pure function, synthetic tables) and LOO on sampled fits.

The slow test simulates a K = 1 table (a ~50-model subset of the shipped layout), corrupts one
model's scores on three benchmarks, fits K = 1 and K = 2 and checks that (a) the LOO verdict
picks K = 1 (the truth) -- the rule returns the simplest K within 2 SE of the best, so "K = 2
is better by a clear margin" would fail it -- and (b) the corrupted model is the one the fit
explains worst.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from obscale_bayes.checks.comparison import (
    k_verdict,
    simplest_supported,
)
from obscale_bayes.checks.kfold import kfold_assign, kfold_compare
from obscale_bayes.data.tables import load_shipped
from obscale_bayes.errors import UsageError
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
