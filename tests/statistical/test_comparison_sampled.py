"""Model comparison on sampled fits: PSIS-LOO tables and the worst-explained (corrupted) model,
K-fold CV picking the true K on data simulated with K = 1, refusal to compare different data."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import xarray as xr

from obscale_bayes.checks.comparison import (
    compare_fits,
    loo_by_model,
    loo_cells,
    pointwise_loo,
    simplest_supported,
    worst_explained,
)
from obscale_bayes.checks.kfold import kfold_compare, kfold_elpd
from obscale_bayes.errors import UsageError
from obscale_bayes.fit.fitted import CapabilityModel
from obscale_bayes.model.simulate import simulate
from obscale_bayes.testing import shipped_subset

# ---------------------------------------------------------------- sampled fits (slow)
CORRUPTED = "EleutherAI/pythia-1.4b-deduped"
SHIFTS = {"arc_c": 0.25, "winogrande": -0.2, "truthfulqa": 0.25}


FIT_KW = dict(draws=400, tune=500, chains=2, seed=2, progress=False, cores=1)


@pytest.fixture(scope="module")
def corrupted():
    """A K = 1 simulation with one model's scores shifted on three non-anchor benchmarks."""
    data, _ = simulate(shipped_subset(), "k1", seed=21)
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
