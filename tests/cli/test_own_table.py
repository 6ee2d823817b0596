"""Issue 9: a user's own wide table from the command line, and its bad inputs.

The end-to-end test fits a small wide table with leaderboard column names, compute aliases, a
flag column, an unknown benchmark described by ``--benchmarks``, forecasts new models from a
wide file with the fit's stored metadata, and backtests it; the bad-input tests check the
one-line errors (exit 2, no traceback, no output file) of section "Bad input".
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from obscale_bayes import progress
from obscale_bayes.cli.main import main
from obscale_bayes.data.reader import read_table
from obscale_bayes.data.tables import load_shipped
from obscale_bayes.fit.fitted import CapabilityModel

META = "benchmark,display_name,group,floor,n_items,metric_min,metric_max,unit\n"


def leaderboard(tmp_path: Path, n: int = 30) -> tuple[Path, Path, Path]:
    """A wide table as exported from a leaderboard (raw columns), new models, a metadata file."""
    v = load_shipped(groups="leaderboard_v2")
    w = v.wide()
    m = v.models.set_index("model").loc[w.index]
    rng = np.random.default_rng(0)
    df = pd.DataFrame(
        {
            "fullname": w.index,
            "Model Family": m["family"].to_numpy(),
            "#Params (B)": m["params_b"].to_numpy(),
            "tokens": m["tokens_t"].to_numpy(),
            "IFEval Raw": w["ifeval"].to_numpy(),
            "leaderboard_bbh": w["bbh"].to_numpy(),
            "MATH Lvl 5": w["math_lvl5"].to_numpy(),
            "GPQA": w["gpqa"].to_numpy(),
            "MUSR": w["musr"].to_numpy(),
            "MMLU-PRO": w["mmlu_pro"].to_numpy(),
            "my_task": np.clip(
                0.5 * w["mmlu_pro"].to_numpy() + 0.1 + rng.normal(0, 0.01, len(w)), 0, 1
            ),
            "Instruct": False,
        }
    )
    fams = df["Model Family"].value_counts()
    df = df[df["Model Family"].isin(fams[fams >= 2].index)]
    train, new = df.iloc[:n], df.iloc[n : n + 3]
    train.to_csv(tmp_path / "board.csv", index=False)
    new = new[["fullname", "Model Family", "#Params (B)", "IFEval Raw", "MMLU-PRO", "my_task"]]
    new.to_csv(tmp_path / "new.csv", index=False)
    (tmp_path / "meta.csv").write_text(META + "my_task,My task,user,0.1,500,0,1,fraction\n")
    return tmp_path / "board.csv", tmp_path / "new.csv", tmp_path / "meta.csv"


def run(capsys, argv) -> tuple[int, str, str]:
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def fails(capsys, argv, *expected: str) -> str:
    rc, out, err = run(capsys, argv)
    lines = err.splitlines()
    assert rc == 2 and out == "" and len(lines) == 1 and "Traceback" not in err, (rc, out, err)
    for part in expected:
        assert part in lines[0], f"{part!r} not in {lines[0]!r}"
    return lines[0]


def test_leaderboard_names_aliases_and_metadata_file(tmp_path):
    board, new, meta = leaderboard(tmp_path)
    d = read_table(board, extra_benchmarks=meta, ignore_columns=["Instruct"])
    assert set(d.benchmark_ids) == {
        "ifeval",
        "bbh",
        "math_lvl5",
        "gpqa",
        "musr",
        "mmlu_pro",
        "my_task",
    }
    assert d.models["params_b"].notna().all() and d.models["tokens_t"].notna().all()
    only = read_table(board, extra_benchmarks=meta, columns=["MMLU-PRO", "gpqa", "my_task"])
    assert only.benchmark_ids == ["gpqa", "mmlu_pro", "my_task"]
    with pytest.raises(Exception, match=r"column 'Instruct'.*ignore_columns"):
        read_table(board, extra_benchmarks=meta)


def test_absolute_flops_column_and_did_you_mean(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("model,family,flops,mmlu,mmlu_pr\na,F,8.4e22,0.4,0.2\n")
    with pytest.raises(Exception, match=r"did you mean 'mmlu_pro'"):
        read_table(p)
    p.write_text("model,family,flops,mmlu\na,F,8.4e22,0.4\n")
    assert read_table(p).models["flops_1e21"].iloc[0] == pytest.approx(84.0)
    p.write_text("model,family,flops,mmlu\na,F,84,0.4\n")
    with pytest.raises(Exception, match=r"flops_1e21"):
        read_table(p)


def test_unknown_benchmarks_all_missing_fields_in_one_message(tmp_path):
    m = tmp_path / "m.csv"
    m.write_text(META + "a,A,user,,10,0,,fraction\nb,B,user,0.1,,,1,fraction\n")
    t = tmp_path / "t.csv"
    t.write_text("model,family,a,b\nx,F,0.3,0.4\n")
    with pytest.raises(Exception) as e:
        read_table(t, extra_benchmarks=m)
    msg = str(e.value)
    assert "line 2 'a': floor, metric_max" in msg and "line 3 'b': metric_min" in msg


def test_unknown_item_count_is_a_warning(tmp_path, caplog):
    m = tmp_path / "m.csv"
    m.write_text(META + "a,A,user,0.1,,0,1,fraction\n")
    t = tmp_path / "t.csv"
    t.write_text("model,family,mmlu,a\nx,F,0.4,0.3\n")
    with caplog.at_level(logging.WARNING, logger=progress.LOGGER_NAME):
        read_table(t, extra_benchmarks=m)
    assert "no n_items for 'a'" in caplog.text and "default_n_items" in caplog.text


def test_model_without_scores_is_named(tmp_path, caplog):
    t = tmp_path / "t.csv"
    t.write_text("model,family,mmlu,gsm8k\nx,F,0.4,0.1\ny,F,,\n")
    with caplog.at_level(logging.WARNING, logger=progress.LOGGER_NAME):
        read_table(t)
    assert "'y'" in caplog.text and "no score" in caplog.text


def test_scale_checks_and_conversion(tmp_path, caplog):
    v = load_shipped(groups="leaderboard_v2").wide()["gpqa"].to_numpy()
    norm = np.clip((v - 0.25) / 0.75, 0, 1)
    rows = [f"m{i},F,{x:.4f}" for i, x in enumerate(norm)]
    t = tmp_path / "t.csv"
    t.write_text("model,family,GPQA\n" + "\n".join(rows) + "\n")
    with caplog.at_level(logging.WARNING, logger=progress.LOGGER_NAME):
        read_table(t)
    assert "gpqa" in caplog.text and "chance-normalised" in caplog.text and "lines 2" in caplog.text
    caplog.clear()
    mixed = [f"m{i},F,{x:.4f}" for i, x in enumerate(np.where(np.arange(len(v)) % 2, norm, v))]
    t.write_text("model,family,GPQA\n" + "\n".join(mixed) + "\n")
    with caplog.at_level(logging.WARNING, logger=progress.LOGGER_NAME):
        read_table(t)
    assert "mix of raw and chance-normalised" in caplog.text
    caplog.clear()
    t.write_text("model,family,GPQA\n" + "\n".join(rows) + "\n")
    with caplog.at_level(logging.WARNING, logger=progress.LOGGER_NAME):
        d = read_table(t, normalised=["gpqa"])
    assert "well below chance" not in caplog.text
    got = d.wide()["gpqa"].to_numpy()
    assert np.allclose(got[norm > 0], v[norm > 0], atol=1e-4)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger=progress.LOGGER_NAME):
        read_table(_raw(tmp_path, v))
    assert caplog.text == ""  # raw shipped scores pass the check


def _raw(tmp_path, v):
    p = tmp_path / "raw.csv"
    p.write_text("model,family,GPQA\n" + "\n".join(f"m{i},F,{x}" for i, x in enumerate(v)) + "\n")
    return p


# ---------------------------------------------------------------------------- bad input
BAD_META = {
    "floor_outside": (META + "my_task,M,user,1.5,500,0,1,fraction\n", ["line 2", "floor"]),
    "negative_items": (
        META + "my_task,M,user,0.1,-3,0,1,fraction\n",
        ["line 2", "n_items", "positive whole"],
    ),
    "fractional_items": (
        META + "my_task,M,user,0.1,2.5,0,1,fraction\n",
        ["line 2", "n_items", "positive whole"],
    ),
    "twice": (
        META + "my_task,M,user,0.1,500,0,1,fraction\nmy_task,M,user,0.2,500,0,1,fraction\n",
        ["line 3", "column 'floor'", "described on line 2", "keep one description"],
    ),
    "missing_column": (
        "benchmark,floor,metric_min,metric_max\nmy_task,0.1,0,1\n",
        ["line 1", "lacks column(s) ['n_items']"],
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_META))
def test_bad_metadata_file(tmp_path, capsys, monkeypatch, case):
    monkeypatch.setattr(
        CapabilityModel, "fit", lambda *a, **k: (_ for _ in ()).throw(AssertionError)
    )
    board, _, meta = leaderboard(tmp_path)
    text, expected = BAD_META[case]
    meta.write_text(text)
    out = tmp_path / "fit.nc"
    fails(capsys, ["fit", "--data", board, "--benchmarks", meta, "--ignore-columns", "Instruct",
                   "--out", out], "meta.csv", *expected)  # fmt: skip
    assert not out.exists()


def test_bad_release_date(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(
        CapabilityModel, "fit", lambda *a, **k: (_ for _ in ()).throw(AssertionError)
    )
    t = tmp_path / "t.csv"
    t.write_text(
        "model,family,release_date,mmlu,gsm8k\na,F,2023-07-18,0.4,0.1\nb,F,July 2023,0.5,0.2\n"
    )
    fails(capsys, ["fit", "--data", t, "--out", tmp_path / "f.nc"],
          "t.csv", "line 3", "column 'release_date'", "YYYY-MM-DD")  # fmt: skip
    assert not (tmp_path / "f.nc").exists()
    assert read_table(_dated(tmp_path)).models["release_date"].iloc[0] == "2023-07-18"


def _dated(tmp_path):
    p = tmp_path / "ok.csv"
    p.write_text("model,family,Release date,mmlu\na,F,2023-07-18,0.4\nb,F,,0.5\n")
    return p


def test_new_models_benchmark_in_neither_fit_nor_metadata(tmp_path, capsys, mock_fit):
    path = tmp_path / "fit.nc"
    mock_fit.save(path)
    new = tmp_path / "new.csv"
    new.write_text("model,family,mmlu,my_task\nx,Llama-2,0.5,0.3\n")
    fails(
        capsys,
        ["forecast", path, "--models", new],
        "new.csv",
        "column 'my_task'",
        "extra_benchmarks",
    )
    meta = tmp_path / "m.csv"
    meta.write_text(META + "my_task,M,user,0.1,500,0,1,fraction\n")
    fails(capsys, ["forecast", path, "--models", new, "--benchmarks", meta],
          "--models", "my_task", "not fitted on")  # fmt: skip


# ---------------------------------------------------------------------------- end to end
@pytest.mark.slow
def test_own_wide_table_end_to_end(tmp_path, capsys):
    board, new, meta = leaderboard(tmp_path, n=24)
    out = tmp_path / "fit.nc"
    tiny = ["--draws", "30", "--tune", "30", "--chains", "1", "--quiet"]
    rc, stdout, err = run(capsys, ["fit", "--data", board, "--benchmarks", meta,
                                   "--ignore-columns", "Instruct", "--out", out, *tiny])  # fmt: skip
    assert rc == 0, err
    assert "anchors mmlu_pro" in stdout
    fit = CapabilityModel.load(out)
    assert "my_task" in fit.inputs.benchmark_ids and fit.spec.anchors[0] == "mmlu_pro"
    # forecast new models from a wide file: the fit knows my_task (no --benchmarks needed)
    rc, stdout, err = run(capsys, ["forecast", out, "--models", new])
    assert rc == 0, err
    assert "My task" in stdout and "conditioned on its 3 observed scores" in stdout
    # backtest the same table from the command line
    rc, stdout, err = run(capsys, ["backtest", "--task", "gpqa", "--inputs", "mmlu_pro,ifeval,bbh,musr",
                                   "--data", board, "--benchmarks", meta, "--ignore-columns", "Instruct",
                                   "--split", "random:0.2", "--methods", "bayes,flops_only",
                                   "--spec", "default", "--draws", "30", "--tune", "30", "--chains", "1"])  # fmt: skip
    assert rc == 0, err
    assert "gpqa" in stdout
