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
    # 2 x 30 draws cannot reach a bulk ESS of 400: both runs fail, so there are exactly two
    fit = CapabilityModel.fit(subset, draws=30, tune=40, chains=2, progress=False, retry=True)
    assert [c["target_accept"] for c in calls] == [DEFAULT_TARGET_ACCEPT, RETRY_TARGET_ACCEPT]
    assert [c["tune"] for c in calls] == [40, 80]
    assert not fit.diagnostics.passed
    assert any("ESS" in f for f in fit.meta["retried"])
    assert fit.meta["target_accept"] == RETRY_TARGET_ACCEPT and fit.meta["tune"] == 80


def test_without_retry_a_failed_gate_is_kept(monkeypatch, subset):
    calls = _spy(monkeypatch)
    fit = CapabilityModel.fit(subset, draws=30, tune=40, chains=2, progress=False)
    assert len(calls) == 1 and fit.meta["retried"] == [] and not fit.diagnostics.passed
