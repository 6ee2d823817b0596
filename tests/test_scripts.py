"""Smoke tests: every script in ``benchmarks/`` (speed) and ``studies/`` (experiments) runs end to
end at tiny settings and writes its JSON result, so the scripts cannot rot."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
UPSTREAM = ROOT.parent / "shared" / "data" / "obscaling"


def _run(rel: str, *argv: str) -> str:
    """Run a script as a user would (``python SCRIPT ARGS`` from the repo root); its stdout."""
    r = subprocess.run(
        [sys.executable, str(ROOT / rel), *argv], cwd=ROOT, capture_output=True, text=True
    )
    assert r.returncode == 0, f"{rel} failed:\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}"
    return r.stdout


TINY = ["--draws", "30", "--tune", "30", "--chains", "1"]


@pytest.mark.slow
def test_fit_speed_runs(tmp_path):
    out = tmp_path / "fit_speed.json"
    _run("benchmarks/fit_speed.py", *TINY, "--samplers", "nutpie", "--out", str(out))
    assert json.loads(out.read_text())


@pytest.mark.slow
def test_conditional_speed_runs(tmp_path):
    out = tmp_path / "conditional_speed.json"
    _run("benchmarks/conditional_speed.py", *TINY, "--models", "1", "2", "--old-models", "1",
         "--fit", str(tmp_path / "fit.nc"), "--out", str(out))  # fmt: skip
    res = json.loads(out.read_text())
    assert set(res["times"]["new"]) == {"1", "2"} and res["startup_seconds"]


@pytest.mark.slow
def test_gate_seeds_runs_and_keeps_the_other_tables_rows(tmp_path):
    out = tmp_path / "gate_seeds.json"
    common = [*TINY, "--seeds", "0", "--no-resume", "--out", str(out)]
    _run("benchmarks/gate_seeds.py", *common, "--tables", "leaderboard_v2")
    text = _run("benchmarks/gate_seeds.py", *common, "--tables", "simulated")
    rows = json.loads(out.read_text())["rows"]
    assert [r["table"] for r in rows] == ["leaderboard_v2", "simulated"]
    # 30 draws cannot pass the gate, and so are not retried (tests/fit/test_retry.py)
    assert all(r["retry"] and r["first_run_failures"] == [] and not r["passed"] for r in rows)
    assert "simulated" in text and "FAIL" in text


@pytest.mark.slow
def test_recovery_study_runs(tmp_path):
    out = tmp_path / "recovery.json"
    _run("studies/recovery.py", *TINY, "--seeds", "1", "--out", str(out))
    assert json.loads(out.read_text())


@pytest.mark.slow
def test_compare_models_study_runs(tmp_path):
    out = tmp_path / "compare_models.json"
    _run("studies/compare_models.py", *TINY, "--specs", "k1", "k2", "--out", str(out))
    assert json.loads(out.read_text())


@pytest.mark.slow
def test_sbc_study_runs(tmp_path):
    out, fig = tmp_path / "sbc.json", tmp_path / "sbc.png"
    args = ["--reps", "2", "--models", "16", "--families", "5", "--ranks", "19"]
    _run("studies/sbc.py", *TINY, *args, "--out", str(out), "--figure", str(fig))
    assert json.loads(out.read_text())["complete"] and fig.stat().st_size > 0


@pytest.mark.slow
@pytest.mark.skipif(not UPSTREAM.is_dir(), reason="shared upstream tables not available")
def test_subset_selection_study_runs(tmp_path):
    out = tmp_path / "subset_selection.json"
    _run("studies/subset_selection.py", "--fast", "--out", str(out))
    assert json.loads(out.read_text())


@pytest.mark.skipif(not UPSTREAM.is_dir(), reason="shared upstream tables not available")
def test_paper_baselines_study_runs():
    printed = _run("studies/paper_baselines.py")
    assert "pc3/ref" in printed


@pytest.mark.slow
def test_scale_benchmark_runs_and_keeps_finished_rows(tmp_path):
    out, fig = tmp_path / "scale.json", tmp_path / "scale.png"
    args = ["--models", "24", "--benchmarks", "5", "--methods", "advi", "nutpie", *TINY,
            "--iterations", "300", "--out", str(out)]  # fmt: skip
    _run("benchmarks/scale.py", *args, "--plot", str(fig))
    rows = json.loads(out.read_text())["rows"]
    assert [(r["method"], r["status"]) for r in rows] == [("advi", "done"), ("nutpie", "done")]
    assert all(r["cells"] > 0 and r["peak_rss_mb"] > 0 for r in rows) and fig.stat().st_size
    assert "kept from" in _run("benchmarks/scale.py", *args)  # a second run re-fits nothing


@pytest.mark.slow
def test_release_trend_study_runs(tmp_path):
    out = tmp_path / "release_trend.json"
    _run("studies/release_trend.py", *TINY, "--specs", "release", "--no-resume", "--out", str(out))
    rows = json.loads(out.read_text())["rows"]
    assert {r["method"] for r in rows} == {"bayes", "family_flops", "flops_only"}


@pytest.mark.slow
def test_compute_extrapolation_study_runs(tmp_path):
    out = tmp_path / "slopes.json"
    text = _run("studies/compute_extrapolation.py", *TINY, "--specs", "default", "shared_slope",
                "--seeds", "0", "--no-resume", "--out", str(out))  # fmt: skip
    res = json.loads(out.read_text())
    assert "52 train, 25 test" in text and res["verdict"] in ("default", "shared_slope")
    assert {r["spec"] for r in res["rows"] if r["method"] == "bayes"} == {"default", "shared_slope"}
    assert {r["protocol"] for r in res["per_benchmark"]} == {"compute_cutoff", "fill_half"}
    out = tmp_path / "new_anchor.json"
    _run("studies/compute_extrapolation.py", *TINY, "--question", "new_anchor", "--seeds", "0",
         "--out", str(out))  # fmt: skip
    res = json.loads(out.read_text())
    assert res["verdict"] in (0.015, 0.03, 0.05, 0.08, 0.12, 0.16, 0.2)
    assert len(res["rows"]) == 2 * 7 and all(r["n"] == 195 for r in res["rows"])


@pytest.mark.slow
def test_fourth_capability_study_runs(tmp_path):
    out = tmp_path / "stage1.json"
    _run("studies/fourth_capability.py", "--stage", "1", *TINY, "--seeds", "0",
         "--specs", "k4", "--no-resume", "--out", str(out))  # fmt: skip
    res = json.loads(out.read_text())
    assert set(res["passed"]) <= {"k4"} and "k4:" in res["reason"]
    bayes = [r for r in res["rows"] if r["method"] == "bayes" and not r.get("per_benchmark")]
    assert {(r["spec"], r["protocol"]) for r in bayes} == {
        (s, p) for s in ("default", "k4") for p in ("compute_cutoff", "fill_half")
    }
    text = _run("studies/fourth_capability.py", "--stage", "2", *TINY, "--seeds", "0",
                "--stage1", str(out), "--out", str(tmp_path / "stage2.json"))  # fmt: skip
    if not res["passed"]:  # no passer: stage 2 says so and fits nothing
        assert "no candidate passed stage 1" in text


@pytest.mark.slow
def test_benchmark_slopes_study_runs(tmp_path):
    out = tmp_path / "benchmark_slopes.json"
    text = _run("studies/benchmark_slopes.py", *TINY, "--seeds", "0", "--protocols",
                "compute_cutoff", "--out", str(out))  # fmt: skip
    res = json.loads(out.read_text())
    assert res["verdict"] is None  # the rule needs both protocols
    pooled = [r for r in res["rows"] if r["benchmark"] == "all" and r["method"] == "bayes"]
    # both specs on the same cells of both protocols of the compute_cutoff fit
    assert {(r["spec"], r["protocol"], r["n"]) for r in pooled} == {
        (s, p, 195)
        for s in ("default", "benchmark_slopes")
        for p in ("compute_cutoff", "fill_half")
    }
    assert "family_flops" in text and "least_squares" in text
    # question 11: only the candidate is fitted, the default's rows come from a result file
    out2 = tmp_path / "offset_prior.json"
    _run("studies/benchmark_slopes.py", *TINY, "--seeds", "0", "--protocols", "compute_cutoff",
         "--question", "offset_prior", "--base-rows", str(out), "--out", str(out2))  # fmt: skip
    res2 = json.loads(out2.read_text())
    pooled2 = [r for r in res2["rows"] if r["benchmark"] == "all" and r["method"] == "bayes"]
    assert sorted((r["spec"], r["protocol"]) for r in pooled2) == sorted(
        (s, p) for s in ("default", "offset_sd_1") for p in ("compute_cutoff", "fill_half")
    )
    base = {r["protocol"]: r["mae"] for r in pooled if r["spec"] == "default"}
    assert {r["protocol"]: r["mae"] for r in pooled2 if r["spec"] == "default"} == base
    assert sum(r["method"] == "family_flops" for r in res2["rows"] if r["benchmark"] == "all") == 1


def test_compute_anchors_study_runs(tmp_path):
    out = tmp_path / "compute_anchors.json"
    _run("studies/compute_anchors.py", *TINY, "--seeds", "0", "--protocols", "compute_cutoff",
         "--out", str(out))  # fmt: skip
    res = json.loads(out.read_text())
    assert res["verdict"] in (None, 0.015, 0.03, 0.05, 0.08)
    assert len(res["rows"]) == 4 and all(r["n"] == 195 for r in res["rows"])
    # the grid changes the anchors' bands only: a tighter value, narrower bands
    width = {r["value"]: r["width90"] for r in res["rows"]}
    assert width[0.015] < width[0.08]


@pytest.mark.slow
def test_advi_vs_nuts_benchmark_runs(tmp_path):
    out = tmp_path / "advi_vs_nuts.json"
    _run("benchmarks/advi_vs_nuts.py", "--draws", "20", "--tune", "20", "--chains", "1",
         "--iterations", "300", "--protocols", "compute_cutoff", "--no-resume",
         "--out", str(out))  # fmt: skip
    rows = json.loads(out.read_text())["rows"]
    assert {r["inference"] for r in rows if r["method"] == "bayes"} == {"nuts", "advi"}


@pytest.mark.slow
def test_target_rule_study_runs(tmp_path):
    out = tmp_path / "target_rule.json"
    text = _run("studies/target_rule.py", *TINY, "--seeds", "0", "--analyses", "agentboard",
                "gsm8k_plain", "--out", str(out))  # fmt: skip
    res = json.loads(out.read_text())
    assert res["verdict"] in ("lpd", "crps") and "geo-mean MSE ratio crps / lpd" in res["reason"]
    # the inner split: the top third of each analysis' training models (by target / by FLOPs)
    sizes = {(r["analysis"], r["score"]): (r["n_train"], r["n"]) for r in res["rows"]}
    assert sizes == {(f"{a} (inner)", s): n for a, n in (("agentboard", (7, 3)),
                     ("gsm8k_plain", (30, 15))) for s in ("lpd", "crps")}  # fmt: skip
    assert "rule (module docstring) -> score =" in text
    # question 10: the top blocks' log score against the log score, same cells
    out = tmp_path / "target_rule_top.json"
    _run("studies/target_rule.py", *TINY, "--seeds", "0", "--analyses", "agentboard",
         "--question", "top", "--out", str(out))  # fmt: skip
    res = json.loads(out.read_text())
    assert res["verdict"] in ("lpd", "lpd_top") and "lpd_top / lpd" in res["reason"]
    assert {r["score"] for r in res["rows"]} == {"lpd", "lpd_top"}
