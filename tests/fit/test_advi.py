"""The approximate mode (``inference="advi"``): a real fit, recorded as approximate, reloadable,
reported as such by ``check``; the plateau test; big synthetic layouts."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest

from obscale_bayes.cli.main import main
from obscale_bayes.errors import UsageError
from obscale_bayes.fit.fitted import CapabilityModel
from obscale_bayes.fit.sampling import plateau
from obscale_bayes.forecast.compute import forecast_compute
from obscale_bayes.model.layouts import synthetic_layout, synthetic_table


@pytest.fixture(scope="module")
def advi_fit(subset) -> CapabilityModel:
    return CapabilityModel.fit(
        subset, inference="advi", iterations=3000, draws=100, chains=2, seed=4, progress=False
    )


def test_an_advi_fit_is_recorded_as_approximate(advi_fit, subset):
    post = advi_fit.idata["posterior"].dataset
    assert dict(post.sizes)["chain"] == 2 and dict(post.sizes)["draw"] == 100
    assert "sample_stats" not in advi_fit.idata.children
    assert advi_fit.inference == "advi" and advi_fit.meta["iterations"] == 3000
    d = advi_fit.diagnostics
    assert d.approximate and d.inference == "advi" and d.iterations == 3000
    assert np.isnan(d.max_rhat) and d.min_ess_bulk == 200 and d.divergences == 0
    assert "approximate inference: ADVI" in d.report() and "does not apply" in d.report()
    # the draws are not a constant: the approximation has a spread
    cap = post["capability"].to_numpy()
    assert np.all(cap.std(axis=(0, 1)) > 1e-3)


def test_same_seed_same_draws_and_a_fresh_load_forecasts_the_same(advi_fit, subset, tmp_path):
    again = CapabilityModel.fit(
        subset, inference="advi", iterations=3000, draws=100, chains=2, seed=4, progress=False
    )
    a = advi_fit.idata["posterior"].dataset["capability"].to_numpy()
    assert np.array_equal(a, again.idata["posterior"].dataset["capability"].to_numpy())
    path = advi_fit.save(tmp_path / "advi.nc")
    back = CapabilityModel.load(path)
    assert back.inference == "advi" and back.diagnostics.approximate
    fam = subset.models["family"].iloc[0]
    f1 = forecast_compute(advi_fit, (fam, 1e4), seed=1).table
    f2 = forecast_compute(back, (fam, 1e4), seed=1).table
    assert np.allclose(f1["mean"], f2["mean"]) and np.allclose(f1["upper"], f2["upper"])


def test_unknown_inference_is_a_usage_error(subset):
    with pytest.raises(UsageError, match="inference: unknown method 'vi'"):
        CapabilityModel.fit(subset, inference="vi", progress=False)


def test_plateau_test_tells_a_falling_loss_from_a_flat_one():
    rng = np.random.default_rng(0)
    flat = 100 + rng.normal(0, 5, 10_000)
    falling = np.linspace(200, 100, 10_000) + rng.normal(0, 5, 10_000)
    assert plateau(flat)[0]
    ok, improvement, noise = plateau(falling)
    assert not ok and improvement == pytest.approx(10, abs=1) and noise == pytest.approx(5, abs=1)
    assert not plateau(np.r_[flat[:-5], np.nan, flat[-4:]])[0]


def _cli(argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main([str(a) for a in argv])
    return rc, out.getvalue(), err.getvalue()


def test_cli_fit_with_advi_and_check_says_so(tmp_path):
    out = tmp_path / "advi.nc"
    rc, stdout, _ = _cli(["fit", "--out", out, "--inference", "advi", "--iterations", "2000",
                          "--draws", "50", "--chains", "2", "--quiet"])  # fmt: skip
    assert rc == 0 and out.exists()
    assert "ADVI (approximate, 2000 steps)" in stdout
    rc, stdout, _ = _cli(["check", out])
    assert "approximate inference: ADVI" in stdout and rc in (0, 1)
    assert rc == (0 if CapabilityModel.load(out).diagnostics.elbo_converged else 1)


def test_synthetic_layout_has_the_asked_shape():
    d = synthetic_layout(300, 20, missing=0.4, seed=2)
    assert len(d.models) == 300 and len(d.benchmarks) == 20
    assert list(d.benchmarks["benchmark"][:3]) == ["mmlu", "arc_c", "hellaswag"]
    assert d.benchmarks["benchmark"].iloc[-1] == "sim_020"
    share = len(d.scores) / (300 * 20)
    assert 0.55 < share < 0.65
    assert d.scores.groupby("model").size().min() >= 2
    assert 60 < d.models["family"].nunique() < 140  # mean family size ~3.2
    assert 0.05 < d.models["flops_1e21"].isna().mean() < 0.25
    again = synthetic_layout(300, 20, missing=0.4, seed=2)
    assert d.fingerprint() == again.fingerprint()
    with pytest.raises(UsageError, match="missing share"):
        synthetic_layout(100, 8, missing=0.9)


@pytest.mark.slow
def test_advi_agrees_with_nuts_on_a_simulated_table():
    """Mean-field ADVI against NUTS on the same simulated 200 x 12 table: the capabilities'
    posterior means agree, and both recover the truth about equally well (ADVI's intervals are
    narrower, so only its point estimates are held to NUTS's standard)."""
    data, truth = synthetic_table(200, 12, missing=0.3, seed=5)
    kw = dict(draws=300, chains=2, seed=0, progress=False)
    nuts = CapabilityModel.fit(data, tune=300, **kw)
    advi = CapabilityModel.fit(data, inference="advi", **kw)
    assert advi.diagnostics.elbo_converged

    def means(fit):
        c = fit.idata["posterior"].dataset["capability"].mean(("chain", "draw"))
        return c.sel(model=truth["model"]).transpose("model", "factor").to_numpy()

    t = truth["capability"].transpose("model", "factor").to_numpy()
    mn, ma = means(nuts), means(advi)
    for k in range(t.shape[1]):
        assert np.corrcoef(mn[:, k], ma[:, k])[0, 1] > 0.95
    rmse_n, rmse_a = np.sqrt(np.mean((mn - t) ** 2)), np.sqrt(np.mean((ma - t) ** 2))
    assert rmse_a < 1.3 * rmse_n
