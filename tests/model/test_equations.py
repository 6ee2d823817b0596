"""Each PyTensor link / noise function against its NumPy reference (obscale_bayes.model.equations)."""

from __future__ import annotations

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest

from obscale_bayes.model.equations import (
    floored_sigmoid_np,
    floored_sigmoid_pt,
    inv_items,
    logit_np,
    noise_sd_np,
    noise_sd_pt,
    sigmoid_np,
)

# Linear predictors from deep below to far above the floor, including the extremes +-30.
ETA = np.concatenate([[-30.0, -20.0, -10.0], np.linspace(-6.0, 6.0, 49), [10.0, 20.0, 30.0]])
FLOORS = (0.0, 0.25, 0.5)
# Expected scores on [0, 1] including exactly 0 and 1.
P = np.concatenate([[0.0, 1e-12, 1e-6], np.linspace(0.0, 1.0, 41), [1 - 1e-6, 1.0]])
# 1 / n_items: HumanEval (164), GSM8K (1319), MMLU (14042), an unknown count at the default 1000.
INV_N = 1.0 / np.array([164.0, 1000.0, 1319.0, 14042.0])
MISFIT = (0.0, 0.01, 0.05)


@pytest.fixture(scope="module")
def fsig():
    eta, floor = pt.dvector("eta"), pt.dvector("floor")
    return pytensor.function([eta, floor], floored_sigmoid_pt(eta, floor))


@pytest.fixture(scope="module")
def fnoise():
    p, inv_n, misfit = pt.dvector("p"), pt.dvector("inv_n"), pt.dvector("misfit")
    return pytensor.function([p, inv_n, misfit], noise_sd_pt(p, inv_n, misfit))


@pytest.fixture(scope="module")
def fnoise_logit():
    """The full noise model: score-scale misfit, floor and logit-scale misfit."""
    args = [pt.dvector(n) for n in ("p", "inv_n", "misfit", "floor", "logit_misfit")]
    return pytensor.function(args, noise_sd_pt(*args))


def test_sigmoid_reference_is_stable_and_exact():
    s = sigmoid_np(ETA)
    assert np.all(np.isfinite(s))
    assert np.all((s >= 0.0) & (s <= 1.0))
    assert np.all(np.diff(s) > 0)  # strictly increasing even at +-30
    np.testing.assert_allclose(s, 1.0 / (1.0 + np.exp(-ETA)), rtol=1e-14, atol=0)
    np.testing.assert_allclose(s + sigmoid_np(-ETA), 1.0, rtol=0, atol=1e-15)
    assert sigmoid_np(0.0) == 0.5
    assert sigmoid_np(np.array([-800.0]))[0] == 0.0 and sigmoid_np(np.array([800.0]))[0] == 1.0


def test_logit_inverts_sigmoid():
    eta = np.linspace(-20, 20, 81)
    np.testing.assert_allclose(logit_np(sigmoid_np(eta)), eta, atol=1e-7)
    with np.errstate(divide="ignore"):
        assert logit_np(0.0) == -np.inf and logit_np(1.0) == np.inf


@pytest.mark.parametrize("floor", FLOORS)
def test_floored_sigmoid_pt_matches_numpy(fsig, floor):
    fl = np.full_like(ETA, floor)
    ref = floored_sigmoid_np(ETA, fl)
    got = fsig(ETA, fl)
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-15)
    # limits: the chance floor at eta -> -inf, 1 at eta -> +inf
    assert abs(got[0] - floor) < 1e-12 and abs(got[-1] - 1.0) < 1e-12
    assert np.all(got >= floor) and np.all(got <= 1.0)
    np.testing.assert_allclose(got[ETA == 0.0], floor + (1 - floor) / 2)


def test_floored_sigmoid_mixed_floors(fsig):
    """Per-observation floors (as in the model, one per benchmark) broadcast elementwise."""
    rng = np.random.default_rng(0)
    fl = rng.choice(FLOORS, size=ETA.size)
    np.testing.assert_allclose(fsig(ETA, fl), floored_sigmoid_np(ETA, fl), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("misfit", MISFIT)
@pytest.mark.parametrize("inv_n", INV_N)
def test_noise_sd_pt_matches_numpy(fnoise, inv_n, misfit):
    n = np.full_like(P, inv_n)
    m = np.full_like(P, misfit)
    ref = noise_sd_np(P, n, m)
    got = fnoise(P, n, m)
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=0)
    assert np.all(np.isfinite(got))


@pytest.mark.parametrize("inv_n", INV_N)
def test_smoothed_noise_positive_at_the_edges(fnoise, inv_n):
    """Laplace smoothing: an exact 0 or 1 is consistent with a rate near 1/n, never sd = 0."""
    n = 1.0 / inv_n
    for p in (0.0, 1.0):
        sd = fnoise(np.array([p]), np.array([inv_n]), np.array([0.0]))[0]
        assert sd > 0
        # smoothed rate 1/(n+2): sd = sqrt(r(1-r)/n)
        r = 1.0 / (n + 2.0)
        np.testing.assert_allclose(sd, np.sqrt(r * (1 - r) / n), rtol=1e-12)
        np.testing.assert_allclose(noise_sd_np(p, inv_n, 0.0), sd, rtol=1e-12)
    # symmetric around 1/2 and largest there
    sd = noise_sd_np(P, inv_n, 0.0)
    np.testing.assert_allclose(sd, noise_sd_np(1.0 - P, inv_n, 0.0), rtol=1e-9)
    assert np.argmax(sd) == np.argmin(np.abs(P - 0.5))


@pytest.mark.parametrize("logit_misfit", (0.0, 0.3, 1.5))
@pytest.mark.parametrize("floor", FLOORS)
@pytest.mark.parametrize("inv_n", INV_N[[0, 3]])
def test_noise_sd_logit_misfit_pt_matches_numpy(fnoise_logit, inv_n, floor, logit_misfit):
    """Logit-scale misfit (delta method) on the grid of expected scores, incl. under the floor."""
    n = np.full_like(P, inv_n)
    args = (P, n, np.full_like(P, 0.005), np.full_like(P, floor), np.full_like(P, logit_misfit))
    ref = noise_sd_np(*args)
    got = fnoise_logit(*args)
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=0)
    assert np.all(np.isfinite(got)) and np.all(got > 0)


def test_logit_misfit_follows_the_curve():
    """sd of the logit misfit = nu * dp/deta: 0 at and under the floor and at 1, max mid-curve."""
    floor, nu = 0.25, 0.8
    eta = np.linspace(-8, 8, 161)
    p = floored_sigmoid_np(eta, floor)
    extra = np.sqrt(noise_sd_np(p, 1e-300, 0.0, floor, nu) ** 2 - noise_sd_np(p, 1e-300, 0.0) ** 2)
    s = sigmoid_np(eta)
    np.testing.assert_allclose(extra, nu * (1 - floor) * s * (1 - s), rtol=1e-6, atol=1e-12)
    assert np.argmax(extra) == np.argmin(np.abs(eta))
    for q in (0.0, 0.2, floor, 1.0):  # at or below the floor, and at 1: sampling noise only
        np.testing.assert_allclose(
            noise_sd_np(q, 1 / 164, 0.0, floor, nu), noise_sd_np(q, 1 / 164, 0.0), rtol=1e-12
        )
    # the defaults (floor 0, no logit misfit) are the plain noise model
    np.testing.assert_allclose(
        noise_sd_np(P, 1 / 164, 0.02, 0.0, 0.0), noise_sd_np(P, 1 / 164, 0.02)
    )


def test_noise_sd_limits():
    # many items: sampling noise vanishes and the misfit is all that is left
    np.testing.assert_allclose(noise_sd_np(P, 1e-12, 0.03), 0.03, rtol=1e-6)
    # no misfit, mid-range: the binomial sd of the smoothed rate
    n = 164.0
    r = (n * 0.3 + 1) / (n + 2)
    np.testing.assert_allclose(noise_sd_np(0.3, 1 / n, 0.0), np.sqrt(r * (1 - r) / n), rtol=1e-12)
    # variances add
    np.testing.assert_allclose(
        noise_sd_np(0.3, 1 / n, 0.02) ** 2, noise_sd_np(0.3, 1 / n, 0.0) ** 2 + 0.02**2, rtol=1e-12
    )
    # the numpy reference clips p outside [0, 1] (rounding in forecasts)
    np.testing.assert_allclose(noise_sd_np(-1e-9, 1 / n, 0.0), noise_sd_np(0.0, 1 / n, 0.0))
    np.testing.assert_allclose(noise_sd_np(1 + 1e-9, 1 / n, 0.0), noise_sd_np(1.0, 1 / n, 0.0))


def test_noise_pt_gradient_finite_at_edges():
    """The sampler needs finite gradients of the log-density also at p = 0 and p = 1."""
    p = pt.dvector("p")
    for sd in (noise_sd_pt(p, 1 / 164.0, 0.0), noise_sd_pt(p, 1 / 164.0, 0.0, 0.25, 0.5)):
        g = pytensor.function([p], pytensor.grad(pt.log(sd).sum(), p))
        assert np.all(np.isfinite(g(np.array([0.0, 0.25, 0.5, 1.0]))))


def test_inv_items_unknown_n():
    got = inv_items(np.array([164.0, np.nan, 0.0, -5.0, np.inf, 1319.0]), 1000)
    np.testing.assert_allclose(got, [1 / 164, 1 / 1000, 1 / 1000, 1 / 1000, 1 / 1000, 1 / 1319])
    assert np.all(np.isfinite(got)) and np.all(got > 0)
    # an unknown count feeds the noise model like a 1000-item benchmark
    np.testing.assert_allclose(noise_sd_np(0.4, got[1], 0.0), noise_sd_np(0.4, 1e-3, 0.0))
