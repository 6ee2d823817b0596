"""The command line end to end on a small synthetic table (one short fit shared by the module)."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from obscale_bayes.cli.main import main
from obscale_bayes.data.reader import read_tables
from obscale_bayes.errors import DataError, UsageError

BENCHES = ["mmlu", "arc_c", "hellaswag", "winogrande", "gsm8k"]
FLOORS = {"mmlu": 0.25, "arc_c": 0.25, "hellaswag": 0.25, "winogrande": 0.5, "gsm8k": 0.0}
SPEC = """\
name = "synthetic"
description = "K=2 for the CLI tests"

[structure]
n_factors = 2
anchors = ["mmlu", "hellaswag"]
noncentered_factors = []
"""
FIELDS = {"model", "family", "flops", "benchmark", "mean", "median", "lower", "upper", "ci"}


def synthetic_table(seed: int = 0) -> pd.DataFrame:
    """12 models of 3 families x 5 standard benchmarks, drawn from a 2-factor scaling model."""
    rng = np.random.default_rng(seed)
    rows = []
    loading = {
        "mmlu": (1.0, 0.0),
        "arc_c": (0.6, 0.5),
        "hellaswag": (0.0, 1.0),
        "winogrande": (0.3, 0.6),
        "gsm8k": (1.2, 0.1),
    }
    intercept = {"mmlu": 0.0, "arc_c": -0.3, "hellaswag": 0.0, "winogrande": -0.2, "gsm8k": -1.5}
    for f, (fam, eff) in enumerate([("Alpha", -0.4), ("Beta", 0.0), ("Gamma", 0.5)]):
        for i, log_f in enumerate([0.5, 1.2, 1.9, 2.6]):
            x = log_f + 0.1 * f - 1.5
            theta = np.array([eff + 0.9 * x, eff + 1.1 * x + 1.0]) + 0.1 * rng.standard_normal(2)
            params = 10 ** (log_f / 2)
            row = {
                "model": f"{fam.lower()}/m{i}",
                "family": fam,
                "params_b": round(params, 3),
                "tokens_t": round(10 ** (log_f + 0.1 * f) / (6 * params), 4),
                "flops_1e21": round(10 ** (log_f + 0.1 * f), 4),
            }
            for b in BENCHES:
                eta = intercept[b] + np.dot(loading[b], theta)
                p = FLOORS[b] + (1 - FLOORS[b]) / (1 + np.exp(-eta))
                row[b] = round(float(np.clip(p + 0.01 * rng.standard_normal(), 0, 1)), 4)
            rows.append(row)
    return pd.DataFrame(rows)


def run(argv: list[str]) -> tuple[int, str, str]:
    """``main(argv)`` with stdout and stderr captured."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main([str(a) for a in argv])
    return rc, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("cli")
    synthetic_table().to_csv(d / "table.csv", index=False)
    (d / "spec.toml").write_text(SPEC, encoding="utf-8")
    return d


@pytest.fixture(scope="module")
def fitted(work) -> tuple[Path, int, str, str]:
    out = work / "fits" / "fit.nc"
    rc, stdout, stderr = run(
        ["fit", "--spec", work / "spec.toml", "--data", work / "table.csv", "--out", out]
        + ["--draws", 100, "--tune", 200, "--chains", 2, "--seed", 1, "--quiet"]
    )
    return out, rc, stdout, stderr


def test_fit_writes_a_fit_and_prints_the_report(fitted):
    out, rc, stdout, stderr = fitted
    assert rc == 0, stderr
    assert out.is_file()
    assert "convergence gate:" in stdout and "max R-hat" in stdout
    assert "spec 'synthetic', 12 models x 5 benchmarks" in stdout
    assert not [p for p in out.parent.iterdir() if p.name != out.name]  # no temp files left


def test_check_prints_the_report_and_gates(fitted):
    out, *_ = fitted
    rc, stdout, stderr = run(["check", out])
    assert rc in (0, 1) and stderr == ""
    assert "convergence gate: " + ("PASS" if rc == 0 else "FAIL") in stdout
    assert "min bulk ESS" in stdout and "divergences" in stdout


def test_forecast_table(fitted):
    out, *_ = fitted
    rc, stdout, stderr = run(
        [
            "forecast",
            out,
            "--family",
            "Gamma",
            "--flops",
            "4e24",
            "--family",
            "Newcomer",
            "--flops",
            "1e23",
        ]
    )
    assert rc == 0, stderr
    assert "Gamma at 4e+24 FLOPs: known family, 4 models;" in stdout
    assert "x the compute of its largest model, gamma/m3" in stdout
    assert "Newcomer at 1e+23 FLOPs: family not in the fit" in stdout
    assert stdout.count("90% interval") == 2
    for name in ("MMLU", "ARC-C", "HellaSwag", "Winogrande", "GSM8K"):
        assert stdout.count(name) == 2


def test_forecast_json_schema_and_ci(fitted):
    out, *_ = fitted
    rc, stdout, _ = run(
        [
            "forecast",
            out,
            "--family",
            "Alpha",
            "--flops",
            "1e22",
            "--family",
            "Beta",
            "--flops",
            "2e24",
        ]
        + ["--ci", "0.8", "--json"]
    )
    assert rc == 0
    recs = json.loads(stdout)
    assert len(recs) == 2 * len(BENCHES)
    for r in recs:
        assert set(r) == FIELDS
        assert r["ci"] == 0.8 and r["benchmark"] in BENCHES
        assert 0 <= r["lower"] <= r["median"] <= r["upper"] <= 1
        assert r["lower"] <= r["mean"] <= r["upper"]
    assert [r["family"] for r in recs] == ["Alpha"] * 5 + ["Beta"] * 5
    assert {r["flops"] for r in recs} == {1e22, 2e24}
    # more compute, higher median score (same benchmark, similar families)
    med = {(r["family"], r["benchmark"]): r["median"] for r in recs}
    assert med[("Beta", "mmlu")] > med[("Alpha", "mmlu")]


def test_forecast_same_seed_same_json(fitted):
    out, *_ = fitted
    args = [
        "forecast",
        out,
        "--family",
        "Beta",
        "--flops",
        "1e23",
        "--family",
        "New",
        "--flops",
        "1e23",
        "--json",
    ]
    a = run([*args, "--seed", "7"])[1]
    b = run([*args, "--seed", "7"])[1]
    c = run([*args, "--seed", "8"])[1]
    assert a == b
    assert a != c


def test_forecast_plot_is_a_png(fitted, tmp_path):
    out, *_ = fitted
    png = tmp_path / "figs" / "curves.png"
    rc, stdout, stderr = run(
        [
            "forecast",
            out,
            "--family",
            "Alpha",
            "--flops",
            "1e24",
            "--family",
            "Zeta",
            "--flops",
            "1e23",
        ]
        + ["--plot", png]
    )
    assert rc == 0, stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png.stat().st_size > 10_000
    assert "wrote the figure" in stderr
    assert [p.name for p in png.parent.iterdir()] == ["curves.png"]


def test_forecast_from_scores(fitted, tmp_path):
    pytest.importorskip("obscale_bayes.forecast.conditional")
    out, *_ = fitted
    new = tmp_path / "new.csv"
    new.write_text(
        "model,family,flops_1e21,mmlu,arc_c,hellaswag,winogrande,gsm8k\n"
        "me/known,Beta,50,0.45,,0.70,,\n"
        "me/anon,,,0.40,0.45,,,\n",
        encoding="utf-8",
    )
    rc, stdout, stderr = run(["forecast", out, "--models", new])
    assert rc == 0, stderr
    assert "me/known, family Beta, 5e+22 FLOPs: conditioned on its 2 observed scores" in stdout
    assert "me/anon, family unknown, FLOPs unknown: conditioned on its 2 observed scores" in stdout
    rc, stdout, _ = run(["forecast", out, "--models", new, "--json"])
    recs = json.loads(stdout)
    assert {r["model"] for r in recs} == {"me/known", "me/anon"}
    assert all(set(r) == FIELDS for r in recs)
    blank = [r for r in recs if r["model"] == "me/known" and r["benchmark"] == "gsm8k"]
    assert len(blank) == 1 and blank[0]["lower"] < blank[0]["upper"]


def test_read_tables_concatenates_and_rejects_a_model_in_two_files(tmp_path):
    t = synthetic_table()
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    t.iloc[:6].to_csv(a, index=False)
    t.iloc[6:].to_csv(b, index=False)
    whole = tmp_path / "whole.csv"
    t.to_csv(whole, index=False)
    both = read_tables([str(a), str(b)])
    assert both.equals(read_tables([str(whole)]))
    t.iloc[5:].to_csv(b, index=False)
    with pytest.raises(DataError, match=r"model 'beta/m1' appears in both .*a\.csv and .*b\.csv"):
        read_tables([str(a), str(b)])
    with pytest.raises(UsageError, match="given twice"):
        read_tables([str(a), str(a)])


def test_help_and_version_exit_zero(capsys):
    assert main(["--help"]) == 0
    assert "quickstart" in capsys.readouterr().out
    assert main(["--version"]) == 0
    assert main(["forecast", "--help"]) == 0


@pytest.mark.slow
def test_quickstart_reuses_a_current_fit(tmp_path):
    """quickstart on the shipped data: reuse a (short) current fit, print forecasts, plot."""
    from obscale_bayes.cli.fit import table_anchors
    from obscale_bayes.data.tables import load_shipped
    from obscale_bayes.fit.fitted import CapabilityModel
    from obscale_bayes.spec.spec import load_spec

    out, png = tmp_path / "default.nc", tmp_path / "default_forecast.png"
    v2, v2png = tmp_path / "v2.nc", tmp_path / "v2.png"
    short = {"draws": 100, "tune": 150, "chains": 2, "seed": 0, "progress": False}
    CapabilityModel.fit(load_shipped(), **short).save(out)
    d2 = load_shipped("leaderboard_v2")
    CapabilityModel.fit(d2, table_anchors(load_spec("no_offsets"), d2), **short).save(v2)
    argv = ["quickstart", "--out", out, "--plot", png, "--v2-out", v2, "--v2-plot", v2png]
    rc, stdout, stderr = run(argv)
    assert rc == 0, stderr
    assert stderr.count("reusing") == 2
    # the second fit: the OLL v2 benchmarks, no family offsets, anchors chosen for that table
    _, v2_part = stdout.split("The Open LLM Leaderboard v2 benchmarks")
    assert "spec 'no_offsets'" in v2_part and "anchors mmlu_pro, ifeval, math_lvl5" in v2_part
    assert "spec: 'no_offsets' (the default without family offsets" in stderr
    assert "Llama-2 at 8.4e+24 FLOPs: known family, 3 models" in v2_part
    for label in ("MMLU-Pro", "GPQA", "MATH Lvl 5", "BBH", "IFEval", "MuSR"):
        assert f"  {label} " in v2_part
    assert "NewFamily at 1e+24 FLOPs: family not in the fit" in v2_part
    assert v2png.read_bytes()[:4] == b"\x89PNG"
    stdout = stdout.split("The Open LLM Leaderboard v2 benchmarks")[0]
    assert "convergence gate:" in stdout
    assert "Llama-2 at 8.4e+24 FLOPs: known family, 3 models; 10x the compute" in stdout
    assert "Pythia at 2.16e+23 FLOPs: known family, 8 models; 10x the compute" in stdout
    assert "NewFamily at 1e+24 FLOPs: family not in the fit" in stdout
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_quickstart_refuses_one_file_for_both_fits(tmp_path):
    out = tmp_path / "a.nc"
    rc, _, stderr = run(["quickstart", "--out", out, "--v2-out", out])
    assert rc == 2 and stderr.strip().endswith("give the two fits two files")
    assert not out.exists()


@pytest.mark.slow
def test_a_failed_gate_on_small_families_names_the_variant_without_offsets(work):
    """Families of two models and the family offsets on: the failed gate's hint says
    ``--spec no_offsets``; with families of four (the module's table) it does not."""
    t = synthetic_table()
    t["family"] = [f"{f}{i // 2}" for f, i in zip(t["family"], range(len(t)), strict=True)]
    t.to_csv(work / "small_families.csv", index=False)
    (work / "offsets.toml").write_text(SPEC + "family_offsets = true\n", encoding="utf-8")
    hint = "families have 2.0 models on average: --spec no_offsets"
    for table, hinted in (("small_families.csv", True), ("table.csv", False)):
        out = work / "fits" / f"offsets_{table}.nc"
        rc, _, stderr = run(
            ["fit", "--spec", work / "offsets.toml", "--data", work / table, "--out", out]
            + ["--draws", 30, "--tune", 30, "--chains", 2, "--seed", 1]
        )
        assert rc == 0, stderr
        assert "convergence gate failed" in stderr  # 2 x 30 draws cannot reach bulk ESS 400
        assert (hint in stderr) is hinted, table
        assert ("--spec no_offsets" in stderr) is hinted, table
