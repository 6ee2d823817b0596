"""Baselines: sigmoid recovery, PCA imputation, FLOPs methods, and the paper's reference MSEs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit

from obscale_bayes.errors import UsageError
from obscale_bayes.evaluation.baselines import (
    FamilyInterceptFlops,
    FlopsOnly,
    PaperPCAMethod,
    TrainingFrame,
    fit_sigmoid,
)
from obscale_bayes.evaluation.cases import paper_case
from obscale_bayes.evaluation.pca import PCA, PCAImputer
from obscale_bayes.evaluation.presets import ANALYSES, DEFAULT_RAW_DIR, read_raw_tables

HAVE_RAW = (DEFAULT_RAW_DIR / "base_llm_benchmark_eval.csv").exists()
needs_raw = pytest.mark.skipif(not HAVE_RAW, reason="shared upstream tables not available")


def test_fit_sigmoid_recovers_known_parameters():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(200, 2))
    b, w = -0.5, np.array([1.5, -2.0])
    y = expit(b + x @ w)
    fit = fit_sigmoid(x, y, "sigmoid")
    assert fit.bias == pytest.approx(b, abs=1e-5)
    np.testing.assert_allclose(fit.weights, w, atol=1e-5)
    assert fit.floor == 0.0


def test_fit_floored_sigmoid_recovers_floor():
    rng = np.random.default_rng(2)
    x = rng.uniform(-4, 4, size=(300, 1))
    y = 0.12 + 0.88 * expit(0.3 + 1.2 * x[:, 0]) + rng.normal(0, 1e-3, 300)
    fit = fit_sigmoid(x, y, "floored_sigmoid", max_floor=0.2)
    assert fit.floor == pytest.approx(0.12, abs=5e-3)
    assert fit.weights[0] == pytest.approx(1.2, rel=0.03)
    # the floor respects its bound
    y2 = 0.3 + 0.7 * expit(x[:, 0])
    assert fit_sigmoid(x, y2, "floored_sigmoid", max_floor=0.2).floor <= 0.2 + 1e-12


def test_pca_imputer_recovers_rank_one_cells():
    rng = np.random.default_rng(3)
    u = rng.normal(size=40)
    v = rng.normal(size=6)
    center = rng.uniform(0.3, 0.7, size=6)
    scale = rng.uniform(0.02, 0.08, size=6)
    full = center + scale * np.outer(u, v)  # rank 1 after standardizing columns
    x = full.copy()
    mask = rng.random(x.shape) < 0.15
    mask[:, 0] = False
    x[mask] = np.nan
    imp = PCAImputer(1, max_iter=5000, tol=1e-12).fit(x)
    np.testing.assert_allclose(imp.fitted_[mask], full[mask], atol=1e-6)
    # new rows are completed with the fitted model held fixed
    new = center + scale * np.outer(rng.normal(size=5), v)
    new_obs = new.copy()
    new_obs[:, [2, 4]] = np.nan
    np.testing.assert_allclose(imp.transform(new_obs), new, atol=1e-6)


def test_pca_imputer_clips_to_unit_interval():
    x = np.array([[0.1, 0.2], [0.5, 0.6], [0.99, np.nan], [0.0, 0.05]])
    out = PCAImputer(1).fit_transform(x)
    assert np.all((out >= 0) & (out <= 1))


def test_pca_matches_svd_variance():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(50, 4)) @ np.diag([3, 2, 1, 0.1])
    pca = PCA(2).fit(x)
    scores = pca.transform(x)
    np.testing.assert_allclose(scores.var(axis=0, ddof=1), pca.explained_variance_, rtol=1e-10)
    assert pca.explained_variance_ratio_[0] > pca.explained_variance_ratio_[1]


def _synthetic_frame(seed=5, n=60):
    rng = np.random.default_rng(seed)
    fams = np.array(["a", "b", "c"])[rng.integers(0, 3, n)]
    eff = pd.Series({"a": 0.0, "b": 0.8, "c": -0.6})
    x = rng.uniform(20, 25, n)
    cap = eff[fams].to_numpy() + 1.3 * (x - 22.5)
    inputs = pd.DataFrame(
        {f"b{j}": expit(0.5 * j * 0.2 + cap * (0.6 + 0.1 * j)) for j in range(5)},
        index=[f"m{i}" for i in range(n)],
    )
    target = pd.Series(expit(-0.5 + 1.5 * cap), index=inputs.index)
    return TrainingFrame(
        inputs,
        target,
        pd.Series(fams, index=inputs.index),
        pd.Series(x, index=inputs.index),
    )


def test_paper_method_fits_low_rank_synthetic_data():
    frame = _synthetic_frame()
    inputs = frame.inputs.copy()
    inputs.iloc[::7, 2] = np.nan
    frame = TrainingFrame(inputs, frame.target, frame.family, frame.log10_flops)
    train = frame.subset(frame.log10_flops <= 23.5)
    test = frame.subset(frame.log10_flops > 23.5)
    pred = PaperPCAMethod(3).fit(train).predict(test)
    assert np.mean((pred - test.target.to_numpy()) ** 2) < 1e-3


def test_flops_methods_skip_models_without_flops():
    frame = _synthetic_frame()
    flops = frame.log10_flops.copy()
    flops.iloc[:4] = np.nan
    frame = TrainingFrame(frame.inputs, frame.target, frame.family, flops)
    for method in (FlopsOnly(), FamilyInterceptFlops()):
        pred = method.fit(frame).predict(frame)
        assert method.n_skipped_ == 4
        assert np.isnan(pred[:4]).all() and np.isfinite(pred[4:]).all()


def test_family_intercepts_recovered_and_unseen_family_gets_mean():
    frame = _synthetic_frame(n=150)
    m = FamilyInterceptFlops(link="sigmoid", shrinkage=0.0).fit(frame)
    # target = expit(-0.5 + 1.5 * (eff + 1.3 (x - 22.5)))
    assert m.slope_ == pytest.approx(1.5 * 1.3, rel=1e-4)
    a = m.intercepts_
    assert a["b"] - a["a"] == pytest.approx(1.5 * 0.8, abs=1e-3)
    new = TrainingFrame(
        frame.inputs.iloc[:1],
        family=pd.Series(["zzz"], index=frame.inputs.index[:1]),
        log10_flops=pd.Series([22.5], index=frame.inputs.index[:1]),
    )
    assert m.predict(new)[0] == pytest.approx(expit(a.mean() + m.slope_ * 22.5))
    # light shrinkage moves intercepts toward their mean, only a little
    shrunk = FamilyInterceptFlops(link="sigmoid", shrinkage=1e-3).fit(frame).intercepts_
    assert np.ptp(shrunk) <= np.ptp(a) + 1e-9
    assert np.ptp(shrunk) > 0.5 * np.ptp(a)


def test_bad_arguments_raise_usage_error():
    with pytest.raises(UsageError):
        PaperPCAMethod(link="probit")
    with pytest.raises(UsageError):
        FlopsOnly(max_floor=1.5)
    frame = _synthetic_frame()
    with pytest.raises(UsageError):
        FlopsOnly().fit(TrainingFrame(frame.inputs, frame.target))


@needs_raw
def test_paper_method_reproduces_reference_mse():
    """Faithfulness: PC-3 within 10% (Persian QA 50%), FLOPs-only within 10% of the paper."""
    raw = read_raw_tables()
    for a in ANALYSES:
        data = paper_case(a, raw)
        train, test = data.train_frame, data.test_frame
        y = test.target.to_numpy()
        pred = PaperPCAMethod(3, link=a.link).fit(train).predict(test)
        tol = 0.5 if a.key == "persian_qa" else 0.1
        assert np.mean((pred - y) ** 2) == pytest.approx(a.ref_pc3, rel=tol), a.key
        if a.ref_flops is not None:
            fl = FlopsOnly(link=a.link).fit(train).predict(test)
            ok = np.isfinite(fl)
            assert np.mean((fl[ok] - y[ok]) ** 2) == pytest.approx(a.ref_flops, rel=0.1), a.key
