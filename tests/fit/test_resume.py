"""Killed runs resume: a backtest on the command line and a sweep of ``run_fits`` on the local
process pool, each interrupted (SIGINT, as Ctrl-C sends) right after its first job file appears,
then run again with the same store: the finished jobs are skipped (log line), the rest run, and
the numbers equal an uninterrupted run's.  Slow (real fits, tiny draws; ~1 minute each); the
flags themselves are checked fast."""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from obscale_bayes.cli.args import default_store, store_path
from obscale_bayes.cli.main import build_parser, main

ROOT = Path(__file__).parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def test_resume_flags(tmp_path, capsys):
    p = build_parser()
    for argv in (["backtest"], ["sensitivity", "fit.nc", "--sweep"]):
        assert store_path(p.parse_args(argv)) == default_store()  # on by default
        assert store_path(p.parse_args([*argv, "--resume", "d"])) == "d"
        assert store_path(p.parse_args([*argv, "--no-resume"])) is None
    assert main(["backtest", "--resume", "d", "--no-resume"]) == 2
    assert "not allowed with argument" in capsys.readouterr().err
    f = tmp_path / "afile"
    f.write_text("")
    assert main(["backtest", "--analysis", "agentboard", "--resume", str(f)]) == 2
    err = capsys.readouterr().err  # the library's parameter, as the user's flag, before sampling
    assert (
        err
        == f"obscale-bayes: error: --resume: {f} is a file; give a folder for the finished jobs\n"
    )


def interrupt_after_first_job(
    cmd: list[str], store: Path, cwd: Path, env: dict | None = None
) -> tuple[int, str, int, float]:
    """Start ``cmd``, send it SIGINT once ``store`` holds a finished job; (rc, stderr, jobs kept,
    seconds from SIGINT to exit)."""
    # Python's default Ctrl-C handling in the child, as from a terminal: a SIGINT ignored by
    # the test process (pytest-xdist workers ignore it) would be inherited
    proc = subprocess.Popen(cmd, cwd=cwd, env=env or ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=_default_sigint)  # fmt: skip
    deadline = time.monotonic() + 300
    while not list(store.glob("*.pkl")):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            out, err = proc.communicate()
            pytest.fail(f"no job file appeared (rc {proc.returncode}): {err[-2000:]}")
        time.sleep(0.05)
    children = _children(proc.pid)
    proc.send_signal(signal.SIGINT)
    t0 = time.monotonic()
    _, err = proc.communicate(timeout=400)
    seconds = time.monotonic() - t0
    _wait_gone(children)
    assert not list(store.glob(".*.tmp")), "a partial file was left"
    return proc.returncode, err, len(list(store.glob("*.pkl"))), seconds


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]


def _alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status  # a zombie (not yet reaped by init) is gone


def _wait_gone(pids: list[int], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while any(_alive(p) for p in pids):
        if time.monotonic() > deadline:
            pytest.fail(f"worker processes outlived the interrupted run: {pids}")
        time.sleep(0.1)


def cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "obscale_bayes.cli", *args]
    return subprocess.run(cmd, cwd=cwd, env=ENV, capture_output=True, text=True, timeout=600)


BACKTEST = ["backtest", "--task", "bbh_overall_cot", "--task", "bbh_overall_direct", "--inputs",
            "mmlu,arc_c,hellaswag,humaneval", "--families", "default", "--methods",
            "bayes,flops_only", "--draws", "20", "--tune", "20", "--chains", "1", "--json"]  # fmt: skip


@pytest.mark.slow
def test_killed_backtest_resumes_with_the_same_command(tmp_path):
    store = tmp_path / "jobs"
    cmd = [sys.executable, "-m", "obscale_bayes.cli", *BACKTEST, "--resume", str(store)]
    rc, err, done, seconds = interrupt_after_first_job(cmd, store, tmp_path)
    assert rc == 130, err
    assert seconds < 10, "Ctrl-C waited for the fit in progress"
    assert f"finished fits are kept in {store}; run the same command again" in err
    assert done == 1  # the second target module was still being fitted
    again = cli([*BACKTEST, "--resume", str(store)], tmp_path)
    assert again.returncode == 0, again.stderr
    assert f"skipped {done} finished jobs from {store} (target modules)" in again.stderr
    assert again.stderr.count("target module '") == 1  # only the other one was fitted
    fresh = cli([*BACKTEST, "--no-resume"], tmp_path)
    assert fresh.returncode == 0, fresh.stderr
    assert "skipped" not in fresh.stderr and not (tmp_path / "runs").exists()
    assert json.loads(again.stdout) == json.loads(fresh.stdout)  # same numbers, every one
    assert len(json.loads(fresh.stdout)) == 4


SWEEP = """
import os
import pickle
import sys
import time
from pathlib import Path

from obscale_bayes import progress
from obscale_bayes.data.tables import load_shipped
from obscale_bayes.fit.runner import FitJob, run_fits
from obscale_bayes.model.simulate import simulate


def slope(fit):
    hold = os.environ.get("HOLD_AFTER_FIRST")
    if hold and list(Path(hold).glob("*.pkl")):
        time.sleep(300)  # the later jobs are long: Ctrl-C must not wait for them
    return fit.idata["posterior"].dataset["slope_mean"].to_numpy()


def jobs():
    d = load_shipped()
    keep = d.models.loc[d.models["family"].isin(["Pythia", "Llama-2", "Qwen1.5"]), "model"]
    data = simulate(d.subset(keep.tolist()), None, seed=3)[0]
    kw = {"draws": 30, "tune": 30, "chains": 1}
    return [FitJob(f"seed{i}", data, "k1", {**kw, "seed": i}, slope) for i in range(3)]


if __name__ == "__main__":
    progress.enable()
    store = sys.argv[2]
    if sys.argv[1] == "first":
        run_fits(jobs(), max_workers=1, store=store)
    else:  # resume, then the same jobs uninterrupted (no store) in this process
        resumed = run_fits(jobs(), max_workers=1, store=store)
        fresh = run_fits(jobs(), max_workers=1)
        with open(sys.argv[3], "wb") as f:
            pickle.dump({n: (resumed[n].value, resumed[n].from_store, fresh[n].value)
                         for n in resumed}, f)
"""


@pytest.mark.slow
def test_interrupted_sweep_on_the_process_pool_resumes(tmp_path):
    script = tmp_path / "sweep.py"
    script.write_text(SWEEP)
    store = tmp_path / "jobs"
    rc, err, done, seconds = interrupt_after_first_job(
        [sys.executable, str(script), "first", str(store)], store, tmp_path,
        env={**ENV, "HOLD_AFTER_FIRST": str(store)},
    )  # fmt: skip
    assert rc != 0 and "KeyboardInterrupt" in err
    assert seconds < 20, "Ctrl-C waited for the worker's fit in progress"
    assert done == 1
    out = tmp_path / "out.pkl"
    res = subprocess.run([sys.executable, str(script), "resume", str(store), str(out)],
                         cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=600)  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert f"skipped {done} finished jobs from {store}" in res.stderr
    got = pickle.loads(out.read_bytes())
    assert sum(from_store for _, from_store, _ in got.values()) == done
    for resumed, _, fresh in got.values():
        assert resumed.shape == (1, 30, 1)
        np.testing.assert_array_equal(resumed, fresh)  # same draws as an uninterrupted run
