"""The job store (keys, files, atomic saves) and ``run_fits(store=...)`` skipping finished jobs,
re-running changed and failed ones, and leaving no partial file on Ctrl-C.  Fast: the fits are
replaced by a stand-in that returns at once (the real, killed-and-resumed runs are in
``test_resume.py``)."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from obscale_bayes import testing
from obscale_bayes.errors import UsageError
from obscale_bayes.fit import runner
from obscale_bayes.fit.jobstore import JobStore, as_store, content_hash
from obscale_bayes.fit.runner import FitJob, JobResult, job_key, run_fits
from obscale_bayes.progress import enabled


@pytest.fixture(scope="module")
def table():
    return testing.shipped_subset(("Pythia", "OPT"))


def summary(fit, q=0.5):
    """A post-processing function (its arguments enter the key)."""
    return q


def job(table, name="a", seed=1, **kw):
    return FitJob(
        name, table, "default", {"draws": 10, "seed": seed, **kw}, partial(summary, q=0.5)
    )


def test_key_depends_on_content_not_on_objects(table, tmp_path):
    s = JobStore(tmp_path)
    k = job_key(s, job(table))
    copy = table.subset(models=list(table.models["model"]))  # equal content, another object
    assert job_key(s, job(copy)) == k
    # cores and progress do not change the draws: not in the key
    assert job_key(s, job(table, cores=3, progress=True)) == k
    assert job_key(s, FitJob("a", table, "default", {"draws": 10, "seed": 1},
                             partial(summary, q=0.5))) == k  # fmt: skip
    changed = [
        job(table, name="b"),
        job(table, seed=2),
        job(table, draws=11),
        FitJob("a", table, "k2", {"draws": 10, "seed": 1}, partial(summary, q=0.5)),
        FitJob("a", table, "default", {"draws": 10, "seed": 1}, partial(summary, q=0.9)),
        FitJob("a", table, "default", {"draws": 10, "seed": 1}),
        job(table.subset(models=list(table.models["model"])[1:])),
    ]
    keys = [job_key(s, j) for j in changed]
    assert k not in keys and len(set(keys)) == len(keys)
    # one score changed
    scores = table.scores.copy()
    scores.loc[0, "value"] += 1e-9
    other = type(table)(table.models, scores, table.benchmarks)
    assert job_key(s, job(other)) != k


def test_content_hash_of_frames_arrays_and_scalars():
    df = pd.DataFrame({"a": [1.0, np.nan], "b": ["x", "y"]}, index=["m1", "m2"])
    assert content_hash(df) == content_hash(df.copy())
    assert content_hash(df) != content_hash(df.rename(index={"m2": "m3"}))
    assert content_hash(df) != content_hash(df.astype({"a": "float32"}))
    assert content_hash(np.arange(3)) != content_hash(np.arange(3).astype(float))
    assert content_hash(np.float64(0.5)) == content_hash(0.5)
    assert content_hash({"a": 1, "b": 2}) == content_hash({"b": 2, "a": 1})
    assert content_hash({1, 2, 3}) == content_hash({3, 2, 1})
    assert content_hash([[1], 2]) != content_hash([[1, 2]])
    assert content_hash(["ab", "c"]) != content_hash(["a", "bc"])
    assert content_hash((1,)) != content_hash([1])


CROSS_PROCESS_JOB = """
from functools import partial
from obscale_bayes import testing
from obscale_bayes.evaluation.backtest import _bayes_draws
from obscale_bayes.evaluation.cases import paper_case
from obscale_bayes.fit.runner import FitJob

table = testing.shipped_subset(("Pythia", "OPT"))
post = partial(_bayes_draws, case=paper_case("agentboard"), seed=0)
job = FitJob("a", table, "default", {"draws": 10, "seed": 1}, post)
"""


def test_key_is_the_same_in_another_process(tmp_path):
    """Keys never use ``hash()`` (salted per process) or addresses: a re-run finds its jobs."""
    ns: dict = {}
    exec(CROSS_PROCESS_JOB, ns)  # noqa: S102 - the same job built here
    code = CROSS_PROCESS_JOB + (
        "from obscale_bayes.fit.jobstore import JobStore\n"
        "from obscale_bayes.fit.runner import job_key\n"
        f"print(job_key(JobStore({str(tmp_path)!r}), job))\n"
    )
    env = {**os.environ, "PYTHONHASHSEED": "123"}  # another str hash() than this process's
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env=env, cwd=Path(__file__).parents[2])  # fmt: skip
    assert out.stdout.strip() == job_key(JobStore(tmp_path), ns["job"])


def test_save_load_and_manifest(tmp_path):
    s = JobStore(tmp_path / "jobs")
    res = JobResult("a", np.arange(4), SimpleNamespace(passed=True, approximate=False), 1.5)
    f = s.save("k1", res, {"kind": "fit", "name": "a"})
    assert f == s.file("k1") and len(s) == 1
    back = s.load("k1")
    assert back.name == "a" and back.seconds == 1.5
    np.testing.assert_array_equal(back.value, res.value)
    man = json.loads((tmp_path / "jobs" / "k1.json").read_text())
    assert man["name"] == "a" and man["kind"] == "fit" and "obscale_bayes" in man["environment"]
    assert s.load("missing") is None
    assert not list((tmp_path / "jobs").glob(".*"))  # no temporary files left


def test_damaged_or_foreign_file_is_run_again(tmp_path, caplog):
    s = JobStore(tmp_path)
    s.file("bad").write_bytes(b"not a pickle")
    with caplog.at_level(logging.WARNING, logger="obscale_bayes"):
        assert s.load("bad") is None
    assert "unreadable job file" in caplog.text
    s.save("k", JobResult("a", 1, None, 0.0), {})
    s.file("k").rename(s.file("other"))  # a file under the wrong key
    assert s.load("other") is None


def test_store_argument_errors(tmp_path):
    f = tmp_path / "file.txt"
    f.write_text("x")
    with pytest.raises(UsageError, match=r"^store: .*file.txt is a file"):
        JobStore(f)
    with pytest.raises(UsageError, match="^store: expected a folder path"):
        as_store(3)
    assert as_store(None) is None
    s = JobStore(tmp_path)
    assert as_store(s) is s and isinstance(as_store(str(tmp_path)), JobStore)


def test_interrupted_save_leaves_no_result_file(tmp_path, monkeypatch):
    s = JobStore(tmp_path)
    real = os.replace

    def interrupted(src, dst):
        if str(dst).endswith(".pkl"):
            raise KeyboardInterrupt
        real(src, dst)

    monkeypatch.setattr("obscale_bayes.io.os.replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        s.save("k", JobResult("a", 1, None, 0.0), {})
    assert not list(tmp_path.glob("*.pkl")) and not list(tmp_path.glob(".*.tmp"))
    assert s.load("k") is None


# ---------------------------------------------------------------------------- run_fits(store=)
DIAG = SimpleNamespace(
    passed=True, approximate=False, max_rhat=1.0, min_ess_bulk=500.0, divergences=0
)


@pytest.fixture
def fake_fits(monkeypatch):
    """Replace the worker's fit by a stand-in: value = (name, seed); records the jobs run."""
    calls: list[str] = []

    def run_job(job, cores):
        calls.append(job.name)
        if job.fit_kwargs.get("fail"):
            raise ValueError("bad job")
        if job.fit_kwargs.get("interrupt"):
            raise KeyboardInterrupt
        time.sleep(job.fit_kwargs.get("sleep", 0))
        return (job.name, job.fit_kwargs["seed"]), DIAG, 0.01

    monkeypatch.setattr(runner, "_run_job", run_job)
    return calls


def run(jobs, store, **kw):
    with ThreadPoolExecutor(1) as ex:
        return run_fits(jobs, ex, warm_cache=False, store=store, **kw)


def test_finished_jobs_are_skipped_changed_ones_rerun(table, tmp_path, fake_fits, capsys):
    jobs = [job(table, n, seed=i) for i, n in enumerate("abc")]
    first = run(jobs, tmp_path)
    assert fake_fits == ["a", "b", "c"] and len(JobStore(tmp_path)) == 3
    assert not any(r.from_store for r in first.values())
    with enabled():
        again = run(jobs, tmp_path)
    assert fake_fits == ["a", "b", "c"]  # nothing ran
    assert f"obscale-bayes: skipped 3 finished jobs from {tmp_path}" in capsys.readouterr().err
    assert list(again) == ["a", "b", "c"] and all(r.from_store for r in again.values())
    assert {n: r.value for n, r in again.items()} == {n: r.value for n, r in first.items()}
    jobs[1] = job(table, "b", seed=7)  # its inputs changed: run again, the others not
    with enabled():
        third = run(jobs, tmp_path)
    assert fake_fits == ["a", "b", "c", "b"] and third["b"].value == ("b", 7)
    assert "skipped 2 finished jobs" in capsys.readouterr().err


def test_failed_jobs_are_not_stored(table, tmp_path, fake_fits):
    jobs = [job(table, "ok"), job(table, "bad", fail=True)]
    res = run(jobs, tmp_path, on_error="collect")
    assert res["ok"].ok and not res["bad"].ok and len(JobStore(tmp_path)) == 1
    run(jobs, tmp_path, on_error="collect")
    assert fake_fits == ["ok", "bad", "bad"]


def test_ctrl_c_keeps_finished_jobs_and_cancels_the_rest(table, tmp_path, fake_fits):
    jobs = [job(table, "a"), job(table, "b", interrupt=True), job(table, "c", sleep=1.0),
            job(table, "d")]  # fmt: skip
    with pytest.raises(KeyboardInterrupt):
        run(jobs, tmp_path)
    assert fake_fits == ["a", "b", "c"]  # d, not started, was cancelled
    assert len(JobStore(tmp_path)) == 1  # a; c finished after Ctrl-C: not kept
    assert not list(tmp_path.glob(".*.tmp"))
    jobs[1] = job(table, "b")  # Ctrl-C is over: resume
    jobs[2] = job(table, "c")
    res = run(jobs, tmp_path)
    assert [n for n, r in res.items() if r.from_store] == ["a"]
    assert fake_fits == ["a", "b", "c", "b", "c", "d"]


def test_a_sweep_resumes_from_its_store(table, tmp_path, fake_fits, monkeypatch, capsys):
    from obscale_bayes.checks.sensitivity import run_sweep

    def forecast_table(job, cores):  # what the sweep's post-processing returns, per variant
        fake_fits.append(job.name)
        shift = 0.1 if job.name == "k2" else 0.0
        t = pd.DataFrame({"model": ["new"], "family": ["Pythia"], "flops": [1e23],
                          "benchmark": ["mmlu"], "median": [0.5 + shift], "lower": [0.4],
                          "upper": [0.6]})  # fmt: skip
        return t, DIAG, 0.01

    monkeypatch.setattr(runner, "_run_job", forecast_table)
    monkeypatch.setattr(runner, "warm_compile_cache", lambda jobs: 0)
    kw = {"variants": ["k2"], "targets": [("Pythia", 1e23)], "fit_kwargs": {"draws": 10},
          "store": tmp_path}  # fmt: skip
    with ThreadPoolExecutor(1) as ex:
        first, _ = run_sweep(table, executor=ex, progress=False, **kw)
        with enabled():
            again, _ = run_sweep(table, executor=ex, progress=False, **kw)
    assert sorted(fake_fits) == ["default", "k2"]  # each variant fitted once
    assert f"skipped 2 finished jobs from {tmp_path}" in capsys.readouterr().err
    pd.testing.assert_frame_equal(first, again)
    assert first.loc[first["variant"] == "k2", "shift"].item() == pytest.approx(0.5)


@pytest.fixture
def python_ctrl_c():
    """Python's own Ctrl-C handler, as in a user's process (pytest-xdist workers ignore SIGINT)."""
    import signal

    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, old)


def test_ctrl_c_stops_a_library_that_swallows_it(python_ctrl_c):
    """nutpie catches KeyboardInterrupt and returns its partial draws: inside the guard, Ctrl-C
    still stops the run and comes out as KeyboardInterrupt."""
    import signal

    from obscale_bayes.fit.jobstore import ctrl_c_stops

    def sampler():  # like nutpie.sample
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)
            return "all draws"
        except KeyboardInterrupt:
            return "partial draws"

    assert sampler() == "partial draws"  # what happens without the guard
    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        with ctrl_c_stops():
            sampler()
    assert signal.getsignal(signal.SIGINT) is before
