"""Forecasts from observed scores ("fill in the blanks") without refitting.

The slow test compares against the honest answer: a full refit that includes the new model
with its partial scores.
"""

from __future__ import annotations

import numpy as np
import pytest

from obscale_bayes.data.tables import BenchmarkData, load_shipped
from obscale_bayes.errors import DataError
from obscale_bayes.fit.fitted import CapabilityModel
from obscale_bayes.forecast.compute import forecast_compute
from obscale_bayes.forecast.conditional import forecast_from_scores
from obscale_bayes.spec.spec import load_spec
from obscale_bayes.testing import hold_out_scores

TARGET = "meta-llama/Llama-2-13b-hf"
GIVEN = ["mmlu", "hellaswag", "arc_c", "humaneval"]


@pytest.fixture(scope="module")
def small_fit() -> CapabilityModel:
    data = load_shipped()
    train, _ = hold_out_scores(data, TARGET, GIVEN)
    # new models' anchors as noisy as the fit's own, so that a given MMLU pins the capability
    # (tests/forecast/test_new_model_anchor.py covers the default's looser anchors)
    spec = load_spec("default").with_overrides(new_model_anchor_misfit=None)
    return CapabilityModel.fit(train, spec, draws=250, tune=400, chains=2, seed=3, progress=False)


def test_given_scores_are_reproduced_and_blanks_banded(small_fit):
    _, new = hold_out_scores(load_shipped(), TARGET, GIVEN)
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
    _, new = hold_out_scores(load_shipped(), TARGET, GIVEN)
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
