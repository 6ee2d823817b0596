"""The command line's shared pieces without sampling: the parameter -> flag map, the one
declaration of the sampling options, the logger the CLI turns on, atomic writes, and the rule
that library errors name parameters, not flags (``test_architecture.py`` checks that the library
never prints)."""

from __future__ import annotations

import ast
import contextlib
import io
import logging
from pathlib import Path

import pytest

from obscale_bayes import progress
from obscale_bayes.cli.args import flag_names, sampling_kwargs, with_flags
from obscale_bayes.cli.main import build_parser, main
from obscale_bayes.errors import UsageError
from obscale_bayes.io import atomic_write

PACKAGE = Path(__file__).resolve().parents[2] / "obscale_bayes"


def _command(name: str):
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    return sub.choices[name]


def test_flag_names_are_read_off_each_command():
    fit = flag_names(_command("fit"))
    assert fit["draws"] == "--draws" and fit["sampler"] == "--sampler"
    assert fit["target_accept"] == "--target-accept"
    assert fit["paths"] == "--data"  # read_tables(paths) is the fit command's --data
    assert "path" not in flag_names(_command("check"))  # positional: no flag
    assert "ci" in flag_names(_command("forecast")) and "ci" not in fit


@pytest.mark.parametrize(
    "message, expected",
    [
        ("draws: must be a positive whole number, got 0", "--draws: must be"),
        ("target_accept: must lie in (0, 1)", "--target-accept: must"),
        ("task gsm8k: only 2 model(s) have this task", "--task gsm8k: only"),
        ("paths: a.csv is given twice", "--data: a.csv is given twice"),
        ("family 'x' is unknown", "family 'x' is unknown"),  # no "name:" at the start
        ("runs/fit.nc: no such fit file", "runs/fit.nc: no such fit file"),
        ("ci: not a flag of fit", "ci: not a flag of fit"),
    ],
)
def test_with_flags_maps_a_leading_parameter_of_the_command(message, expected):
    flags = flag_names(_command("fit")) | {"task": "--task"}
    assert with_flags(message, flags).startswith(expected)


def test_sampling_options_are_declared_once_with_each_commands_defaults():
    p = build_parser()
    fit = p.parse_args(["fit", "--out", "x.nc"])
    assert sampling_kwargs(fit) == {"draws": 3000, "tune": 1500, "chains": 4, "seed": 0,
                                    "sampler": "nutpie", "target_accept": 0.95, "retry": True,
                                    "inference": "nuts"}  # fmt: skip
    bt = p.parse_args(["backtest"])
    assert sampling_kwargs(bt) == {"draws": 1000, "tune": 1000, "chains": 4, "seed": 0,
                                   "inference": "nuts"}  # fmt: skip
    se = p.parse_args(["sensitivity", "fit.nc", "--cores", "2", "--target-accept", "0.95"])
    assert sampling_kwargs(se) == {"draws": 1000, "tune": 1000, "chains": 4, "seed": 0,
                                   "sampler": "nutpie", "target_accept": 0.95, "cores": 2,
                                   "inference": "nuts"}  # fmt: skip


def test_a_library_usage_error_reaches_the_user_with_the_flag(monkeypatch, tmp_path):
    from obscale_bayes.fit.fitted import CapabilityModel

    def fit(*args, **kwargs):
        raise UsageError("target_accept: the library says no")

    monkeypatch.setattr(CapabilityModel, "fit", fit)
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        rc = main(["fit", "--out", str(tmp_path / "f.nc"), "--quiet"])
    assert rc == 2
    assert err.getvalue() == "obscale-bayes: error: --target-accept: the library says no\n"


def test_the_cli_logs_through_the_package_logger_and_restores_it(monkeypatch, tmp_path):
    from obscale_bayes.fit.fitted import CapabilityModel

    def fit(*args, **kwargs):
        progress.get_logger("obscale_bayes.fit.fitted").info("fitting 'x' on ...")
        raise UsageError("draws: stop here")

    monkeypatch.setattr(CapabilityModel, "fit", fit)
    logger = logging.getLogger(progress.LOGGER_NAME)
    before = (list(logger.handlers), logger.propagate, logger.level)
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        main(["fit", "--out", str(tmp_path / "f.nc")])
    lines = err.getvalue().splitlines()
    assert lines[0].startswith("obscale-bayes: data: ")  # the CLI's stage line
    assert lines[1] == "obscale-bayes: fitting 'x' on ..."  # the library's line, same format
    assert lines[2] == "obscale-bayes: error: --draws: stop here"
    assert (list(logger.handlers), logger.propagate, logger.level) == before
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        main(["fit", "--out", str(tmp_path / "f.nc"), "--quiet"])
    assert err.getvalue() == "obscale-bayes: error: --draws: stop here\n"


def test_atomic_write_leaves_nothing_behind_on_error(tmp_path):
    def boom(f):
        f.write(b"partial")
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError):
        atomic_write(tmp_path / "sub" / "x.bin", boom)
    assert list((tmp_path / "sub").iterdir()) == []
    atomic_write(tmp_path / "sub" / "x.txt", lambda f: f.write("ok\n"), binary=False)
    assert (tmp_path / "sub" / "x.txt").read_text() == "ok\n"


# ---------------------------------------------------------------------------- library rules
def _library_modules():
    for p in sorted(PACKAGE.rglob("*.py")):
        if "cli" not in p.relative_to(PACKAGE).parts:
            yield p, ast.parse(p.read_text(encoding="utf-8"))


def test_library_errors_name_parameters_not_flags():
    found = []
    for p, tree in _library_modules():
        for n in ast.walk(tree):
            if not (isinstance(n, ast.Raise) and isinstance(n.exc, ast.Call)):
                continue
            for c in ast.walk(n.exc):
                if isinstance(c, ast.Constant) and isinstance(c.value, str) and "--" in c.value:
                    found.append(f"{p.relative_to(PACKAGE)}:{n.lineno}: {c.value.strip()}")
    assert not found, f"library errors that name command-line flags: {found}"
