"""Fit files written before the re-housing (flat modules, ``fit.forecast`` method) still load
and give the same forecasts.

``data/fit_before_rehousing.nc`` was written by the package at commit 5ff85a1 (the last one
before the move): the default spec on 19 models of Llama-2, Pythia, Qwen1.5 and Mistral, one
chain of 30 draws; ``..._forecast.csv`` is that code's ``fit.forecast([("Llama-2", 8.4e24),
("NewFamily", 1e24)], ci=0.9, seed=0).table``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from obscale_bayes import CapabilityModel, forecast_compute

HERE = Path(__file__).resolve().parent / "data"
TARGETS = [("Llama-2", 8.4e24), ("NewFamily", 1e24)]


def test_a_fit_written_before_the_move_loads_and_forecasts_the_same():
    fit = CapabilityModel.load(HERE / "fit_before_rehousing.nc")
    assert fit.spec.name == "default"
    # written before the fitted floors: it keeps its metadata floors (and forecasts as then)
    assert fit.spec.structure["fitted_floors"] == "blank"
    assert len(fit.data.models) == 19
    new = forecast_compute(fit, TARGETS, ci=0.9, seed=0).table
    old = pd.read_csv(HERE / "fit_before_rehousing_forecast.csv")
    assert list(new["model"]) == list(old["model"])
    assert list(new["benchmark"]) == list(old["benchmark"])
    for col in ("mean", "median", "lower", "upper"):
        np.testing.assert_allclose(new[col].to_numpy(), old[col].to_numpy(), rtol=1e-12)


def test_the_old_forecast_method_names_its_replacement():
    fit = CapabilityModel.load(HERE / "fit_before_rehousing.nc")
    with pytest.raises(AttributeError, match=r"forecast_compute\(fit"):
        fit.forecast(TARGETS)
    with pytest.raises(AttributeError, match=r"forecast_from_scores\(fit"):
        fit.forecast_from_scores(None)
