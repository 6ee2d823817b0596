"""A fit that fails its convergence gate is sampled once more with ``retry`` (the CLI's default)."""

from __future__ import annotations

import obscale_bayes.fit.fitted as fitted
from obscale_bayes.fit.fitted import CapabilityModel
from obscale_bayes.fit.sampling import DEFAULT_TARGET_ACCEPT, RETRY_TARGET_ACCEPT


def _spy(monkeypatch):
    calls = []
    real = fitted.sample

    def sample(model, sampler, **kw):
        calls.append(kw)
        return real(model, sampler, **kw)

    monkeypatch.setattr(fitted, "sample", sample)
    return calls


def test_a_failed_gate_is_sampled_once_more_at_higher_acceptance(monkeypatch, subset):
    calls = _spy(monkeypatch)
    # 2 x 200 draws after 60 warm-up steps fail the gate (R-hat, ESS) but could pass it
    fit = CapabilityModel.fit(subset, draws=200, tune=60, chains=2, progress=False, retry=True)
    assert [c["target_accept"] for c in calls] == [DEFAULT_TARGET_ACCEPT, RETRY_TARGET_ACCEPT]
    assert [c["tune"] for c in calls] == [60, 120]
    assert fit.meta["retried"]  # the first run's failures
    assert fit.meta["target_accept"] == RETRY_TARGET_ACCEPT and fit.meta["tune"] == 120


def test_no_retry_where_the_gate_is_out_of_reach(monkeypatch, subset):
    calls = _spy(monkeypatch)
    # 2 x 30 draws cannot reach a bulk ESS of 400: retrying would only cost time
    fit = CapabilityModel.fit(subset, draws=30, tune=40, chains=2, progress=False, retry=True)
    assert len(calls) == 1 and fit.meta["retried"] == [] and not fit.diagnostics.passed


def test_without_retry_a_failed_gate_is_kept(monkeypatch, subset):
    calls = _spy(monkeypatch)
    fit = CapabilityModel.fit(subset, draws=30, tune=40, chains=2, progress=False)
    assert len(calls) == 1 and fit.meta["retried"] == [] and not fit.diagnostics.passed
