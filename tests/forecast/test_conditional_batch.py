"""The batched sampler of fill in the blanks (:mod:`obscale_bayes.forecast.laplace_is`).

Its derivatives against finite differences of the target, its draws against the exact
conditional on a grid (a skewed, three-dimensional target), and reproducibility: same seed, same
numbers, and a model's numbers do not depend on the models forecast with it.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy import stats

from obscale_bayes import testing
from obscale_bayes.data.tables import BenchmarkData, load_shipped
from obscale_bayes.forecast.conditional import ConditionalTarget, forecast_from_scores, theta_prior
from obscale_bayes.forecast.laplace_is import (
    find_modes,
    importance_resample,
)


def _target(fit, benches, values, draws=None, family="Pythia", flops=20.0):
    pa = fit.posterior
    if draws is not None:  # every draw a copy of draw 0: one target, many samples of it
        pa = dataclasses.replace(
            pa,
            **{
                f.name: np.repeat(getattr(pa, f.name)[:1], draws, axis=0)
                for f in dataclasses.fields(pa)
                if isinstance(getattr(pa, f.name), np.ndarray)
                and getattr(pa, f.name).shape[:1] == (pa.n_samples,)
            },
        )
    j = np.array([pa.benchmark_ids.index(b) for b in benches])
    mean, cov = _prior(fit, pa, family, flops)
    return pa, ConditionalTarget(pa, mean, cov, j, np.asarray(values, float), fit.spec.structure)


def _prior(fit, pa, family, flops):
    mean, cov = theta_prior(fit, family, flops, float("nan"))
    s = pa.n_samples
    if len(mean) != s:
        mean, cov = np.repeat(mean[:1], s, axis=0), np.repeat(cov[:1], s, axis=0)
    return mean, cov


@pytest.fixture(scope="module")
def downstream_fit():
    data = load_shipped(groups=["standard", "emergent"]).subset(
        models=load_shipped().models["model"].tolist()[:40]
    )
    return testing.prior_fit(data, "downstream", draws=10, chains=1, seed=1)


def _check_derivatives(target, theta):
    f, g, neg_h = target.derivatives(theta)
    np.testing.assert_allclose(f, target(theta), rtol=1e-12, atol=1e-9)
    k, h = theta.shape[-1], 1e-5
    eye = np.eye(k) * h
    g_fd = np.stack(
        [(target(theta + eye[i]) - target(theta - eye[i])) / (2 * h) for i in range(k)], 1
    )
    scale = np.abs(g_fd).max() + 1.0
    np.testing.assert_allclose(g, g_fd, atol=1e-4 * scale)
    h_fd = np.stack(
        [(target.derivatives(theta + eye[i])[1] - target.derivatives(theta - eye[i])[1]) / (2 * h)
         for i in range(k)], 1)  # fmt: skip
    np.testing.assert_allclose(neg_h, -h_fd, atol=1e-3 * (np.abs(h_fd).max() + 1.0))


def test_derivatives_match_finite_differences(mock_fit):
    _, target = _target(mock_fit, ["arc_c", "gsm8k", "humaneval", "mmlu"], [0.4, 0.05, 0.0, 0.3])
    theta = target.mean + np.random.default_rng(0).normal(0, 0.3, target.mean.shape)
    _check_derivatives(target, theta)


def test_derivatives_on_the_bounded_scale(downstream_fit):
    pa = downstream_fit.posterior
    bounded = [b for b, on in zip(pa.benchmark_ids, pa.bounded, strict=True) if on][:3]
    assert bounded  # downstream puts emergent tasks on the bounded capability scale
    _, target = _target(
        downstream_fit, ["mmlu", *bounded], [0.45, 0.1, 0.3, 0.05][: 1 + len(bounded)]
    )
    assert target.bounded is not None
    theta = target.mean + np.random.default_rng(1).normal(0, 0.3, target.mean.shape)
    _check_derivatives(target, theta)


def test_modes_are_maxima(mock_fit):
    _, target = _target(mock_fit, ["arc_c", "gsm8k", "humaneval"], [0.4, 0.05, 0.0])
    mode, low = find_modes(target, target.mean)
    f0 = target(mode)
    rng = np.random.default_rng(2)
    for _ in range(5):
        assert (target(mode + rng.normal(0, 0.02, mode.shape)) <= f0 + 1e-6).all()
    # the proposal's precision is the negative Hessian near the mode, where the Newton
    # decrement (the rise in log density a further step would bring) is negligible
    _, g, neg_h = target.derivatives(mode)
    assert np.all(np.linalg.eigvalsh(np.matmul(low, np.swapaxes(low, 1, 2))) > 0)
    step = np.linalg.solve(neg_h, g[..., None])[..., 0]
    assert np.max(np.sum(g * step, axis=-1)) < 1e-3


@pytest.fixture(scope="module")
def truth_4000():
    """Simulated parameters near the real fit's, as 4000 identical draws: one target."""
    data, truth = testing.synthetic_table("default", 0)
    return testing.truth_fit(data, truth, "default", draws=4000, variables=list(truth.data_vars))


def test_draws_follow_the_exact_conditional(truth_4000):
    """A new family's model with StableLM-2-1.6B's four scores: capability 1 (MMLU, not given)
    has a long tail towards the chance floor (skew -2.7; the Laplace approximation's 5%
    quantile is 1 sd off).  The draws' quantiles against the target's on a grid."""
    fit = truth_4000
    pa = fit.posterior
    mean, cov = theta_prior(fit, None, 19.2, float("nan"))
    j = [pa.benchmark_ids.index(b) for b in ["hellaswag", "winogrande", "gsm8k", "humaneval"]]
    y = np.array([0.70, 0.65, 0.17, 0.10])
    target = ConditionalTarget(pa, mean, cov, np.array(j), y, fit.spec.structure)
    mode, low = find_modes(target, target.mean)
    theta, ess = importance_resample(target, mode, low, [np.random.default_rng(0)], 4)
    assert np.median(ess) > 0.5
    lo, hi = theta.min(0), theta.max(0)
    g = 120
    axes = [
        np.linspace(a - 0.5 * (b - a), b + 0.5 * (b - a), g) for a, b in zip(lo, hi, strict=True)
    ]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
    logp = target.take(slice(0, 1))(grid[None])[0].reshape(g, g, g)
    p = np.exp(logp - logp.max())
    p /= p.sum()
    laplace_sd = np.sqrt(np.diag(np.linalg.inv(low[0] @ low[0].T)))
    probs = [0.05, 0.5, 0.95]
    for k in range(3):
        marg = p.sum(axis=tuple(i for i in range(3) if i != k))
        assert marg[0] + marg[-1] < 1e-4  # the grid holds the target
        cdf = np.cumsum(marg) - marg / 2
        mu = np.sum(axes[k] * marg)
        sd = np.sqrt(np.sum((axes[k] - mu) ** 2 * marg))
        exact = np.interp(probs, cdf, axes[k])
        np.testing.assert_array_less(np.abs(np.quantile(theta[:, k], probs) - exact), 0.15 * sd)
        if k == 0:
            skew = np.sum((axes[k] - mu) ** 3 * marg) / sd**3
            laplace = mode[0, k] + laplace_sd[k] * stats.norm.ppf(probs)
            assert skew < -1.5 and abs(laplace[0] - exact[0]) > 0.5 * sd  # a hard target


def _new(n):
    data = load_shipped()
    names = data.models["model"].tolist()[:n]
    scores = data.scores[data.scores["model"].isin(names)]
    given = scores.groupby("model", sort=False).head(3)
    return BenchmarkData(data.models[data.models["model"].isin(names)], given, data.benchmarks,
                         source="new.csv")  # fmt: skip


def test_same_seed_same_numbers(mock_fit):
    new = _new(3)
    a = forecast_from_scores(mock_fit, new, seed=7)
    b = forecast_from_scores(mock_fit, new, seed=7)
    np.testing.assert_array_equal(a.draws.values, b.draws.values)
    np.testing.assert_array_equal(a.capability.values, b.capability.values)
    assert a.table.equals(b.table)
    c = forecast_from_scores(mock_fit, new, seed=8)
    assert not np.array_equal(a.draws.values, c.draws.values)


def test_a_model_does_not_depend_on_the_others(mock_fit):
    new = _new(3)
    both = forecast_from_scores(mock_fit, new, seed=3).draws.isel(model=0)
    first = new.subset(models=[new.models["model"].iloc[0]])
    alone = forecast_from_scores(mock_fit, first, seed=3).draws.isel(model=0)
    np.testing.assert_allclose(both.values, alone.values, rtol=1e-12, atol=1e-12)
