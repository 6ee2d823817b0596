"""Simulation from the model (fast) and parameter recovery at the shipped table's size (slow).

The recovery test simulates a table with the shipped base table's layout (128 models, 40
families, 8 benchmarks, the same missing cells and unknown FLOPs), fits the default model with
nutpie (4 chains x (1000 + 1000): the gate needs no more at this size, and CI time is short)
and checks (a) the convergence gate and (b) that true
capabilities, family efficiencies and non-anchor loadings fall inside their central posterior
intervals at close to the nominal rate.  ``pytest -s`` prints the coverage table;
``studies/recovery.py`` runs it for several seeds and writes ``studies/results/recovery.json``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from obscale_bayes.checks.recovery import binomial_band, interval_coverage
from obscale_bayes.data.tables import BenchmarkData
from obscale_bayes.errors import UsageError
from obscale_bayes.fit.diagnostics import ESS_MIN, RHAT_MAX
from obscale_bayes.model.equations import noise_sd_np
from obscale_bayes.model.inputs import coords_of, prepare_inputs
from obscale_bayes.model.simulate import simulate
from obscale_bayes.model.truth import REALISTIC_FACTORS
from obscale_bayes.spec.spec import load_spec

RECOVERY_SEED = 1


@pytest.fixture(scope="module")
def template(shipped):
    return shipped


@pytest.fixture(scope="module")
def sim(template):
    # the model without family offsets, which this test was sized on (4 x 1000 draws); the
    # offsets' own recovery: tests/model/test_family_offsets.py
    return simulate(template, "no_offsets", seed=RECOVERY_SEED)


# ---------------------------------------------------------------- simulate (fast)
def test_layout_kept(template, sim):
    data, truth = sim
    assert data.model_ids == template.model_ids
    assert data.benchmark_ids == template.benchmark_ids
    pd.testing.assert_frame_equal(data.models, template.models)
    pd.testing.assert_frame_equal(data.benchmarks, template.benchmarks)
    # same missing cells; unknown FLOPs stay unknown in the table but have a true value
    pd.testing.assert_frame_equal(data.wide().isna(), template.wide().isna())
    unknown = template.models["flops_1e21"].isna().to_numpy()
    assert unknown.sum() == 16 and data.models["flops_1e21"].isna().sum() == 16
    assert np.all(np.isfinite(truth["x"].values))
    np.testing.assert_array_equal(truth["x"].values[unknown], truth["x_latent"].values)
    inp = prepare_inputs(template, load_spec())
    np.testing.assert_allclose(truth["x"].values[~unknown], inp.x[~unknown])
    # scores differ from the template's and stay in the metric range
    assert not np.allclose(data.scores["value"], template.scores["value"])
    assert data.scores["value"].between(0.0, 1.0).all()


def test_truth_has_posterior_names_and_coords(template, sim):
    _, truth = sim
    coords = coords_of(prepare_inputs(template, load_spec()))
    for dim in ("model", "family", "benchmark", "factor", "free_benchmark", "latent_flops_model"):
        assert list(truth[dim].values) == [str(c) for c in coords[dim]]
    dims = {
        "capability": ("model", "factor"),
        "efficiency": ("family", "factor"),
        "slope": ("family", "factor"),
        "loading": ("benchmark", "factor"),
        "intercept": ("benchmark",),
        "misfit": ("benchmark",),
        "floor": ("benchmark",),
        "residual_sd": ("factor",),
        "loading_free": ("free_benchmark", "factor"),
        "x_latent": ("latent_flops_model",),
    }
    for name, d in dims.items():
        assert truth[name].dims == d, name
    assert truth.sizes["model"] == 128 and truth.sizes["family"] == 40
    assert truth["capability"].size == 384 and truth["efficiency"].size == 120


def test_truth_in_identified_frame(sim):
    _, truth = sim
    anchor_misfit = load_spec().structure["anchor_misfit"]
    for k, f in enumerate(truth["factor"].values):
        np.testing.assert_array_equal(truth["loading"].sel(benchmark=f).values, np.eye(3)[k])
        assert truth["intercept"].sel(benchmark=f) == 0.0
        assert truth["misfit"].sel(benchmark=f) == anchor_misfit  # fixed, as in the model
    np.testing.assert_array_equal(truth["logit_misfit"].values, 0.0)  # misfit_scale "score"
    assert "logit_misfit_free" not in truth
    assert list(truth["floor_fitted"].values) == [truth["floor"].sel(benchmark="truthfulqa")]
    # realistic defaults: the fitted population values of the shipped table
    for f in truth["factor"].values:
        for key, val in REALISTIC_FACTORS[str(f)].items():
            if key in truth:  # slope_sd: only with family slopes
                assert truth[key].sel(factor=f) == val
    assert 0.005 <= float(truth["misfit_free"].min()) and float(truth["misfit_free"].max()) <= 0.05


def test_scores_follow_the_likelihood(template, sim):
    """Unclipped scores minus the expected score, over the noise sd, are ~ N(0, 1)."""
    data, truth = sim
    inp = prepare_inputs(data, load_spec())
    p = truth["expected_score"].values[inp.obs_model, inp.obs_bench]
    ob = inp.obs_bench
    sd = noise_sd_np(
        p,
        inp.inv_n[ob],
        truth["misfit"].values[ob],
        truth["floor"].values[ob],
        truth["logit_misfit"].values[ob],
    )
    z = (inp.y - p) / sd
    inside = (inp.y > 0) & (inp.y < 1)
    assert inside.mean() > 0.9
    assert abs(z[inside].mean()) < 0.1
    assert 0.9 < z[inside].std() < 1.1
    # capabilities: theta = a_f + b_f x + e with e ~ N(0, residual_sd)
    fam = template.models.set_index("model").loc[truth["model"].values, "family"].values
    a = truth["efficiency"].sel(family=fam).values
    b = truth["slope"].sel(family=fam).values
    e = truth["capability"].values - a - b * truth["x"].values[:, None]
    ratio = e.std(0) / truth["residual_sd"].values
    assert np.all((ratio > 0.75) & (ratio < 1.25))


def test_seeded(template, sim):
    d1, t1 = sim
    d2, t2 = simulate(template, "no_offsets", seed=RECOVERY_SEED)
    assert d1.equals(d2)
    xr.testing.assert_identical(t1, t2)
    d3, _ = simulate(template, "no_offsets", seed=RECOVERY_SEED + 1)
    assert not d1.equals(d3)


def test_overrides(template):
    spec = load_spec()
    tau = np.full(8, 0.02)
    tau[[0, 2, 7]] = spec.structure["anchor_misfit"]  # mmlu, hellaswag, humaneval
    data, truth = simulate(template, spec, seed=3, params={"misfit": tau * 1.0, "residual_sd": 0})
    assert np.all(truth["misfit_free"].values == 0.02)
    # the anchors' misfit is the spec's fixed value: overriding it away is an error
    with pytest.raises(UsageError, match="fixes misfit"):
        simulate(template, spec, seed=3, params={"misfit": 0.0})
    np.testing.assert_array_equal(truth["residual_sd"].values, 0.0)
    fam = template.models.set_index("model").loc[truth["model"].values, "family"].values
    a = truth["efficiency"].sel(family=fam).values
    b = truth["slope"].sel(family=fam).values
    np.testing.assert_allclose(truth["capability"].values, a + b * truth["x"].values[:, None])
    np.testing.assert_array_equal(
        simulate(template, spec, seed=3, params={"residual_sd": [0.5, 0.2, 0.1]})[1]["residual_sd"],
        [0.5, 0.2, 0.1],
    )
    lam = truth["loading"].copy()
    _, t2 = simulate(template, spec, seed=3, params={"loading": lam * 1.0})
    xr.testing.assert_equal(t2["loading"], lam)
    cap = truth["capability"].isel(model=slice(None, None, -1))  # aligned by coordinate
    _, t3 = simulate(template, spec, seed=4, params={"capability": cap})
    xr.testing.assert_equal(t3["capability"], truth["capability"])
    with pytest.raises(UsageError, match="unit vectors"):
        simulate(template, spec, seed=0, params={"loading": 0.5})
    with pytest.raises(UsageError, match="anchors"):
        simulate(template, spec, seed=0, params={"intercept": 1.0})
    with pytest.raises(UsageError, match="unknown parameter"):
        simulate(template, spec, seed=0, params={"loadings": 0.5})
    with pytest.raises(UsageError, match="shape"):
        simulate(template, spec, seed=0, params={"efficiency": np.zeros((2, 3))})
    with pytest.raises(UsageError, match="metadata"):
        simulate(template, spec, seed=0, params={"floor": 0.1})
    with pytest.raises(UsageError, match="logit_misfit"):
        simulate(template, spec, seed=0, params={"logit_misfit": 0.3})


def test_logit_misfit_scale(template):
    spec = load_spec().with_overrides(misfit_scale="logit")
    data, truth = simulate(template, spec, seed=6)
    free = list(truth["free_benchmark"].values)
    anchors = spec.anchors
    assert "logit_misfit_free" in truth and "misfit_free" not in truth
    np.testing.assert_array_equal(truth["logit_misfit"].sel(benchmark=anchors), 0.0)
    assert np.all(truth["logit_misfit"].sel(benchmark=free) > 0)
    np.testing.assert_array_equal(
        truth["misfit"].sel(benchmark=free), spec.structure["misfit_floor"]
    )
    np.testing.assert_array_equal(
        truth["misfit"].sel(benchmark=anchors), spec.structure["anchor_misfit"]
    )
    _, t2 = simulate(template, spec, seed=6, params={"logit_misfit": 0.0})
    np.testing.assert_array_equal(t2["logit_misfit"], 0.0)


@pytest.mark.parametrize("name", ["k1", "k2", "k4", "family_slopes", "student_t"])
def test_other_specs_and_prior_draws(template, name):
    spec = load_spec(name)
    data, truth = simulate(template, spec, seed=5)
    assert list(truth["factor"].values) == spec.anchors
    assert data.scores["value"].between(0.0, 1.0).all()
    if spec.structure["family_slopes"]:
        assert "slope_sd" in truth and not np.allclose(
            truth["slope"].values, truth["slope"].values[:1]
        )
    else:
        assert "slope_sd" not in truth
        assert np.allclose(truth["slope"].values, truth["slope"].values[:1])
    _, tp = simulate(template, spec, seed=5, from_prior=True)
    assert np.all(np.isfinite(tp["capability"].values))


def test_metric_units(template):
    """A benchmark reported in 0-100 gets simulated scores in 0-100."""
    b = template.benchmarks.copy()
    s = template.scores.copy()
    b.loc[b["benchmark"] == "arc_c", ["floor", "metric_max"]] = [25.0, 100.0]
    s.loc[s["benchmark"] == "arc_c", "value"] *= 100.0
    t = BenchmarkData(template.models, s, b, source="percent")
    data, truth = simulate(t, None, seed=2)
    v = data.scores.loc[data.scores["benchmark"] == "arc_c", "value"]
    assert v.between(0, 100).all() and v.max() > 1.0
    data1, _ = simulate(template, None, seed=2)
    v1 = data1.scores.loc[data1.scores["benchmark"] == "arc_c", "value"]
    np.testing.assert_allclose(v.to_numpy() / 100.0, v1.to_numpy(), rtol=1e-12)


def test_interval_coverage_helper():
    rng = np.random.default_rng(0)
    draws = rng.standard_normal((2, 500, 200))
    post = xr.Dataset(
        {"capability": (("chain", "draw", "model"), draws)},
        coords={"model": [f"m{i}" for i in range(200)]},
    )
    truth = xr.Dataset(
        {"capability": ("model", np.zeros(200))}, coords={"model": [f"m{i}" for i in range(200)]}
    )
    cov = interval_coverage(post, truth, ["capability", "absent"], probs=(0.5, 0.9))
    assert list(cov["group"]) == ["capability", "capability"] and list(cov["n"]) == [200, 200]
    assert cov["coverage"].eq(1.0).all()  # 0 is inside every central interval
    lo, hi = binomial_band(384, 0.9)
    assert 0.85 < lo < 0.86 and 0.94 < hi < 0.95


# ---------------------------------------------------------------- recovery (slow)
#: Groups whose coverage is asserted: 384 capabilities, 120 family efficiencies, 15 non-anchor
#: loadings (the identified frame, so truth and posterior are directly comparable).
ASSERTED = ("capability", "efficiency", "loading_free")


@pytest.mark.slow
def test_parameter_recovery(template, sim):
    from obscale_bayes.fit.fitted import CapabilityModel

    data, truth = sim
    fit = CapabilityModel.fit(
        data,
        "no_offsets",
        chains=4,
        draws=1000,
        tune=1000,
        seed=RECOVERY_SEED,
        sampler="nutpie",
        progress=False,
    )
    d = fit.diagnostics
    print()
    print(d.report())
    cov = interval_coverage(fit.idata, truth)
    print(cov.to_string(index=False, float_format=lambda v: f"{v:.3f}"))

    # (a) the convergence gate of `obscale-bayes check`, unchanged, on the synthetic fit
    assert d.max_rhat <= RHAT_MAX, d.report()
    assert d.min_ess_bulk >= ESS_MIN, d.report()
    assert d.divergences == 0, d.report()
    assert d.passed, d.report()

    # (b) coverage.  If the n true values of a group were independent and the intervals exactly
    # calibrated, the number inside a central q-interval would be Binomial(n, q).  The band is
    # q -/+ 3 binomial sd: with 6 asserted figures the chance that a calibrated fit fails one
    # is ~1.6% if they were independent (0.27% each).  3 sd rather than 2 because the values
    # of a group are *not* independent (capabilities share their family's terms and every
    # loading; efficiencies share the population mean and sd), which makes the real spread of
    # the coverage fraction wider than the binomial sd; a genuinely miscalibrated posterior
    # (e.g. intervals half as wide: ~59% coverage at 90%) still fails by a wide margin for the
    # 384 capabilities and 120 efficiencies.  The 15 loadings only give a coarse check
    # (90%: 0.67-1.0).  Bands: capability 90% 0.854-0.946, 50% 0.423-0.577; efficiency 90%
    # 0.818-0.982, 50% 0.363-0.637; loadings 90% 0.668-1.0, 50% 0.113-0.887.
    for group in ASSERTED:
        for q in (0.5, 0.9):
            row = cov[(cov["group"] == group) & (cov["prob"] == q)].iloc[0]
            lo, hi = binomial_band(int(row["n"]), q, z=3.0)
            assert lo <= row["coverage"] <= hi, (
                f"{group}: {row['covered']}/{row['n']} = {row['coverage']:.3f} inside the central "
                f"{q:.0%} intervals, outside [{lo:.3f}, {hi:.3f}]\n{cov}"
            )
    assert {int(n) for n in cov.loc[cov["group"].isin(ASSERTED), "n"]} == {384, 120, 15}
