"""Generic backtests: task aliases, --split syntax, case building, CLI validation, one e2e run."""

from __future__ import annotations

import json

import numpy as np
import pytest

from obscale_bayes.cli.main import main
from obscale_bayes.data.tables import STANDARD_BENCHMARKS
from obscale_bayes.errors import UsageError
from obscale_bayes.evaluation.backtest import parse_methods
from obscale_bayes.evaluation.cases import build_case, preset_cases
from obscale_bayes.evaluation.presets import DEFAULT_FAMILIES, PRESETS
from obscale_bayes.evaluation.splits import SplitSpec, parse_split
from obscale_bayes.evaluation.tasks import load_for, parse_inputs, resolve_task, task_aliases

BBH_COT = "bbh_cot_fewshot_overall_3_exact_match,flexible-extract"
BBH_DIRECT = "bbh_fewshot_overall_3_exact_match,flexible-extract"


@pytest.mark.parametrize(
    "text, expected, label",
    [
        ("cutoff:84", SplitSpec("cutoff", value=84.0), "flops<=84e21"),
        ("cutoff:22:unknown=drop", SplitSpec("cutoff", value=22.0, unknown="drop"),
         "flops<=22e21,unknown dropped"),
        ("top:0.1", SplitSpec("top", value=0.1), "top10%"),
        ("family:Llama-2", SplitSpec("family", family="Llama-2", k=1), "family=Llama-2,k=1"),
        ("family:GPT-Neo/J:k=0", SplitSpec("family", family="GPT-Neo/J", k=0),
         "family=GPT-Neo/J,k=0"),
        ("random:0.25:seed=3", SplitSpec("random", value=0.25, seed=3), "random25%,seed=3"),
    ],
)  # fmt: skip
def test_parse_split_forms(text, expected, label):
    s = parse_split(text)
    assert s == expected and s.label == label


@pytest.mark.parametrize(
    "text",
    ["cutoff", "cutoff:abc", "cutoff:-3", "cutoff:84:unknown=keep", "top:1.5", "top:0.1:k=2",
     "family:", "family:X:k=x", "family:X:k=-1", "random:0", "random:0.2:seed=a", "half:0.5",
     "random:0.2:seed=1:seed=2", "cutoff:nan"],
)  # fmt: skip
def test_parse_split_rejects_malformed(text):
    with pytest.raises(UsageError) as e:
        parse_split(text)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("split:")  # the parameter; the CLI says --split


def test_task_aliases_and_resolution():
    al = task_aliases()
    assert al["bbh_overall_cot"] == BBH_COT and al["bbh_overall_direct"] == BBH_DIRECT
    assert al["bbh_navigate_cot"] == "bbh_cot_fewshot_navigate_3_exact_match,flexible-extract"
    assert len([k for k in al if k.startswith("bbh_")]) == 2 * 28  # 27 subtasks + overall
    assert resolve_task("gsm8k_cot_sc5").startswith("gsm8k_cot_self_consistency_8")
    assert resolve_task("mmlu") == "mmlu"
    with pytest.raises(UsageError) as e:
        resolve_task("bbh_overal_cot")
    msg = str(e.value)
    assert "\n" not in msg and "did you mean bbh_overall_cot" in msg and "navigate" in msg


def test_inputs_and_methods():
    assert parse_inputs(None) == tuple(STANDARD_BENCHMARKS)
    assert parse_inputs("mmlu, arc_c") == ("mmlu", "arc_c")
    assert parse_inputs("mmlu,gsm8k_plain")[1] == "gsm8k_5_exact_match,flexible-extract"
    for bad in ("mmlu,,arc_c", "mmlu,nope", "mmlu,mmlu"):
        with pytest.raises(UsageError, match="^inputs:"):
            parse_inputs(bad)
    assert parse_methods("bayes,paper_pca3") == ("bayes", "paper_pca3")
    with pytest.raises(UsageError, match="choose from bayes"):
        parse_methods("bayes,pca")


@pytest.fixture(scope="module")
def bbh_data():
    return load_for(["bbh_overall_direct", "bbh_overall_cot"], tuple(STANDARD_BENCHMARKS))


def test_build_case_splits(bbh_data):
    inputs = tuple(STANDARD_BENCHMARKS)
    c = build_case(
        bbh_data, "bbh_overall_cot", inputs, parse_split("cutoff:84"), families=DEFAULT_FAMILIES
    )
    assert c.target == BBH_COT and c.split == "flops<=84e21"
    assert set(c.models["family"]) <= set(DEFAULT_FAMILIES)
    tr = c.models[c.train]
    assert (tr["flops_1e21"] <= 84).all() and c.models.loc[c.test, "flops_1e21"].ge(84).sum() > 0
    assert not (c.train & c.test).any() and (c.train | c.test).all()
    assert c.models["raw_target"].notna().all()
    top = build_case(bbh_data, "bbh_overall_cot", inputs, parse_split("top:0.1"))
    y = top.models["raw_target"]
    assert top.test.sum() == int(0.1 * len(y))
    assert y[top.test].min() >= y[top.train].max()
    fam = build_case(bbh_data, "bbh_overall_direct", inputs, parse_split("family:Llama-2:k=2"))
    held = fam.models[fam.test]
    assert set(held["family"]) == {"Llama-2"}
    kept = fam.models[fam.train & (fam.models["family"] == "Llama-2")]
    assert len(kept) == 2 and kept["flops_1e21"].max() <= held["flops_1e21"].min()
    rnd = build_case(bbh_data, "bbh_overall_direct", inputs, parse_split("random:0.2:seed=1"))
    assert rnd.test.sum() == int(0.2 * len(rnd.models))
    with pytest.raises(UsageError, match="choose from"):
        build_case(bbh_data, "bbh_overall_cot", inputs, parse_split("family:Nope"))
    with pytest.raises(UsageError, match="also an input"):
        build_case(bbh_data, "mmlu", inputs, parse_split("cutoff:84"))


def test_one_builder_for_presets_text_arguments_and_wide_frames(bbh_data):
    cases = preset_cases("bbh")
    assert [c.name for c in cases] == ["bbh_overall_direct", "bbh_overall_cot"]
    assert [c.target for c in cases] == [BBH_DIRECT, BBH_COT]
    for c in cases:
        assert c.split == "flops<=84e21" and set(c.models["family"]) <= set(DEFAULT_FAMILIES)
    a = build_case(bbh_data, "bbh_overall_cot", "mmlu,arc_c", "top:0.1")
    b = build_case(bbh_data, "bbh_overall_cot", ("mmlu", "arc_c"), parse_split("top:0.1"))
    assert a.models.equals(b.models) and a.test.equals(b.test) and a.split == "top10%"
    meta = ["family", "params_b", "tokens_t", "flops_1e21"]
    wide = bbh_data.models.set_index("model")[meta].join(bbh_data.wide())
    c = build_case(wide, "bbh_overall_cot", ("mmlu", "arc_c"), "top:0.1", chance=a.chance,
                   max_value=a.max_value)  # fmt: skip
    assert c.models.equals(a.models) and c.test.equals(a.test)
    with pytest.raises(UsageError, match="^preset: unknown preset 'nope'"):
        preset_cases("nope")
    with pytest.raises(UsageError, match="^analysis: unknown analysis 'nope'"):
        preset_cases("paper", ["nope"])


def test_build_case_from_a_user_csv(tmp_path, bbh_data):
    w = bbh_data.wide()[["mmlu", "arc_c", "hellaswag", "humaneval", BBH_COT]].dropna()
    m = bbh_data.models.set_index("model").loc[w.index, ["family", "flops_1e21"]]
    path = tmp_path / "mine.csv"
    m.join(w.rename(columns={BBH_COT: "bbh_cot"})).rename(
        columns={"flops_1e21": "flops_1e21"}
    ).reset_index().to_csv(path, index=False)
    extra = tmp_path / "extra.csv"
    extra.write_text("benchmark,floor,metric_min,metric_max,n_items\nbbh_cot,0.1,0,1,\n")
    from obscale_bayes.data.reader import read_table

    data = read_table(path, extra_benchmarks=extra)
    c = build_case(
        data, "bbh_cot", ("mmlu", "arc_c", "hellaswag", "humaneval"), parse_split("cutoff:84")
    )
    assert c.target == "bbh_cot" and c.benchmarks is not None
    assert len(c.models) == len(w)


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["--task", "nope"], "unknown task 'nope'"),
        (["--task", "bbh_overall_cot", "--split", "cutoff"], "expected one of cutoff:"),
        (["--task", "bbh_overall_cot", "--split", "family:Nope"], "choose from BLOOM"),
        (["--task", "bbh_overall_cot", "--inputs", "mmlu,foo"], "unknown benchmark 'foo'"),
        (["--task", "bbh_overall_cot", "--methods", "x"], "unknown method 'x'"),
        (["--preset", "bbh", "--task", "gsm8k_cot"], "not used with --preset bbh"),
        (["--preset", "bbh", "--split", "top:0.1"], "not used with --preset bbh"),
        (["--task", "gsm8k_cot", "--analysis", "gsm8k_cot"], "only with --preset paper"),
        (["--split", "top:0.1"], "only with --task"),
        (["--task", "gsm8k_cot", "--plot", "x.txt"], "--plot"),
        (["--task", "gsm8k_cot", "--data", "/nonexistent.csv"], "nonexistent.csv"),
    ],
)  # fmt: skip
def test_cli_validation_is_one_line_and_samples_nothing(argv, needle, capsys):
    assert main(["backtest", *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0], err


def test_bbh_preset_settings():
    p = PRESETS["bbh"]
    assert [resolve_task(t) for t in p["tasks"]] == [BBH_DIRECT, BBH_COT]
    assert parse_split(p["split"]) == SplitSpec("cutoff", value=84.0)


@pytest.mark.slow
def test_cli_generic_backtest_end_to_end(capsys, tmp_path):
    fig = tmp_path / "bt.png"
    argv = ["backtest", "--task", "bbh_overall_cot", "--inputs", "mmlu,arc_c,hellaswag,humaneval",
            "--split", "cutoff:84", "--families", "default", "--methods", "bayes,paper_pca3",
            "--draws", "100", "--tune", "200", "--chains", "2", "--json", "--plot", str(fig)]  # fmt: skip
    assert main(argv) == 0
    recs = json.loads(capsys.readouterr().out)
    keys = {"analysis", "task", "method", "split", "n_train", "n_test", "mse", "mae", "crps",
            "coverage50", "coverage80", "coverage90", "coverage95", "width90"}  # fmt: skip
    assert [r["method"] for r in recs] == ["bayes", "paper_pca3"]
    assert all(set(r) == keys for r in recs)
    b = recs[0]
    assert b["task"] == BBH_COT and b["split"] == "flops<=84e21"
    assert b["n_train"] > 20 and b["n_test"] > 10
    # BBH CoT is a fraction: errors are bounded and the bands are real intervals
    assert 0 < b["mse"] < 0.1 and 0 < b["width90"] < 1 and 0 <= b["coverage90"] <= 1
    assert b["coverage50"] <= b["coverage80"] <= b["coverage90"] <= b["coverage95"]
    assert recs[1]["crps"] is None and recs[1]["mse"] > 0
    assert fig.exists() and fig.stat().st_size > 1000
    assert np.isfinite(b["crps"])
