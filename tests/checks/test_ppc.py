"""Posterior checks: PIT, posterior predictive replicates, convergence by group, check plots.

Fast tests use a *known-truth fit*: data simulated from the model and a "posterior" whose every
draw is the true parameter set, so the predictive distribution of each cell is exactly the one
that generated it and its PIT values must be Uniform(0, 1).  The slow test samples a K = 1 fit
on simulated data (correctly specified) and checks LOO-PIT uniformity, interval coverage, the
log-likelihood against a NumPy reference, and the convergence table against the gate.
"""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from matplotlib.figure import Figure
from scipy import stats

from obscale_bayes.checks.kfold import cell_log_density
from obscale_bayes.checks.ppc import (
    convergence_summary,
    loo_pit_values,
    pit_values,
    posterior_predictive,
    ppc_summary,
    predictive_tree,
    uniformity_ks,
)
from obscale_bayes.data.tables import load_shipped
from obscale_bayes.errors import UsageError
from obscale_bayes.fit.diagnostics import Diagnostics
from obscale_bayes.fit.fitted import CapabilityModel
from obscale_bayes.model.simulate import simulate
from obscale_bayes.spec.spec import load_spec

# families of a ~50-model subset of the shipped table (small fits, several sizes each)
SUBSET_FAMILIES = ("Pythia", "OPT", "Qwen1.5", "BLOOM", "GPT-Neo/J", "Llama", "Falcon", "Llama-2")


def subset_template():
    d = load_shipped()
    keep = d.models.loc[d.models["family"].isin(SUBSET_FAMILIES), "model"].tolist()
    return d.subset(models=keep)


def truth_fit(spec_name: str = "k1", seed: int = 3, draws: int = 40) -> CapabilityModel:
    """A fit whose posterior is the simulation's truth in every draw (no sampling)."""
    spec = load_spec(spec_name)
    data, truth = simulate(load_shipped(), spec, seed=seed)
    names = ["capability", "loading", "intercept", "floor", "misfit", "logit_misfit"]
    post = xr.concat([truth[names]] * draws, dim="draw").expand_dims(chain=[0])
    post = post.assign_coords(draw=np.arange(draws))
    fit = CapabilityModel(spec, data, xr.DataTree.from_dict({"posterior": post}), None, {})
    inp = fit.inputs
    obs = xr.Dataset(
        {"score": ("obs", inp.y)},
        coords={
            "obs": np.arange(len(inp.y)),
            "obs_model": ("obs", np.asarray(inp.model_ids)[inp.obs_model]),
            "obs_benchmark": ("obs", np.asarray(inp.benchmark_ids)[inp.obs_bench]),
        },
    )
    fit.idata["observed_data"] = xr.DataTree(obs)
    return fit


@pytest.fixture(scope="module")
def tfit():
    return truth_fit()


def interior(fit):
    """Cells not clipped to 0 or 1 by the simulation (censored cells have no continuous PIT)."""
    y = fit.idata["observed_data"].dataset["score"].to_numpy()
    return (y > 0) & (y < 1)


# ---------------------------------------------------------------- fast: known truth
def test_pit_of_the_true_model_is_uniform(tfit):
    pit = pit_values(tfit)
    assert pit.dims == ("obs",) and "obs_benchmark" in pit.coords
    u = pit.to_numpy()[interior(tfit)]
    assert len(u) > 900
    _, p = uniformity_ks(u)
    assert p > 0.001
    # and a wrong predictive (observations shifted by one noise sd) is detected
    cp = predictive_tree(tfit, log_likelihood=False)["cell_params"].dataset
    y = tfit.idata["observed_data"].dataset["score"].to_numpy()
    shifted = stats.norm.cdf(
        (y + cp["sd"].to_numpy()[0, 0] - cp["mu"].to_numpy()[0, 0]) / cp["sd"].to_numpy()[0, 0]
    )
    assert uniformity_ks(shifted[interior(tfit)])[1] < 1e-6


def test_replicates_follow_the_likelihood(tfit):
    rep = posterior_predictive(tfit, seed=1)
    n = tfit.idata["observed_data"].sizes["obs"]
    assert rep.dims == ("sample", "obs") and rep.shape == (40, n)
    assert {"obs_model", "obs_benchmark"} <= set(rep.coords)
    cp = predictive_tree(tfit, seed=1, log_likelihood=False)["cell_params"].dataset
    z = (rep.to_numpy() - cp["mu"].to_numpy()[0]) / cp["sd"].to_numpy()[0]
    # standardised replicates are N(0, 1): KS on 40 x ~985 values
    assert stats.kstest(z.ravel(), "norm").pvalue > 0.001
    # the same seed gives the same replicates; another seed differs
    np.testing.assert_array_equal(rep.to_numpy(), posterior_predictive(tfit, seed=1).to_numpy())
    assert not np.allclose(rep.to_numpy(), posterior_predictive(tfit, seed=2).to_numpy())


def test_student_t_pit_uses_the_t_distribution():
    fit = truth_fit("student_t", seed=5)
    u = pit_values(fit).to_numpy()[interior(fit)]
    assert uniformity_ks(u)[1] > 0.001


def test_uniformity_ks_detects_non_uniform():
    rng = np.random.default_rng(0)
    assert uniformity_ks(rng.uniform(size=500))[1] > 0.001
    assert uniformity_ks(rng.beta(2, 2, size=500))[1] < 1e-4
    assert np.isnan(uniformity_ks([])[0])


# ---------------------------------------------------------------- slow: a sampled K = 1 fit
@pytest.fixture(scope="module")
def k1_fit():
    data, _ = simulate(subset_template(), "k1", seed=11)
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
    inside = interior(fit)
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


def test_cell_log_density_of_a_point_posterior_is_the_likelihood(tfit):
    data = tfit.data
    cells = data.scores.sample(50, random_state=0)
    got = cell_log_density(tfit, cells)
    # the fit's observed cells are the scores in table order (prepare_inputs keeps it)
    cp = predictive_tree(tfit, log_likelihood=False)["cell_params"].dataset
    pos = data.scores.index.get_indexer(cells.index)
    y = tfit.idata["observed_data"].dataset["score"].to_numpy()[pos]
    want = stats.norm.logpdf(y, cp["mu"].to_numpy()[0, 0, pos], cp["sd"].to_numpy()[0, 0, pos])
    np.testing.assert_allclose(got, want, rtol=1e-10)
    with pytest.raises(UsageError, match="does not know"):
        cell_log_density(tfit, cells.assign(model="no/such-model"))
