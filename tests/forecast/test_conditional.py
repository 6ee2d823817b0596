"""Forecasts from observed scores ("fill in the blanks") without refitting.

The slow test compares against the honest answer: a full refit that includes the new model
with its partial scores.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from obscale_bayes.data.tables import BenchmarkData, load_shipped
from obscale_bayes.errors import DataError
from obscale_bayes.fit.fitted import CapabilityModel
from obscale_bayes.forecast.compute import forecast_compute
from obscale_bayes.forecast.conditional import forecast_from_scores

TARGET = "meta-llama/Llama-2-13b-hf"
GIVEN = ["mmlu", "hellaswag", "arc_c", "humaneval"]


def _split(
    data: BenchmarkData, model: str, given: list[str]
) -> tuple[BenchmarkData, BenchmarkData]:
    """(training data without ``model``, ``model`` with only its ``given`` scores)."""
    s = data.scores
    train = BenchmarkData(
        data.models[data.models["model"] != model],
        s[s["model"] != model],
        data.benchmarks,
        source="train",
    )
    new = BenchmarkData(
        data.models[data.models["model"] == model],
        s[(s["model"] == model) & s["benchmark"].isin(given)],
        data.benchmarks,
        source="new.csv",
    )
    return train, new


@pytest.fixture(scope="module")
def small_fit() -> CapabilityModel:
    data = load_shipped()
    train, _ = _split(data, TARGET, GIVEN)
    return CapabilityModel.fit(train, draws=250, tune=400, chains=2, seed=3, progress=False)


def test_given_scores_are_reproduced_and_blanks_banded(small_fit):
    _, new = _split(load_shipped(), TARGET, GIVEN)
    fc = forecast_from_scores(small_fit, new, ci=0.9, seed=1)
    t = fc.table.set_index("benchmark")
    # MMLU has 14k items: the conditional must pin the model to its observed score.
    assert abs(t.loc["mmlu", "mean"] - t.loc["mmlu", "observed"]) < 0.01
    blanks = t[t["observed"].isna()]
    assert set(blanks.index) == {"winogrande", "truthfulqa", "gsm8k", "xwinograd"}
    assert (blanks["lower"] < blanks["median"]).all() and (blanks["median"] < blanks["upper"]).all()
    assert fc.table.attrs["importance_ess_fraction"][TARGET] > 0.3
    assert fc.draws.dims == ("sample", "model", "benchmark")


def test_no_scores_gives_the_compute_forecast(small_fit):
    """With nothing observed the conditional is the prior: same distribution as forecast()."""
    data = load_shipped()
    m = data.models[data.models["model"] == TARGET]
    new = BenchmarkData(m, data.scores.iloc[0:0], data.benchmarks, source="empty.csv")
    a = forecast_from_scores(small_fit, new, seed=5).draws.isel(model=0)
    flops = float(m["flops_1e21"].iloc[0]) * 1e21
    b = forecast_compute(small_fit, ("Llama-2", flops), seed=6).draws.isel(model=0)
    for bench in ["mmlu", "gsm8k", "humaneval"]:
        x, y = a.sel(benchmark=bench).values, b.sel(benchmark=bench).values
        se = np.sqrt(x.var() / len(x) + y.var() / len(y))
        assert abs(x.mean() - y.mean()) < 4 * se + 1e-3
        assert 0.85 < x.std() / y.std() < 1.15


def test_unknown_family_and_flops_still_conditions(small_fit):
    _, new = _split(load_shipped(), TARGET, GIVEN)
    models = new.models.assign(family=np.nan, flops_1e21=np.nan, params_b=np.nan)
    anon = BenchmarkData(models, new.scores, new.benchmarks, source="anon.csv")
    t = forecast_from_scores(small_fit, anon, seed=2).table.set_index("benchmark")
    assert abs(t.loc["hellaswag", "mean"] - t.loc["hellaswag", "observed"]) < 0.01


def test_benchmark_not_in_fit_is_a_clear_error(small_fit):
    data = load_shipped(groups="all")
    m = data.models[data.models["model"] == TARGET]
    s = data.scores[
        (data.scores["model"] == TARGET) & (data.scores["benchmark"] == "parsinlu_qa_2_acc")
    ]
    new = BenchmarkData(m, s, data.benchmarks, source="extra.csv")
    with pytest.raises(DataError, match="extra.csv.*not part of the fit"):
        forecast_from_scores(small_fit, new)


@pytest.mark.slow
def test_agrees_with_a_full_refit():
    """Conditioning per posterior draw agrees with refitting the model including the new one."""
    data = load_shipped()
    train, new = _split(data, TARGET, GIVEN)
    kw = dict(draws=1000, tune=1000, chains=4, seed=11, progress=False)
    base = CapabilityModel.fit(train, **kw)
    cond = forecast_from_scores(base, new, seed=1).draws.isel(model=0)
    full_data = BenchmarkData(
        data.models, pd.concat([train.scores, new.scores]), data.benchmarks, source="train+new"
    )
    full = CapabilityModel.fit(full_data, **kw)
    pa = full.posterior
    i = full.inputs.model_ids.index(TARGET)
    theta = full.idata["posterior"].dataset["capability"].stack(sample=("chain", "draw"))
    theta = theta.transpose("sample", "model", "factor").values[:, i]
    _, y = pa.scores(theta, np.random.default_rng(0))
    refit = pa.to_metric(y)
    for bench in ["winogrande", "truthfulqa", "gsm8k", "xwinograd"]:
        j = pa.benchmark_ids.index(bench)
        r = refit[:, j]
        c = cond.sel(benchmark=bench).values
        print(
            f"{bench}: refit {r.mean():.4f}±{r.std():.4f}  conditional {c.mean():.4f}±{c.std():.4f}"
        )
        assert abs(c.mean() - r.mean()) < 0.25 * r.std() + 0.005
        assert 0.8 < c.std() / r.std() < 1.25
        lo_r, hi_r = np.quantile(r, [0.05, 0.95])
        lo_c, hi_c = np.quantile(c, [0.05, 0.95])
        assert abs(lo_c - lo_r) < 0.3 * r.std() + 0.005 and abs(hi_c - hi_r) < 0.3 * r.std() + 0.005
