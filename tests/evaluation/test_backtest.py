"""Backtest pipeline: the Bayesian model and the baselines on one paper split, and the CLI."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from obscale_bayes.cli.backtest import format_table
from obscale_bayes.cli.main import main
from obscale_bayes.errors import UsageError
from obscale_bayes.evaluation.backtest import run_backtests, targets_report
from obscale_bayes.evaluation.cases import paper_case
from obscale_bayes.evaluation.metrics import calibration_curve
from obscale_bayes.progress import enabled


@pytest.fixture(scope="module")
def agentboard():
    case = paper_case("agentboard")
    with ThreadPoolExecutor(1) as ex:  # any executor; the CLI test below uses the process pool
        summary, cells = run_backtests([case], draws=150, tune=300, chains=2, seed=1, executor=ex)
    return case, summary, cells


def test_paper_case_matches_the_paper_split():
    case = paper_case("gsm8k_cot")
    assert (int(case.train.sum()), int(case.test.sum())) == (47, 28)
    assert case.target == "gsm8k_cot_8_exact_match,flexible-extract"
    assert "gsm8k" not in case.inputs
    # training models are exactly those with FLOPs <= 84e21
    tr = case.models[case.train]
    assert (tr["flops_1e21"] <= 84.0).all()


def test_run_backtests_scores_every_method(agentboard):
    case, summary, cells = agentboard
    s = summary.set_index("method")
    assert list(s.index) == ["bayes", "paper_pca3", "flops_only", "family_flops"]
    assert s.loc["bayes", "n_test"] == 1 and s.loc["bayes", "n_train"] == 10
    b = s.loc["bayes"]
    for col in ("mse", "mae", "crps", "coverage50", "coverage90", "width90"):
        assert np.isfinite(b[col])
    assert b["width90"] > 0
    # instruct models have no compute: FLOPs baselines are not applicable
    assert np.isnan(s.loc["flops_only", "mse"])
    bc = cells[cells["method"] == "bayes"]
    assert (bc["lower90"] <= bc["median"]).all() and (bc["median"] <= bc["upper90"]).all()
    truth = case.transform(case.models.loc[case.test, "raw_target"])
    np.testing.assert_allclose(bc["y"].to_numpy(), truth)


def test_targets_report_and_table(agentboard):
    _, summary, cells = agentboard
    rep = targets_report(summary, cells)
    assert rep["n"] == 1 and rep["n_cells"] == 1
    ratio = (
        summary.set_index("method").loc["bayes", "mse"]
        / summary.set_index("method").loc["paper_pca3", "mse"]
    )
    assert rep["geo_mean_ratio"] == pytest.approx(ratio)
    text = format_table(summary, rep)
    assert "of 1 analyses" in text and "pooled coverage" in text
    cal = calibration_curve(cells)
    assert list(cal["nominal"]) == [0.5, 0.8, 0.9, 0.95]


def test_cli_backtest_json(capsys):
    rc = main(["backtest", "--analysis", "agentboard", "--draws", "100", "--tune", "200",
               "--chains", "2", "--json"])  # fmt: skip
    assert rc == 0
    recs = json.loads(capsys.readouterr().out)
    keys = {"analysis", "task", "method", "split", "n_train", "n_test", "mse", "mae", "crps",
            "coverage50", "coverage80", "coverage90", "coverage95", "width90"}  # fmt: skip
    assert all(set(r) == keys for r in recs)
    assert {r["method"] for r in recs} == {"bayes", "paper_pca3", "flops_only", "family_flops"}


def test_cli_backtest_unknown_analysis(capsys):
    assert main(["backtest", "--analysis", "nope"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown analysis 'nope'" in err[0]


def test_run_loop_reports_through_the_logger_and_checks_its_arguments(capsys):
    cases = [paper_case("agentboard"), paper_case("agentbench")]
    with enabled():
        summary, _ = run_backtests(cases, methods="paper_pca3")  # no fit: baselines only
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2
    assert err[0].startswith("obscale-bayes: [1/2] agentboard: 10 train / 1 test; paper_pca3 mse ")
    assert err[1].startswith("obscale-bayes: [2/2] agentbench: 20 train / 2 test; paper_pca3 mse ")
    assert list(summary["analysis"]) == ["agentboard", "agentbench"]
    with pytest.raises(UsageError, match="named 'agentboard'"):
        run_backtests([cases[0], cases[0]], methods="paper_pca3")
    with pytest.raises(UsageError, match="^methods: unknown method 'pca'"):
        run_backtests(cases, methods="pca")
