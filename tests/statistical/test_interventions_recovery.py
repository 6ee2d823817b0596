"""Intervention effects recovered from a fit on simulated data with known task parameters:
the compute, capability and from-scores bands cover the true effect."""

from __future__ import annotations

import numpy as np
import pytest

from obscale_bayes.data.tables import load_shipped
from obscale_bayes.errors import UsageError
from obscale_bayes.forecast.interventions import (
    effect_from_scores,
    effect_vs_capability,
    effect_vs_compute,
)
from obscale_bayes.model.equations import floored_sigmoid_np
from obscale_bayes.spec.spec import load_spec

# ---------------------------------------------------------------- recovery (slow)
TASKS = ["gsm8k_5_exact_match,flexible-extract", "gsm8k_cot_8_exact_match,flexible-extract"]


@pytest.fixture(scope="module")
def simulated_fit():
    from obscale_bayes.fit.fitted import CapabilityModel
    from obscale_bayes.model.simulate import simulate

    fams = ["Llama-2", "Qwen1.5", "Pythia", "OPT", "Llama", "Falcon", "Gemma", "Qwen", "Yi",
            "BLOOM", "StarCoder2", "Phi", "Llama-3", "MPT"]  # fmt: skip
    tmpl = load_shipped(benchmarks=["mmlu", "arc_c", "hellaswag", "winogrande", "humaneval",
                                    *TASKS])  # fmt: skip
    keep = tmpl.models.loc[tmpl.models["family"].isin(fams), "model"]
    tmpl = tmpl.subset(models=list(keep))
    # The family-slopes variant, as this test was sized on (2 x 200 draws).  With the default's
    # shared slope this 14-family fit does not converge at that length (R-hat 1.04, bulk ESS 89;
    # 1.03 / 102 at twice the length) and its bands cover 0.61 of the true effects; the default's
    # own recovery is tests/statistical/test_recovery.py.
    spec = load_spec("family_slopes")
    _, first = simulate(tmpl, spec, seed=5)
    loading = first["loading"].copy()
    intercept = first["intercept"].copy()
    # known task parameters: CoT loads more on general capability and starts higher
    loading.loc[{"benchmark": TASKS[0]}] = [1.0, 0.0, 0.3]
    loading.loc[{"benchmark": TASKS[1]}] = [1.5, 0.0, 0.4]
    intercept.loc[{"benchmark": TASKS[0]}] = -1.0
    intercept.loc[{"benchmark": TASKS[1]}] = 0.0
    data, truth = simulate(tmpl, spec, seed=5, params={"loading": loading, "intercept": intercept})
    fit = CapabilityModel.fit(data, spec, draws=200, tune=300, chains=2, cores=1, seed=2,
                              progress=False)  # fmt: skip
    return fit, truth, data


def _truth_p(truth, theta):
    lam = truth["loading"].sel(benchmark=TASKS).to_numpy()
    alpha = truth["intercept"].sel(benchmark=TASKS).to_numpy()
    g = truth["floor"].sel(benchmark=TASKS).to_numpy()
    return floored_sigmoid_np(alpha + theta @ lam.T, g)


@pytest.mark.slow
def test_compute_band_covers_the_true_effect(simulated_fit):
    fit, truth, _ = simulated_fit
    flops = np.logspace(22.5, 24.7, 6)
    x = np.log10(flops) - 21 - truth.attrs["x0"]
    covered, errs = [], []
    for fam in ("Llama-2", "Pythia", "Qwen1.5"):
        t = effect_vs_compute(fit, (TASKS[1], TASKS[0]), fam, flops, residual=False, ci=0.9)
        a = truth["efficiency"].sel(family=fam).to_numpy()
        b = truth["slope"].sel(family=fam).to_numpy()
        p = _truth_p(truth, a + b * x[:, None])
        true_d = p[:, 1] - p[:, 0]
        covered += list((t["lower"] <= true_d) & (true_d <= t["upper"]))
        errs += list(np.abs(t["median"] - true_d))
    assert np.mean(covered) >= 0.8, np.mean(covered)
    assert np.max(errs) < 0.08


@pytest.mark.slow
def test_capability_band_covers_the_true_effect(simulated_fit):
    fit, truth, _ = simulated_fit
    cap = truth["capability"].to_numpy()
    # truth's "typical model at this capability": the least-squares line across the models
    t1 = cap[:, 0]
    coef = np.polyfit(t1, cap, 1)  # (2, K): slope, intercept per factor
    grid = np.array([0.35, 0.45, 0.55, 0.65, 0.75, 0.85])
    th1 = np.log((grid - 0.25) / 0.75) - np.log1p(-(grid - 0.25) / 0.75)
    theta = coef[1] + coef[0] * th1[:, None]
    theta[:, 0] = th1
    p = _truth_p(truth, theta)
    true_d = p[:, 1] - p[:, 0]
    t = effect_vs_capability(fit, (TASKS[1], TASKS[0]), grid, ci=0.9)
    inside = (t["lower"] <= true_d) & (true_d <= t["upper"])
    assert inside.mean() >= 0.8, (t, true_d)
    assert np.max(np.abs(t["median"] - true_d)) < 0.06


@pytest.mark.slow
def test_effect_from_scores_covers_the_true_effect_of_each_model(simulated_fit):
    fit, truth, data = simulated_fit
    models = data.model_ids[::4]
    new = data.subset(models=models, benchmarks=["mmlu", "arc_c", "hellaswag", "winogrande",
                                                 "humaneval"])  # fmt: skip
    t = effect_from_scores(fit, new, (TASKS[1], TASKS[0]), new_evaluation=False, ci=0.9)
    p = truth["expected_score"].sel(model=t["model"].to_list(), benchmark=TASKS).to_numpy()
    true_d = p[:, 1] - p[:, 0]
    inside = (t["lower"] <= true_d) & (true_d <= t["upper"])
    assert len(t) >= 10 and inside.mean() >= 0.75, (inside.mean(), len(t))
    with pytest.raises(UsageError, match="drop the two variants"):
        effect_from_scores(fit, data.subset(models=models[:2]), (TASKS[1], TASKS[0]))
