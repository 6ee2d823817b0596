"""A small backtest (two synthetic cases, the joint model fitted through ``run_fits``) on a real
``dask.distributed.LocalCluster`` (2 worker processes, 1 thread each) gives the same numbers as
on the default local process pool, and its job store is read back by a later run anywhere.
Slow: four tiny fits."""

from __future__ import annotations

import pandas as pd
import pytest

from obscale_bayes import testing
from obscale_bayes.evaluation.backtest import run_backtests
from obscale_bayes.evaluation.cases import build_case
from obscale_bayes.fit.jobstore import JobStore
from obscale_bayes.progress import enabled

FAMILIES = ("Pythia", "OPT", "Qwen1.5", "BLOOM", "Llama-2")
INPUTS = "mmlu,arc_c,hellaswag,humaneval"
SETTINGS = {"draws": 40, "tune": 40, "chains": 2, "seed": 5}


@pytest.fixture(scope="module")
def cases():
    data, _ = testing.synthetic_table("k1", 3, families=FAMILIES)
    return [build_case(data, t, INPUTS, "random:0.3:seed=1") for t in ("gsm8k", "winogrande")]


@pytest.mark.slow
def test_backtest_on_a_local_cluster_equals_the_process_pool(cases, tmp_path, capsys):
    from dask.distributed import Client, LocalCluster

    pool = run_backtests(cases, "k1", "bayes_joint", **SETTINGS, progress=False)
    with (
        LocalCluster(n_workers=2, threads_per_worker=1, processes=True) as cluster,
        Client(cluster) as client,
    ):
        assert len(client.nthreads()) == 2
        dask = run_backtests(cases, "k1", "bayes_joint", **SETTINGS, executor=client,
                             progress=False, store=tmp_path)  # fmt: skip
    for a, b in zip(pool, dask, strict=True):  # summary, cells
        pd.testing.assert_frame_equal(a, b)
    summary = pool[0]
    assert list(summary["analysis"]) == ["gsm8k", "winogrande"]
    assert (summary["method"] == "bayes_joint").all() and summary["mse"].notna().all()
    # the cluster's finished fits, kept in the store, are what a later local run reuses
    assert len(JobStore(tmp_path)) == 2
    with enabled():
        again = run_backtests(cases, "k1", "bayes_joint", **SETTINGS, store=tmp_path)
    assert f"skipped 2 finished jobs from {tmp_path}" in capsys.readouterr().err
    for a, b in zip(pool, again, strict=True):
        pd.testing.assert_frame_equal(a, b)
