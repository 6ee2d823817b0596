"""The many-fits runner: job validation and failures (fast), and the same small sweep on the
default process pool and on a real ``dask.distributed.LocalCluster`` giving identical draws
(slow: two tiny fits on each)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from functools import partial

import numpy as np
import pytest

from obscale_bayes.data.tables import load_shipped
from obscale_bayes.errors import ObscaleError, UsageError
from obscale_bayes.fit.runner import FitJob, FitJobError, JobResult, run_fits
from obscale_bayes.model.simulate import simulate
from obscale_bayes.progress import enabled
from obscale_bayes.spec.spec import load_spec


@pytest.fixture(scope="module")
def tiny():
    """Simulated scores with the layout of 5 families (31 models) of the shipped table."""
    d = load_shipped()
    fams = ["Pythia", "Llama-2", "Qwen1.5", "OPT", "BLOOM"]
    sub = d.subset(d.models.loc[d.models["family"].isin(fams), "model"].tolist())
    return simulate(sub, None, seed=3)[0]


def no_humaneval(data):
    """Data without the default spec's third anchor: the fit fails with a SpecError."""
    keep = [b for b in data.benchmark_ids if b != "humaneval"]
    return data.subset(benchmarks=keep, drop_empty_benchmarks=True)


def test_job_validation(tiny):
    with pytest.raises(UsageError, match="'a' is used twice"):
        run_fits([("a", tiny, "default"), ("a", tiny, "k2")])
    with pytest.raises(UsageError, match="FitJob or a tuple"):
        run_fits([("a", tiny)])
    with pytest.raises(UsageError, match="on_error"):
        run_fits([("a", tiny, "default")], on_error="ignore")
    assert run_fits([]) == {}


def test_failing_job_is_named(tiny):
    jobs = [
        FitJob(
            "broken",
            no_humaneval(tiny),
            load_spec("default"),
            {"draws": 10, "tune": 10, "chains": 1},
        )
    ]
    with ThreadPoolExecutor(1) as ex:
        with pytest.raises(FitJobError, match="fit job 'broken' failed: SpecError") as ei:
            run_fits(jobs, ex, progress=False)
    assert isinstance(ei.value, ObscaleError)  # the CLI prints it on one line
    assert "humaneval" in str(ei.value)


def test_failing_job_collected(tiny, capsys):
    jobs = [("broken", no_humaneval(tiny), "default", {"draws": 10, "tune": 10, "chains": 1})]
    with ThreadPoolExecutor(1) as ex, enabled():  # progress lines go to the package logger
        res = run_fits(jobs, ex, on_error="collect")
    r = res["broken"]
    assert isinstance(r, JobResult) and not r.ok and r.value is None
    assert r.error.startswith("SpecError:")
    err = capsys.readouterr().err
    assert "obscale-bayes: [1/1] fit 'broken' FAILED: SpecError" in err


def slope_draws(fit):
    """Post-processing run in the worker: a small picklable array instead of the whole fit."""
    return fit.idata["posterior"].dataset["slope_mean"].to_numpy()


@pytest.mark.slow
def test_sweep_on_the_process_pool(tiny, capsys):
    """Labelled jobs, post-processing in the workers, same seed same draws; the same sweep on a
    dask LocalCluster is compared with the pool in tests/fit/test_dask_runner.py."""
    kw = {"draws": 100, "tune": 150, "chains": 2}
    jobs = [
        FitJob("seed1", tiny, "default", {**kw, "seed": 1}, slope_draws),
        FitJob("seed2", tiny, "default", {**kw, "seed": 2}, partial(slope_draws)),
    ]
    with enabled():
        pool = run_fits(jobs)
    err = capsys.readouterr().err
    assert err.count("done in") == 2 and "'seed1'" in err and "'seed2'" in err
    assert list(pool) == ["seed1", "seed2"]  # job order, labelled
    for res in pool.values():
        assert res.ok and res.value.shape == (2, 100, 3)
        assert res.diagnostics.n_chains == 2 and np.isfinite(res.diagnostics.max_rhat)
    assert not np.array_equal(pool["seed1"].value, pool["seed2"].value)
