"""Splits: sizes, the `<=` cutoff, unknown FLOPs, families, validation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from obscale_bayes.errors import UsageError
from obscale_bayes.evaluation import splits
from obscale_bayes.evaluation.cases import paper_case
from obscale_bayes.evaluation.presets import ANALYSES, DEFAULT_RAW_DIR, read_raw_tables


@pytest.fixture
def models():
    return pd.DataFrame(
        {
            "model": [f"m{i}" for i in range(8)],
            "family": ["A", "A", "A", "B", "B", "C", "C", "C"],
            "flops_1e21": [1.0, 10.0, 84.0, 84.0001, np.nan, 5.0, 50.0, 500.0],
            "params_b": [1, 7, 13, 14, 7, 1, 7, 70],
        }
    )


def test_flops_cutoff_is_inclusive_and_unknown_goes_to_test(models):
    s = splits.flops_cutoff(models, 84.0)
    assert s.train_ids == ["m0", "m1", "m2", "m5", "m6"]
    assert s.test_ids == ["m3", "m4", "m7"]
    assert not (s.train & s.test).any()


def test_flops_cutoff_drop_unknown(models):
    s = splits.flops_cutoff(models, 84.0, unknown="drop")
    assert s.test_ids == ["m3", "m7"]
    assert s.dropped_ids == ["m4"]


def test_top_fraction():
    y = pd.Series([0.1, 0.9, np.nan, 0.5, 0.95, 0.2, 0.3, 0.4, 0.6, 0.7, 0.8, 0.05],
                  index=[f"m{i}" for i in range(12)])  # fmt: skip
    s = splits.top_fraction(y, 0.1)  # 11 known -> int(1.1) = 1
    assert s.test_ids == ["m4"]
    assert s.dropped_ids == ["m2"]
    s2 = splits.top_fraction(y, 0.25)  # int(2.75) = 2
    assert set(s2.test_ids) == {"m4", "m1"}
    assert s2.train.sum() == 9


def test_leave_family_out(models):
    s = splits.leave_family_out(models, "C", k_smallest=1)
    assert s.test_ids == ["m6", "m7"]
    assert "m5" in s.train_ids and len(s.train_ids) == 6
    s0 = splits.leave_family_out(models, "C", k_smallest=0)
    assert s0.test_ids == ["m5", "m6", "m7"]
    # FLOPs unknown inside the family: rank by params
    s_b = splits.leave_family_out(models, "B", k_smallest=1)
    assert s_b.test_ids == ["m3"]


def test_random_split(models):
    s = splits.random_split(models, 0.25, seed=3)
    assert s.test.sum() == 2 and s.train.sum() == 6
    assert splits.random_split(models, 0.25, seed=3).test_ids == s.test_ids


@pytest.mark.parametrize(
    "call",
    [
        lambda m: splits.flops_cutoff(m, 0.5),  # empty train
        lambda m: splits.flops_cutoff(m, -1.0),
        lambda m: splits.flops_cutoff(m, 84.0, unknown="keep"),
        lambda m: splits.flops_cutoff(m.drop(columns="flops_1e21"), 84.0),
        lambda m: splits.leave_family_out(m, "Z"),
        lambda m: splits.leave_family_out(m, "B", k_smallest=2),
        lambda m: splits.random_split(m, 1.0, 0),
        lambda m: splits.random_split(m, 0.0, 0),
        lambda m: splits.top_fraction(m["flops_1e21"], 1.5),
        lambda m: splits.top_fraction(m["flops_1e21"], 0.05),  # int(0.35) = 0 test models
        lambda m: splits.flops_cutoff(m.iloc[:0], 84.0),
    ],
)
def test_nonsense_raises_usage_error(models, call):
    with pytest.raises(UsageError) as err:
        call(models)
    assert "\n" not in str(err.value)


@pytest.mark.skipif(
    not (DEFAULT_RAW_DIR / "base_llm_benchmark_eval.csv").exists(), reason="no shared tables"
)
def test_preset_sizes_match_the_paper():
    raw = read_raw_tables()
    expected = {
        "word_unscramble": (44, 19), "persian_qa": (40, 18), "arith_3ds": (30, 33),
        "arith_2dm": (30, 33), "gsm8k_plain": (45, 28), "gsm8k_cot": (47, 28),
        "gsm8k_cot_sc5": (47, 28), "agentbench": (20, 2), "agentboard": (10, 1),
    }  # fmt: skip
    assert [a.key for a in ANALYSES] == list(expected)
    for a in ANALYSES:
        d = paper_case(a, raw, check_sizes=False)
        assert (int(d.train.sum()), int(d.test.sum())) == expected[a.key], a.key
    assert raw["base"].loc["cerebras/btlm-3b-8k-base", "flops_1e21"] == pytest.approx(11.286)
    bench = paper_case("agentbench", raw)
    assert set(bench.models.index[bench.test]) == {"gpt-4-0613", "claude-2.0"}
    board = paper_case("agentboard", raw)
    assert list(board.models.index[board.test]) == ["gpt-4-0314"]


def test_every_split_is_a_partition_of_the_kept_models(models):
    for s in (
        splits.flops_cutoff(models, 84.0),
        splits.flops_cutoff(models, 84.0, unknown="drop"),
        splits.top_fraction(models.set_index("model")["params_b"].astype(float), 0.25),
        splits.leave_family_out(models, "A", k_smallest=1),
        splits.random_split(models, 0.5, seed=0),
    ):
        assert not (s.train & s.test).any()
        assert sorted(s.train_ids + s.test_ids + s.dropped_ids) == sorted(s.ids)


def test_flops_cutoff_on_an_index_table_and_exact_boundary():
    t = pd.DataFrame({"family": list("ABCD"), "flops_1e21": [22.0, 22.0 + 1e-9, 21.999, 5.0]},
                     index=["w", "x", "y", "z"])  # fmt: skip
    s = splits.flops_cutoff(t, 22.0)
    assert s.train_ids == ["w", "y", "z"] and s.test_ids == ["x"]


def test_top_fraction_picks_exactly_the_largest_and_breaks_ties_by_order():
    rng = np.random.default_rng(0)
    y = pd.Series(rng.permutation(100).astype(float), index=[f"m{i}" for i in range(100)])
    s = splits.top_fraction(y, 0.1)
    assert sorted(y[s.test].to_list()) == list(np.arange(90.0, 100.0))
    tie = pd.Series([1.0, 3.0, 3.0, 3.0, 0.0, 2.0, 2.0, 1.0, 0.0, 0.5])
    assert splits.top_fraction(tie, 0.2).test_ids == [1, 2]  # first two of the three 3.0s


def test_leave_family_out_keeps_the_k_smallest_by_flops(models):
    s = splits.leave_family_out(models, "C", k_smallest=2)
    assert s.test_ids == ["m7"] and {"m5", "m6"} <= set(s.train_ids)
    shuffled = models.sample(frac=1.0, random_state=1)
    s2 = splits.leave_family_out(shuffled, "A", k_smallest=1)
    assert set(s2.test_ids) == {"m1", "m2"}  # m0 has the least compute wherever it sits
    with pytest.raises(UsageError, match="choose from A, B, C"):
        splits.leave_family_out(models, "Z")


def test_random_split_is_uniform_over_models():
    # every model is held out with probability n_test / n: a binomial check over 2000 seeds
    t = pd.DataFrame({"family": ["A"] * 10}, index=[f"m{i}" for i in range(10)])
    counts = np.zeros(10)
    for seed in range(2000):
        counts += splits.random_split(t, 0.3, seed=seed).test.to_numpy()
    p, n = 0.3, 2000
    assert np.all(np.abs(counts / n - p) < 4 * np.sqrt(p * (1 - p) / n))
    assert splits.random_split(t, 0.3, seed=1).test_ids != splits.random_split(t, 0.3, 2).test_ids
