"""read_table / write_*_csv: round trips and one-line DataErrors for every bad input."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from obscale_bayes.data.reader import read_table
from obscale_bayes.data.tables import BenchmarkData, load_shipped
from obscale_bayes.data.writers import write_long_csv, write_wide_csv
from obscale_bayes.errors import DataError

HEAD = "Model,Model Family,Model Size (B),Pretraining Data Size (T),FLOPs (1E21),MMLU,GSM8K\n"
GOOD = HEAD + "a/one,Fam,7.0,2.0,84.0,0.45,0.10\na/two,Fam,13.0,2.0,156.0,0.55,\n"


def write(tmp_path: Path, text: str, name: str = "table.csv") -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def bad(tmp_path: Path, text: str, *expected: str, name: str = "table.csv", **kw) -> str:
    """Read ``text`` expecting a one-line DataError naming the file and ``expected`` parts."""
    p = write(tmp_path, text, name)
    with pytest.raises(DataError) as e:
        read_table(p, **kw)
    msg = str(e.value)
    assert "\n" not in msg and name in msg, msg
    for part in expected:
        assert part in msg, msg
    return msg


def assert_same(a: BenchmarkData, b: BenchmarkData) -> None:
    for name in ("models", "scores", "benchmarks"):
        pd.testing.assert_frame_equal(getattr(a, name), getattr(b, name))


# ---- good inputs -------------------------------------------------------------------------------
def test_wide_upstream_layout(tmp_path):
    d = read_table(write(tmp_path, GOOD))
    assert d.model_ids == ["a/one", "a/two"] and d.benchmark_ids == ["mmlu", "gsm8k"]
    assert len(d.scores) == 3  # the blank GSM8K cell is a missing score
    assert d.models.loc[0, "flops_1e21"] == 84.0 and d.source.endswith("table.csv")


def test_wide_our_names_and_aliases_case_insensitive(tmp_path):
    text = "model,family,flops_1e21,winograd,arc-c,truthfulqa,ABench-OA\nm,F,,0.6,0.4,0.4,1.5\n"
    d = read_table(write(tmp_path, text))
    assert d.benchmark_ids == ["winogrande", "arc_c", "truthfulqa", "ABench-OA"]
    assert d.models["flops_1e21"].isna().all() and d.models["kind"].isna().all()


def test_long_layout_with_optional_columns(tmp_path):
    text = (
        "model,benchmark,value,family,flops_1e21\n"
        "m1,mmlu,0.5,F,10\nm1,GSM8K,0.1,,\nm2,Winogrande,0.7,G,\nm2,gsm8k,,G,\n"
    )
    d = read_table(write(tmp_path, text))
    assert d.model_ids == ["m1", "m2"] and d.benchmark_ids == ["mmlu", "winogrande", "gsm8k"]
    assert len(d.scores) == 3 and d.models.set_index("model").loc["m1", "flops_1e21"] == 10


def test_family_optional_when_not_required(tmp_path):
    d = read_table(write(tmp_path, "model,mmlu\nx,0.3\n"), require_family=False)
    assert d.models["family"].isna().all()


def test_blank_lines_do_not_shift_line_numbers(tmp_path):
    bad(
        tmp_path,
        HEAD + "\na/one,Fam,7,2,84,0.4,0.1\n\na/two,Fam,7,2,84,0.4,oops\n",
        "line 5",
        "column 'GSM8K'",
        "'oops'",
    )


# ---- round trips -------------------------------------------------------------------------------
@pytest.mark.parametrize("groups,kind", [("standard", "base"), ("all", None)])
def test_round_trip_shipped(tmp_path, groups, kind):
    d = load_shipped(groups, kind)
    write_wide_csv(d, tmp_path / "w.csv")
    write_long_csv(d, tmp_path / "l.csv")
    assert_same(read_table(tmp_path / "w.csv"), d)
    assert_same(read_table(tmp_path / "l.csv"), d)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["l.csv", "w.csv"]  # no temp files


def test_round_trip_user_benchmark_and_scoreless_model(tmp_path):
    d = load_shipped(benchmarks=["mmlu"]).subset(models=["meta-llama/Llama-2-7b-hf"])
    models = pd.concat(
        [d.models, pd.DataFrame([{"model": "new/x", "family": "Llama-2", "flops_1e21": 1e4}])]
    )
    bench = pd.concat(
        [
            d.benchmarks,
            pd.DataFrame(
                [
                    {
                        "benchmark": "my_bench",
                        "display_name": "Mine",
                        "group": "user",
                        "floor": float("nan"),
                        "n_items": 300.0,
                        "metric_min": 0.0,
                        "metric_max": 50.0,
                        "unit": "score",
                    }
                ]
            ),
        ]
    )
    scores = pd.concat(
        [
            d.scores,
            pd.DataFrame(
                [{"model": "meta-llama/Llama-2-7b-hf", "benchmark": "my_bench", "value": 42.0}]
            ),
        ]
    )
    u = BenchmarkData(models, scores, bench, source="mem")
    write_wide_csv(u, tmp_path / "w.csv", metadata_path=tmp_path / "meta.csv")
    assert_same(read_table(tmp_path / "w.csv", extra_benchmarks=tmp_path / "meta.csv"), u)
    with pytest.raises(DataError, match="unknown benchmark"):
        read_table(tmp_path / "w.csv")
    write_long_csv(u, tmp_path / "l.csv")
    back = read_table(tmp_path / "l.csv")
    assert back.equals(
        BenchmarkData(
            models,
            scores,
            bench.assign(display_name=["MMLU", "my_bench"], unit=["fraction", "score"]),
        )
    )


def test_long_unknown_benchmark_with_floor_and_range(tmp_path):
    text = "model,benchmark,value,family,floor,metric_min,metric_max\nm,elo,1200,F,fitted,0,3000\n"
    d = read_table(write(tmp_path, text))
    b = d.benchmarks.iloc[0]
    assert b.benchmark == "elo" and pd.isna(b.floor) and b.metric_max == 3000


# ---- bad inputs: each gives one DataError line naming file, line and/or column -----------------
def test_missing_file(tmp_path):
    with pytest.raises(DataError, match=r"nope\.csv: table file not found"):
        read_table(tmp_path / "nope.csv")


def test_empty_file(tmp_path):
    bad(tmp_path, "", "empty")


def test_header_only(tmp_path):
    bad(tmp_path, HEAD, "no data rows")


def test_no_model_column(tmp_path):
    bad(tmp_path, "name,mmlu\nx,0.4\n", "line 1", "no 'model' column")
    msg = bad(tmp_path, "Model;MMLU\nx;0.4\n", "no 'model' column")
    assert "';'" in msg


def test_non_numeric_cell(tmp_path):
    bad(tmp_path, GOOD + "a/three,Fam,7,2,84,abc,0.1\n", "line 4", "column 'MMLU'", "'abc'")
    bad(tmp_path, GOOD + "a/three,Fam,7,2,84,45%,0.1\n", "line 4", "'45%'", "0.45")
    bad(tmp_path, GOOD + "a/three,Fam,seven,2,84,0.4,0.1\n", "line 4", "Model Size (B)")


@pytest.mark.parametrize("word", ["nan", "NaN", "inf", "-inf", "Infinity", "NA", "null"])
def test_nan_and_inf_strings(tmp_path, word):
    bad(
        tmp_path,
        GOOD + f"a/three,Fam,7,2,84,{word},0.1\n",
        "line 4",
        "column 'MMLU'",
        f"'{word}'",
        "blank",
    )


def test_percent_scores(tmp_path):
    text = HEAD + "a,F,7,2,84,45.1,10.2\nb,F,7,2,84,55.3,20.0\n"
    bad(tmp_path, text, "column 'MMLU'", "line 3", "percent", "divide")


def test_long_percent_scores(tmp_path):
    bad(
        tmp_path,
        "model,benchmark,value,family\na,mmlu,45,F\nb,mmlu,0.5,F\n",
        "line 2",
        "column 'value'",
        "percent",
    )


def test_score_outside_range(tmp_path):
    bad(tmp_path, HEAD + "a,F,7,2,84,-0.1,0.1\n", "line 2", "column 'MMLU'", "outside")
    bad(tmp_path, HEAD + "a,F,7,2,84,0.5,101\n", "line 2", "column 'GSM8K'", "outside")
    bad(
        tmp_path,
        "model,family,ipa_transliterate_2_bleu\na,F,120\n",
        "line 2",
        "outside",
        "[0, 100]",
    )


def test_duplicate_model_rows(tmp_path):
    bad(tmp_path, GOOD + "a/one,Fam,7,2,84,0.4,0.1\n", "line 4", "a/one", "line 2")


def test_duplicate_long_pairs(tmp_path):
    text = "model,benchmark,value,family\nm,mmlu,0.4,F\nm,gsm8k,0.1,F\nm,MMLU,0.5,F\n"
    bad(tmp_path, text, "line 4", "line 2", "mmlu")


@pytest.mark.parametrize(
    "col,cells",
    [
        ("FLOPs (1E21)", "7,2,0"),
        ("Model Size (B)", "-7,2,84"),
        ("Pretraining Data Size (T)", "7,0,84"),
    ],
)
def test_non_positive_compute(tmp_path, col, cells):
    bad(tmp_path, HEAD + f"a,F,{cells},0.4,0.1\n", "line 2", f"column '{col}'", "positive")


def test_wrong_unit_flops(tmp_path):
    bad(tmp_path, HEAD + "a,F,7,2,8.4e22,0.4,0.1\n", "line 2", "FLOPs (1E21)", "unit")


def test_model_without_family(tmp_path):
    bad(tmp_path, GOOD + "a/three,,7,2,84,0.4,0.1\n", "line 4", "column 'Model Family'", "a/three")
    bad(tmp_path, "model,mmlu\nx,0.4\n", "line 1", "no family column", "require_family")


def test_unknown_benchmark(tmp_path):
    bad(
        tmp_path,
        "model,family,mmlu,my_bench\nx,F,0.4,0.3\n",
        "line 1",
        "column 'my_bench'",
        "extra_benchmarks",
    )
    bad(tmp_path, "model,benchmark,value,family\nx,my_bench,0.3,F\n", "line 2", "my_bench", "floor")
    bad(
        tmp_path, "model,benchmark,value,family,floor\nx,my_bench,0.3,F,0\n", "line 2", "metric_min"
    )


def test_extra_benchmarks_file(tmp_path):
    table = write(tmp_path, "model,family,mmlu,my_bench\nx,F,0.4,30\n")
    meta = write(
        tmp_path, "benchmark,floor,metric_min,metric_max,n_items\nmy_bench,0,0,100,50\n", "m.csv"
    )
    d = read_table(table, extra_benchmarks=meta)
    assert d.benchmark_ids == ["mmlu", "my_bench"] and d.benchmarks.iloc[1].unit == "score"
    bad(
        tmp_path,
        "benchmark,floor,metric_min,metric_max,n_items\nmy_bench,,0,100,\n",
        "line 2",
        "floor",
        name="m.csv",
        extra_benchmarks=tmp_path / "m.csv",
    )
    with pytest.raises(DataError, match=r"m\.csv: line 2, column 'metric_max'"):
        write(
            tmp_path, "benchmark,floor,metric_min,metric_max,n_items\nmmlu,0.25,0,100,\n", "m.csv"
        )
        read_table(table, extra_benchmarks=meta)


def test_known_benchmark_with_conflicting_range(tmp_path):
    text = "model,benchmark,value,family,floor,metric_min,metric_max\nx,mmlu,45,F,25,0,100\n"
    bad(tmp_path, text, "line 2", "mmlu", "known")


def test_long_metadata_not_constant(tmp_path):
    text = "model,benchmark,value,family\nm,mmlu,0.4,F\nm,gsm8k,0.1,G\n"
    bad(tmp_path, text, "line 3", "column 'family'", "constant")
    text = "model,benchmark,value,family,floor,metric_min,metric_max\n"
    text += "a,b1,1,F,0,0,10\nc,b1,2,F,0,0,20\n"
    bad(tmp_path, text, "line 3", "metric_max", "constant")


def test_structural_problems(tmp_path):
    bad(tmp_path, GOOD + "a/three,Fam,7,2\n", "line 4", "fields")
    bad(tmp_path, "model,family,MMLU,mmlu\nx,F,0.4,0.4\n", "line 1", "appears twice")
    bad(
        tmp_path,
        "model,family,Winograd,winogrande\nx,F,0.6,0.6\n",
        "line 1",
        "column 'winogrande'",
        "second column",
    )
    bad(tmp_path, "model,family,,mmlu\nx,F,,0.4\n", "line 1", "no name")
    bad(tmp_path, GOOD + ",Fam,7,2,84,0.4,0.1\n", "line 4", "blank model")
    bad(tmp_path, "model,benchmark,value,notes\nx,mmlu,0.4,hi\n", "column 'notes'", "unexpected")
    bad(tmp_path, "model,family,kind,mmlu\nx,F,chat,0.4\n", "line 2", "column 'kind'")
    p = tmp_path / "latin.csv"
    p.write_bytes("model,family,mmlu\nx,Fé,0.4\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"latin\.csv: not UTF-8"):
        read_table(p)
