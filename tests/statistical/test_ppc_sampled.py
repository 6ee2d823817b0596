"""Posterior checks of a sampled K = 1 fit on data simulated from it (correctly specified):
the convergence table against the gate, LOO-PIT uniformity, interval coverage, the
log-likelihood against a NumPy reference, and the check plots."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.figure import Figure
from scipy import stats

from obscale_bayes.checks.ppc import (
    convergence_summary,
    loo_pit_values,
    pit_values,
    ppc_summary,
    predictive_tree,
    uniformity_ks,
)
from obscale_bayes.fit.diagnostics import Diagnostics
from obscale_bayes.fit.fitted import CapabilityModel
from obscale_bayes.model.simulate import simulate
from obscale_bayes.testing import shipped_subset, uncensored_cells


# ---------------------------------------------------------------- slow: a sampled K = 1 fit
@pytest.fixture(scope="module")
def k1_fit():
    data, _ = simulate(shipped_subset(), "k1", seed=11)
    return CapabilityModel.fit(
        data, "k1", draws=400, tune=500, chains=2, seed=1, progress=False, cores=1
    )


@pytest.mark.slow
def test_sampled_fit_checks(k1_fit):
    fit = k1_fit
    # convergence table agrees with the gate of diagnostics.py
    conv = convergence_summary(fit)
    assert conv["group"].iloc[-1] == "sampler"
    assert {"capability", "efficiency", "loading_free"} <= set(conv["group"])
    assert conv.attrs["gate_passed"] == bool(conv["passed"].all())
    assert isinstance(fit.diagnostics, Diagnostics)
    assert conv.attrs["gate_passed"] == fit.diagnostics.passed

    # log-likelihood from PyMC equals the NumPy normal log-density of the same cells
    tree = predictive_tree(fit)
    cp = tree["cell_params"].dataset
    y = fit.idata["observed_data"].dataset["score"].to_numpy()
    ll = tree["log_likelihood"].dataset["score"].to_numpy()
    np.testing.assert_allclose(ll, stats.norm.logpdf(y, cp["mu"], cp["sd"]), atol=1e-8)

    # correctly specified: LOO-PIT roughly uniform, PPC intervals cover about as often as stated
    inside = uncensored_cells(fit)
    lpit = loo_pit_values(fit).to_numpy()
    assert np.all((lpit >= 0) & (lpit <= 1))
    ks, p = uniformity_ks(lpit[inside])
    assert p > 0.001, (ks, p)
    summ = ppc_summary(fit, ci=0.9)
    assert list(summ["benchmark"]) == fit.inputs.benchmark_ids
    cov = np.average(summ["coverage"], weights=summ["n"])
    assert 0.85 <= cov <= 0.99, cov
    assert summ["p_mean"].between(0.005, 0.995).all(), summ
    # the posterior-predictive PIT is bunched towards 0.5 (data used twice), LOO-PIT less so
    pit = pit_values(fit).to_numpy()[inside]
    assert np.std(pit) < np.std(lpit[inside])


@pytest.mark.slow
def test_check_plots(k1_fit):
    from obscale_bayes.plots.checks import plot_loo_by_model, plot_pit, plot_ppc

    fig = plot_ppc(k1_fit, n_draws=10)
    assert isinstance(fig, Figure) and len([a for a in fig.axes if a.get_visible()]) == 8
    for kind in ("loo", "ppc"):
        assert isinstance(plot_pit(k1_fit, kind=kind), Figure)
    assert isinstance(plot_loo_by_model(k1_fit, n=5), Figure)
