"""The shipped tables and the BenchmarkData container (fast, no sampling)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from obscale_bayes.data.tables import (
    GROUPS,
    STANDARD_BENCHMARKS,
    BenchmarkData,
    data_dir,
    load_benchmark_metadata,
    load_shipped,
)
from obscale_bayes.errors import DataError, UsageError

REPO = Path(__file__).resolve().parents[2]
UPSTREAM = REPO.parent / "shared" / "data" / "obscaling"
TABLES = ("models.csv", "scores.csv", "benchmarks.csv")


@pytest.fixture(scope="module")
def models() -> pd.DataFrame:
    return pd.read_csv(REPO / "data" / "models.csv", keep_default_na=False, na_values=[""])


@pytest.fixture(scope="module")
def scores() -> pd.DataFrame:
    return pd.read_csv(REPO / "data" / "scores.csv")


@pytest.fixture(scope="module")
def meta() -> pd.DataFrame:
    return load_benchmark_metadata()


# ---- shipped tables ---------------------------------------------------------------------------
def test_default_is_128_base_models_by_8_standard_benchmarks():
    d = load_shipped()
    assert len(d.models) == 128 and set(d.models["kind"]) == {"base"}
    assert d.benchmark_ids == list(STANDARD_BENCHMARKS)
    assert len(d.families) == 40
    assert len(d.scores) == 985
    assert d.models["flops_1e21"].isna().sum() == 16  # Mistral, Mixtral, GPT-2, RWKV, ...
    w = d.wide()
    assert w.shape == (128, 8) and list(w.columns) == list(STANDARD_BENCHMARKS)
    assert w.notna().sum().sum() == len(d.scores)


def test_models_table(models):
    assert len(models) == 155 and not models["model"].duplicated().any()
    assert models["kind"].value_counts().to_dict() == {"base": 128, "instruct": 27}
    assert models["family"].notna().all()
    assert models.loc[models.kind == "instruct", "family"].nunique() == 17
    assert set(models["flops_source"].dropna()) == {"reported", "corrected"}
    assert (models["flops_source"].isna() == models["flops_1e21"].isna()).all()
    # every known FLOPs figure is 6 * params * tokens (after the corrections)
    k = models.dropna(subset=["params_b", "tokens_t", "flops_1e21"])
    assert np.allclose(k.flops_1e21, 6 * k.params_b * k.tokens_t, rtol=1e-9)
    assert models.source_table.str.len().gt(0).all()


def test_corrections_applied(models):
    m = models.set_index("model")
    btlm = m.loc["cerebras/btlm-3b-8k-base"]
    assert btlm.tokens_t == pytest.approx(0.627) and btlm.flops_1e21 == pytest.approx(11.286)
    assert btlm.flops_source == "corrected"
    ol = m.loc["openlm-research/open_llama_7b_v2"]
    assert ol.params_b == 7.0 and ol.flops_1e21 == 42.0 and ol.flops_source == "corrected"
    assert (m.flops_source == "corrected").sum() == 2


def test_scores_unique_in_range_and_described(scores, meta, models):
    assert not scores.duplicated(["model", "benchmark"]).any()
    assert scores["value"].notna().all() and np.isfinite(scores["value"]).all()
    assert set(scores.model) <= set(models.model)
    assert set(scores.benchmark) == set(meta.benchmark)
    r = meta.set_index("benchmark").loc[scores.benchmark]
    assert (scores.value.to_numpy() >= r.metric_min.to_numpy()).all()
    assert (scores.value.to_numpy() <= r.metric_max.to_numpy()).all()
    assert len(scores) == 9502  # 9172 + 330 Open LLM Leaderboard v2 scores (55 x 6)


def test_benchmark_metadata_complete(meta):
    assert not meta.benchmark.duplicated().any()
    assert meta.group.value_counts().to_dict() == {
        "post_training": 94,
        "agent": 29,
        "standard": 8,
        "emergent": 8,
        "leaderboard_v2": 6,
        "instruct": 2,
    }
    assert set(meta.group) <= set(GROUPS)
    assert (meta.metric_min < meta.metric_max).all()
    assert set(meta.unit) == {"fraction", "bleu", "score"}
    fl = meta.dropna(subset=["floor"])
    assert ((fl.floor >= fl.metric_min) & (fl.floor <= fl.metric_max)).all()
    assert set(meta.loc[meta.floor.isna(), "benchmark"]) == {
        "truthfulqa",
        "arena_elo",
        "bbh",
        "musr",
    }
    assert meta.display_name.notna().all() and meta.description.notna().all()
    assert ((meta.n_items > 0) | meta.n_items.isna()).all()


def test_benchmark_facts(meta):
    m = meta.set_index("benchmark")
    floors = {
        "mmlu": 0.25,
        "arc_c": 0.25,
        "hellaswag": 0.25,
        "winogrande": 0.5,
        "xwinograd": 0.5,
        "gsm8k": 0.0,
        "humaneval": 0.0,
    }
    for b, f in floors.items():
        assert m.loc[b, "floor"] == f
    items = {
        "mmlu": 14042,
        "arc_c": 1172,
        "hellaswag": 10042,
        "winogrande": 1267,
        "truthfulqa": 817,
        "gsm8k": 1319,
        "xwinograd": 4449,
        "humaneval": 164,
    }
    for b, n in items.items():
        assert m.loc[b, "n_items"] == n
    assert m.loc["parsinlu_qa_2_acc", "floor"] == 0.25
    assert (m.loc["ipa_transliterate_2_bleu", ["metric_max", "unit"]] == [100.0, "bleu"]).all()
    assert m.loc["ABench-OA", "metric_max"] == 10 and m.loc["ABoard-Avg_SR", "metric_max"] == 100
    bbh = "bbh_cot_fewshot_{}_3_exact_match,flexible-extract"
    assert m.loc[bbh.format("web_of_lies"), "floor"] == 0.5
    assert m.loc[bbh.format("word_sorting"), "floor"] == 0.0
    assert m.loc[bbh.format("causal_judgement"), "n_items"] == 187
    assert m.loc[bbh.format("overall"), "n_items"] == 6511
    # the paper's settings are addressable by their upstream column names
    for b in (
        "gsm8k_5_exact_match,flexible-extract",
        "gsm8k_cot_8_exact_match,flexible-extract",
        "gsm8k_cot_self_consistency_8_exact_match,maj@5-flexible-extract",
        "word_unscrambling_2_exact_match",
        "arithmetic_3ds_2_acc",
        "arithmetic_2dm_2_acc",
        "ABench-OA",
        "ABoard-Avg_SR",
    ):
        assert b in m.index


def test_post_training_only_true_accuracies(meta):
    post = meta[meta.group == "post_training"].benchmark
    assert not post.str.endswith(",norm").any()
    assert not post.str.match(r"bbh_fewshot_.*,strict-match$").any()
    assert post.str.startswith("gsm8k").sum() == 10


def test_one_copy_of_the_shipped_tables():
    """The tables live once, in the package; ``data/*.csv`` are links to them."""
    pkg = REPO / "obscale_bayes" / "data" / "shipped"
    for t in TABLES:
        link = REPO / "data" / t
        assert link.is_symlink() and link.resolve() == (pkg / t).resolve()
    assert data_dir() == pkg
    assert (REPO / "models").is_symlink()
    assert (REPO / "models").resolve() == (REPO / "obscale_bayes" / "spec" / "variants").resolve()


@pytest.mark.skipif(not UPSTREAM.is_dir(), reason="upstream files not available")
def test_build_is_reproducible(tmp_path):
    script = REPO / "data" / "build_tables.py"
    subprocess.run(
        [sys.executable, str(script), "--out", str(tmp_path)], check=True, capture_output=True
    )
    for t in TABLES:
        assert (tmp_path / t).read_bytes() == (REPO / "data" / t).read_bytes(), t


def test_import_needs_no_pymc():
    code = "import sys, obscale_bayes.data.tables, obscale_bayes.data.reader; print('pymc' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert out.stdout.strip() == "False", out.stderr


# ---- load_shipped / subset / wide -------------------------------------------------------------
def test_load_shipped_options():
    a = load_shipped("all", None)
    assert (len(a.models), len(a.benchmarks), len(a.scores)) == (155, 147, 9502)
    e = load_shipped(["standard", "emergent"])
    assert len(e.models) == 128 and len(e.benchmarks) == 16
    ag = load_shipped(["standard", "instruct", "agent"], kind="instruct")
    assert len(ag.models) == 27 and set(ag.models.kind) == {"instruct"}
    b = load_shipped(benchmarks=["mmlu", "ABench-OA"], kind=None)
    assert b.benchmark_ids == ["mmlu", "ABench-OA"] and len(b.models) == 155
    with pytest.raises(UsageError):
        load_shipped("nonsense")
    with pytest.raises(UsageError):
        load_shipped(benchmarks=["not_a_benchmark"])
    with pytest.raises(UsageError):
        load_shipped(kind="chat")
    with pytest.raises(UsageError, match="kind="):
        load_shipped(["instruct", "agent"], kind="base")


def test_subset_drops_models_without_scores():
    d = load_shipped("all", None)
    s = d.subset(benchmarks=["ABench-OA"])
    assert len(s.models) == 22 and s.benchmark_ids == ["ABench-OA"]
    s2 = d.subset(models=["gpt-4-0613", "meta-llama/Llama-2-7b-hf"], benchmarks=["ABench-OA"])
    assert s2.model_ids == ["gpt-4-0613"]
    s3 = d.subset(models=["gpt-4-0613"], drop_empty_benchmarks=True)
    assert set(s3.scores.benchmark) == set(s3.benchmark_ids)
    with pytest.raises(UsageError):
        d.subset(models=["no/such-model"])


# ---- identity, serialisation, validation ------------------------------------------------------
def test_fingerprint_ignores_order_and_source_but_sees_values():
    d = load_shipped()
    shuffled = BenchmarkData(
        d.models.iloc[::-1],
        d.scores.sample(frac=1, random_state=0),
        d.benchmarks.iloc[::-1],
        source="elsewhere",
    )
    assert shuffled.fingerprint() == d.fingerprint() and shuffled.equals(d)
    s = d.scores.copy()
    s.loc[0, "value"] += 1e-12
    assert BenchmarkData(d.models, s, d.benchmarks).fingerprint() != d.fingerprint()
    b = d.benchmarks.copy()
    b.loc[0, "floor"] = 0.2
    assert BenchmarkData(d.models, d.scores, b).fingerprint() != d.fingerprint()


def test_json_round_trip_is_exact():
    d = load_shipped("all", None)
    back = BenchmarkData.from_json_dict(json.loads(json.dumps(d.to_json_dict())))
    for name in ("models", "scores", "benchmarks"):
        pd.testing.assert_frame_equal(getattr(back, name), getattr(d, name))
    assert back.source == d.source and back.fingerprint() == d.fingerprint()
    bad = d.to_json_dict()
    bad["scores"]["data"][0][2] = 0.5
    with pytest.raises(DataError, match="fingerprint"):
        BenchmarkData.from_json_dict(bad)
    with pytest.raises(DataError):
        BenchmarkData.from_json_dict({"models": {}})


def test_container_validates():
    d = load_shipped()
    extra = pd.DataFrame({"model": ["ghost"], "benchmark": ["mmlu"], "value": [0.5]})
    with pytest.raises(DataError, match="ghost"):
        BenchmarkData(d.models, pd.concat([d.scores, extra]), d.benchmarks)
    with pytest.raises(DataError, match="twice"):
        BenchmarkData(d.models, pd.concat([d.scores, d.scores.iloc[:1]]), d.benchmarks)
    with pytest.raises(DataError, match="repeats"):
        BenchmarkData(pd.concat([d.models, d.models.iloc[:1]]), d.scores, d.benchmarks)
    s = d.scores.copy()
    s.loc[0, "value"] = math.nan
    with pytest.raises(DataError, match="finite"):
        BenchmarkData(d.models, s, d.benchmarks)
    with pytest.raises(DataError, match="lacks"):
        BenchmarkData(d.models.drop(columns="family"), d.scores, d.benchmarks)
    m = d.models.copy()
    m.loc[0, "family"] = None
    assert BenchmarkData(m, d.scores, d.benchmarks).models["family"].isna().sum() == 1
