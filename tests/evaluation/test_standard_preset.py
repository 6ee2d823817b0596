"""The standard preset: exact partitions of its three protocols, the fill-in baselines on data with
known answers, pooling, and the CLI (table / json / plot)."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit

from obscale_bayes.cli.main import main
from obscale_bayes.data.tables import BenchmarkData, load_benchmark_metadata
from obscale_bayes.errors import UsageError
from obscale_bayes.evaluation.backtest import run_backtests
from obscale_bayes.evaluation.standard import (
    FIRST_HALF,
    STANDARD_BENCHMARKS,
    STANDARD_RECORD_COLUMNS,
    family_folds,
    parse_protocols,
    pool_standard,
    run_standard,
    standard_cases,
)
from obscale_bayes.evaluation.standard_methods import fill_baseline, least_squares

BASELINES = ("family_flops", "flops_only", "least_squares", "paper_pca3")


def _table(scores: pd.DataFrame, models: pd.DataFrame) -> BenchmarkData:
    long = scores.rename_axis("model").reset_index().melt(id_vars="model", var_name="benchmark")
    meta = load_benchmark_metadata()
    meta = meta[meta["benchmark"].isin(STANDARD_BENCHMARKS)]
    return BenchmarkData(models, long.dropna(), meta, source="test table")


def _models() -> pd.DataFrame:
    """7 eligible families (3-5 models of known FLOPs), one of 2, 3 models of unknown FLOPs."""
    rows = []
    sizes = {"A": 5, "B": 3, "C": 4, "D": 3, "E": 3, "F": 4, "G": 3, "H": 2}
    rng = np.random.default_rng(3)
    for f, n in sizes.items():
        flops = np.sort(rng.uniform(0.0, 3.5, n))  # log10 FLOPs / 1e21
        for i, lf in enumerate(flops):
            rows.append({"model": f"{f}-{i}", "family": f, "flops_1e21": 10**lf})
    rows[1]["flops_1e21"] = 84.0  # exactly the cutoff: a training model
    rows += [{"model": f"{f}-u", "family": f, "flops_1e21": np.nan} for f in ("A", "C", "H")]
    m = pd.DataFrame(rows)
    m["kind"], m["params_b"], m["tokens_t"] = "base", np.nan, np.nan
    return m


def _linear_table(seed: int = 0) -> BenchmarkData:
    """Scores linear in two latent capabilities: every benchmark an exact linear function of
    any four others (rank 2 < 4)."""
    m = _models()
    rng = np.random.default_rng(seed)
    u = rng.normal(size=(len(m), 2))
    w = rng.uniform(0.02, 0.06, size=(2, 8))
    s = pd.DataFrame(0.5 + u @ w, index=m["model"], columns=list(STANDARD_BENCHMARKS))
    s.iloc[3, 6] = np.nan  # test model A-3 lacks XWinograd (a blank, then a given score)
    s.iloc[4, 1] = np.nan  # test model A-4 lacks ARC-C
    return _table(s, m)


def test_compute_cutoff_is_inclusive_and_drops_unknown_flops():
    t = _linear_table()
    (case,) = standard_cases(t, "compute_cutoff")
    f = t.models.set_index("model")["flops_1e21"]
    assert case.train["A-1"] and f["A-1"] == 84.0  # inclusive cutoff
    assert list(case.train.index[case.train]) == list(f.index[f <= 84.0])
    assert list(case.test.index[case.test]) == list(f.index[f > 84.0])
    unknown = f.index[f.isna()]
    assert not case.train[unknown].any() and not case.test[unknown].any()
    (task,) = case.tasks
    assert task.blank == STANDARD_BENCHMARKS and task.given == ()
    cells = case.cells(task)
    assert set(cells["model"]) == set(case.test.index[case.test])
    assert cells["y"].notna().all()


def test_family_folds_partition_the_eligible_families():
    m = _models()
    folds = family_folds(m, 5, seed=0)
    flat = [f for fold in folds for f in fold]
    assert sorted(flat) == list("ABCDEFG")  # H has 2 models of known FLOPs: not eligible
    assert len(flat) == len(set(flat))
    assert sorted(len(f) for f in folds) == [1, 1, 1, 2, 2]
    assert folds == family_folds(m, 5, seed=0)  # deterministic
    assert any(a != b for a, b in zip(folds, family_folds(m, 5, seed=1), strict=True))
    with pytest.raises(UsageError, match="n_folds"):
        family_folds(m, 8)


def test_family_k1_keeps_the_smallest_model_and_trains_every_other_known_model():
    t = _linear_table()
    cases = standard_cases(t, "family_k1")
    assert [c.name for c in cases] == [f"family_k1/fold{k}" for k in range(5)]
    meta = t.models.set_index("model")
    known = meta["flops_1e21"].notna()
    tested = []
    for case, held in zip(cases, family_folds(t.models), strict=True):
        members = meta["family"].isin(held) & known
        smallest = meta[members].groupby("family")["flops_1e21"].idxmin()
        assert case.train[list(smallest)].all()
        assert set(case.test.index[case.test]) == set(members.index[members]) - set(smallest)
        assert set(case.train.index[case.train]) == set(known.index[known & ~case.test])
        assert not (case.train & case.test).any()
        assert not case.train[~known].any() and not case.test[~known].any()
        tested += list(case.test.index[case.test])
    assert len(tested) == len(set(tested))  # each model is tested in one fold at most


def test_fill_half_given_and_blank_sets_and_their_reverse():
    t = _linear_table()
    (case,) = standard_cases(t, "fill_half")
    a, b = case.tasks
    assert a.given == FIRST_HALF and b.blank == FIRST_HALF
    assert a.blank == b.given == tuple(x for x in STANDARD_BENCHMARKS if x not in FIRST_HALF)
    assert a.test == b.test == tuple(case.test.index[case.test])
    assert a.protocol == b.protocol == "fill_half"
    for task in (a, b):
        assert set(case.cells(task)["benchmark"]) <= set(task.blank)


def test_parse_protocols():
    assert parse_protocols(None) == ("compute_cutoff", "family_k1", "fill_half")
    assert parse_protocols("fill_half, compute_cutoff") == ("fill_half", "compute_cutoff")
    with pytest.raises(UsageError, match="protocols: unknown protocol 'cutoff'"):
        parse_protocols("cutoff")


def test_least_squares_is_exact_on_linear_data():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(30, 4))
    beta = np.array([0.3, -0.2, 0.1, 0.05])
    xn = rng.normal(size=(5, 4))
    np.testing.assert_allclose(least_squares(x, 0.4 + x @ beta, xn), 0.4 + xn @ beta, atol=1e-12)
    with pytest.raises(UsageError, match="least_squares"):
        least_squares(x[:3], x[:3, 0], xn)
    # through the preset: every blank cell of a rank-2 table, also for a model missing a given
    t = _linear_table()
    (case,) = standard_cases(t, "fill_half")
    for task in case.tasks:
        cells = case.cells(task)
        pred = fill_baseline(case, task, cells, "least_squares")
        np.testing.assert_allclose(pred, cells["y"], atol=1e-9)


def test_paper_pca3_reproduces_a_rank_one_table():
    m = _models()
    rng = np.random.default_rng(2)
    u = rng.normal(size=len(m))
    s = pd.DataFrame(0.5 + 0.05 * np.outer(u, rng.uniform(0.5, 1.5, 8)), index=m["model"],
                     columns=list(STANDARD_BENCHMARKS))  # fmt: skip
    (case,) = standard_cases(_table(s, m), "fill_half")
    for task in case.tasks:
        cells = case.cells(task)
        pred = fill_baseline(case, task, cells, "paper_pca3")
        np.testing.assert_allclose(pred, cells["y"], atol=1e-6)


def test_flops_only_recovers_a_floored_sigmoid_in_compute():
    m = _models()
    lf = np.log10(m["flops_1e21"].to_numpy()) + 21.0
    floor = load_benchmark_metadata().set_index("benchmark").loc[list(STANDARD_BENCHMARKS),
                                                                 "floor"].to_numpy()  # fmt: skip
    y = floor + (1 - floor) * expit(1.3 * (lf[:, None] - 23.0))
    (case,) = standard_cases(_table(pd.DataFrame(y, m["model"], STANDARD_BENCHMARKS), m),
                             "compute_cutoff")  # fmt: skip
    ((_, table),) = case.score("flops_only")
    assert table["ae"].max() < 1e-3


def test_baselines_score_the_same_cells_and_pool():
    t = _linear_table()
    cases = standard_cases(t)
    summary, cells = run_backtests(cases, None, BASELINES, progress=False)
    assert set(summary["method"]) == set(BASELINES)
    for task, g in cells.groupby("task"):
        keys = {
            m: set(zip(c["model"], c["benchmark"], strict=True)) for m, c in g.groupby("method")
        }
        assert len({frozenset(k) for k in keys.values()}) == 1, task  # same cells per method
        assert set(keys) == ({"family_flops", "flops_only"} if "fill" not in task
                             else {"least_squares", "paper_pca3"})  # fmt: skip
    rec = pool_standard(summary, cells)
    assert list(rec.columns[: len(STANDARD_RECORD_COLUMNS)]) == STANDARD_RECORD_COLUMNS
    pooled = rec[rec["benchmark"] == "all"]
    assert set(pooled["protocol"]) == {"compute_cutoff", "family_k1", "fill_half"}
    for (p, m), r in pooled.set_index(["protocol", "method"]).iterrows():
        c = cells[(cells["protocol"] == p) & (cells["method"] == m)]
        assert r["n"] == len(c) and np.isclose(r["mae"], c["ae"].mean())
        per = rec[(rec["protocol"] == p) & (rec["method"] == m) & (rec["benchmark"] != "all")]
        assert per["n"].sum() == r["n"]
    ls = pooled[pooled["method"] == "least_squares"]
    assert (ls["mae"] < 1e-9).all()  # exact on the rank-2 table


def test_cli_standard_without_sampling(capsys, tmp_path):
    fig = tmp_path / "standard.png"
    argv = ["backtest", "--preset", "standard", "--methods", ",".join(BASELINES)]
    assert main(argv + ["--protocol", "compute_cutoff,fill_half", "--plot", str(fig)]) == 0
    out = capsys.readouterr().out
    assert "== compute_cutoff: train 77 models, test 35 models" in out
    assert "== fill_half" in out and "== family_k1" not in out
    assert "MAE (pp) per benchmark" in out and "least_squares" in out
    assert fig.stat().st_size > 0
    assert main(argv + ["--protocol", "family_k1", "--json"]) == 0
    recs = json.loads(capsys.readouterr().out)
    assert {r["protocol"] for r in recs} == {"family_k1"}
    assert set(STANDARD_RECORD_COLUMNS) <= set(recs[0])
    assert {r["method"] for r in recs} == {"family_flops", "flops_only"}
    assert main(["backtest", "--protocol", "family_k1"]) == 2
    assert "--protocol" in capsys.readouterr().err
    assert main(argv[:3] + ["--protocol", "nope"]) == 2
    assert "--protocol" in capsys.readouterr().err


@pytest.mark.slow
def test_bayes_on_a_small_table_scores_the_same_cells():
    t = _linear_table()
    with ThreadPoolExecutor(1) as ex:
        rec, cells = run_standard("compute_cutoff,fill_half", None, table=t, draws=60, tune=100,
                                  chains=1, seed=0, executor=ex, progress=False)  # fmt: skip
    b = rec[(rec["method"] == "bayes") & (rec["benchmark"] == "all")]
    assert set(b["protocol"]) == {"compute_cutoff", "fill_half"}
    assert b["divergences"].notna().all() and (b["coverage90"].between(0, 1)).all()
    for task, g in cells.groupby("task"):
        keys = [
            frozenset(zip(c["model"], c["benchmark"], strict=True)) for _, c in g.groupby("method")
        ]
        assert len(set(keys)) == 1 and len(keys) == 3, task


@pytest.mark.slow
def test_cli_standard_with_bayes(capsys, tmp_path):
    fig = tmp_path / "s.png"
    argv = ["backtest", "--preset", "standard", "--protocol", "compute_cutoff", "--draws", "20",
            "--tune", "30", "--chains", "1", "--json", "--plot", str(fig)]  # fmt: skip
    assert main(argv) == 0
    recs = json.loads(capsys.readouterr().out)
    bayes = [r for r in recs if r["method"] == "bayes" and r["benchmark"] == "all"]
    assert len(bayes) == 1 and bayes[0]["n"] == 268 and bayes[0]["width90"] > 0
    assert fig.stat().st_size > 0
