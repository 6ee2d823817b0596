"""What the commands share: argument types, output-path checks, the sampling options, and the
map from library parameter names to command-line flags.

The library names *parameters* in its messages (``draws: must be ...``, ``ci: ...``); only the
command line knows flags.  :func:`flag_names` reads a command's flags off its parser, and
:func:`with_flags` rewrites a message's leading parameter name into the flag the user typed, so
a library error reads ``--draws: must be ...`` on the command line.
"""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path
from typing import Any

from obscale_bayes.errors import UsageError
from obscale_bayes.fit.sampling import (
    ADVI_ITERATIONS,
    DEFAULT_TARGET_ACCEPT,
    INFERENCES,
    RETRY_TARGET_ACCEPT,
)
from obscale_bayes.validation import check_flops

__all__ = [
    "DEFAULT_STORE",
    "STORE_ENV",
    "default_store",
    "MIN_FLOPS",
    "PROG",
    "add_resume_options",
    "add_sampling_options",
    "add_table_options",
    "check_writable",
    "figure_path",
    "flag_names",
    "parse_flops",
    "positive_int",
    "probability",
    "sampling_kwargs",
    "seed",
    "store_path",
    "table_kwargs",
    "with_flags",
]

PROG = "obscale-bayes"
#: Smallest accepted ``--flops``: anything below is surely a unit mistake (1e21 units, params).
MIN_FLOPS = 1e15
#: Folder of finished fits that ``backtest`` and ``sensitivity --sweep`` resume from by default.
DEFAULT_STORE = "runs/jobs"
#: Environment variable that moves :data:`DEFAULT_STORE` (the test suite points it at a
#: temporary folder so that tests never write into the working tree).
STORE_ENV = "OBSCALE_BAYES_JOBS"
#: Library parameter -> command-line dest, where the two are named differently.
PARAMETER_ALIASES = {"paths": "data", "extra_benchmarks": "benchmarks"}
# A leading parameter name: "draws: ..." or "task gsm8k: ..." (the name, then one token).
_LEADING_NAME = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)(?=:|\s+\S+:)")


# ---------------------------------------------------------------------------- argument types
def positive_int(text: str) -> int:
    """argparse type: a whole number >= 1."""
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be a positive whole number, got {v}")
    return v


def seed(text: str) -> int:
    """argparse type: a random seed, 0 to 2**32 - 1."""
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number") from None
    if not 0 <= v < 2**32:
        raise argparse.ArgumentTypeError(f"must be a whole number from 0 to 2**32 - 1, got {v}")
    return v


def probability(text: str) -> float:
    """argparse type: a probability strictly between 0 and 1 (e.g. a target acceptance rate)."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number") from None
    if not 0.0 < v < 1.0:
        raise argparse.ArgumentTypeError(f"must lie strictly between 0 and 1, got {text}")
    return v


def parse_flops(text: str | float) -> float:
    """Validate one FLOPs value given on the command line: absolute training FLOPs (``1e24``),
    at least :data:`MIN_FLOPS`."""
    f = check_flops(text)
    if f < MIN_FLOPS:
        raise UsageError(
            f"flops: {text} FLOPs is far too small for a language model; give absolute "
            "training FLOPs (e.g. 8.4e22), not units of 1e21"
        )
    return f


# ---------------------------------------------------------------------------- output files
def check_writable(path: str | os.PathLike[str], option: str) -> Path:
    """Fail early (before any work) when ``path`` cannot be written as an output file."""
    p = Path(path)
    if str(path).strip() == "":
        raise UsageError(f"{option}: empty file name; give a path")
    if p.is_dir():
        raise UsageError(f"{option}: {p} is a directory; give a file name inside it")
    parent = p.parent
    while not parent.exists():
        if parent == parent.parent:
            break
        parent = parent.parent
    if parent.exists() and not parent.is_dir():
        raise UsageError(f"{option}: cannot create {p}: {parent} is a file, not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"{option}: cannot write {p}: no write permission in {parent}")
    return p


def figure_path(path: str | os.PathLike[str], option: str = "--plot") -> Path:
    """:func:`check_writable` plus the figure-type check of
    :func:`obscale_bayes.plots.common.figure_format`, before any work."""
    from obscale_bayes.plots.common import figure_format

    p = check_writable(path, option)
    try:
        figure_format(p)
    except UsageError as e:
        raise UsageError(f"{option}: {e}") from None
    return p


# ---------------------------------------------------------------------------- sampling options
def add_sampling_options(
    parser: argparse.ArgumentParser,
    *,
    draws: int,
    tune: int,
    chains: int,
    seed_help: str = "random seed (0): same seed, same draws",
    what: str = "",
    backend: bool = True,
    retry: bool = False,
) -> None:
    """Declare ``--draws --tune --chains --seed`` and, with ``backend``, ``--sampler
    --target-accept --cores`` (and ``--no-retry`` with ``retry``): the options of
    :meth:`CapabilityModel.fit`, with this command's defaults (``what`` prefixes their help,
    e.g. ``"sweep: "``)."""
    parser.add_argument(
        "--draws",
        type=positive_int,
        default=draws,
        help=f"{what}posterior draws per chain ({draws})",
    )
    parser.add_argument(
        "--tune", type=positive_int, default=tune, help=f"{what}warm-up steps per chain ({tune})"
    )
    parser.add_argument(
        "--chains", type=positive_int, default=chains, help=f"{what}number of chains ({chains})"
    )
    parser.add_argument("--seed", type=seed, default=0, help=seed_help)
    if not backend:
        return
    parser.add_argument(
        "--sampler",
        choices=("nutpie", "pymc"),
        default="nutpie",
        help=f"{what}NUTS implementation (nutpie)",
    )
    parser.add_argument(
        "--target-accept",
        type=probability,
        default=DEFAULT_TARGET_ACCEPT,
        metavar="P",
        help=f"{what}NUTS target acceptance rate ({DEFAULT_TARGET_ACCEPT}); raise it (e.g. "
        "0.98) after divergences",
    )
    parser.add_argument(
        "--cores",
        type=positive_int,
        default=None,
        help=f"{what}chains run in parallel (default: one per chain, up to the CPU count)",
    )
    parser.add_argument(
        "--inference",
        choices=INFERENCES,
        default="nuts",
        help=f"{what}nuts (default) or advi: mean-field ADVI, the fast approximate mode for "
        "tables too big for NUTS (narrower bands; docs/performance.md); --draws are then "
        "independent draws per pseudo-chain, --tune/--sampler/--target-accept unused",
    )
    parser.add_argument(
        "--iterations",
        type=positive_int,
        default=None,
        metavar="N",
        help=f"{what}ADVI optimisation steps ({ADVI_ITERATIONS}); with --inference advi only",
    )
    if retry:
        parser.add_argument(
            "--no-retry",
            dest="retry",
            action="store_false",
            help=f"{what}keep a first run that fails the convergence gate (default: sample once "
            f"more at target acceptance {RETRY_TARGET_ACCEPT} with twice the warm-up)",
        )


def sampling_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """The :meth:`CapabilityModel.fit` keywords that :func:`add_sampling_options` declared and
    the user set (an unset ``--cores`` is left to the fit, or to the runner's worker share)."""
    names = ("draws", "tune", "chains", "seed", "sampler", "target_accept", "cores", "retry",
             "inference", "iterations")  # fmt: skip
    return {n: getattr(args, n) for n in names if getattr(args, n, None) is not None}


def add_resume_options(parser: argparse.ArgumentParser, what: str = "fit") -> None:
    """Declare ``--resume DIR`` (default :data:`DEFAULT_STORE`) and ``--no-resume``: where
    finished fits are kept, so that the same command run again skips them
    (:mod:`obscale_bayes.fit.jobstore`; the library's parameter ``store``)."""
    g = parser.add_mutually_exclusive_group()
    g.add_argument(
        "--resume",
        dest="store",
        metavar="DIR",
        default=default_store(),
        help=f"keep every finished {what} in DIR as it finishes; a killed or interrupted run, "
        f"re-run with the same command, skips them and resumes ({DEFAULT_STORE}: on by "
        "default; results are keyed by data, spec, settings, seed and package code, so a "
        "change re-runs; delete DIR at any time)",
    )
    g.add_argument(
        "--no-resume",
        action="store_true",
        help="keep nothing and reuse nothing: run every fit afresh",
    )


def default_store() -> str:
    """``$OBSCALE_BAYES_JOBS`` if set, else :data:`DEFAULT_STORE`."""
    return os.environ.get(STORE_ENV) or DEFAULT_STORE


def store_path(args: argparse.Namespace) -> str | None:
    """The job store folder of :func:`add_resume_options` (None with ``--no-resume``)."""
    return None if getattr(args, "no_resume", False) else getattr(args, "store", None)


# ---------------------------------------------------------------------------- table options
def _names(text: str) -> list[str]:
    items = [x.strip() for x in text.split(",")]
    if not all(items):
        raise argparse.ArgumentTypeError(f"'{text}' has an empty name; give NAME1,NAME2")
    return items


def add_table_options(parser: argparse.ArgumentParser, what: str = "the table") -> None:
    """Declare ``--benchmarks --columns --ignore-columns --normalised``: how a user's table is
    read (:func:`obscale_bayes.data.reader.read_table`'s keywords)."""
    parser.add_argument(
        "--benchmarks",
        metavar="META.csv",
        help=f"metadata of benchmarks unknown to the package, for {what}: the columns of "
        "data/benchmarks.csv (benchmark, floor, metric_min, metric_max, n_items; floor may be "
        "'fitted', n_items blank with a warning)",
    )
    parser.add_argument(
        "--columns",
        type=_names,
        metavar="A,B",
        help="wide tables: use only these columns as benchmarks (headers, ids or aliases)",
    )
    parser.add_argument(
        "--ignore-columns",
        type=_names,
        metavar="X,Y",
        help="wide tables: leave these columns out (flags, subtasks, averages)",
    )
    parser.add_argument(
        "--normalised",
        type=_names,
        metavar="B1,B2|all",
        help="these benchmarks hold chance-normalised scores (raw - chance) / (1 - chance), as "
        "leaderboards show them: convert them to raw scores (needs a known chance floor)",
    )


def table_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """The :func:`~obscale_bayes.data.reader.read_table` keywords of :func:`add_table_options`."""
    return {
        "extra_benchmarks": getattr(args, "benchmarks", None),
        "columns": getattr(args, "columns", None),
        "ignore_columns": getattr(args, "ignore_columns", None),
        "normalised": getattr(args, "normalised", None),
    }


# ---------------------------------------------------------------------------- parameter -> flag
def flag_names(parser: argparse.ArgumentParser) -> dict[str, str]:
    """A command's parameters (argparse dests, and :data:`PARAMETER_ALIASES` of them) -> the
    flag the user types (the longest option string)."""
    flags = {
        a.dest: max(a.option_strings, key=len)
        for a in parser._actions  # argparse keeps a command's options only there
        if a.option_strings and a.dest not in (argparse.SUPPRESS, "help")
    }
    flags.update({p: flags[d] for p, d in PARAMETER_ALIASES.items() if d in flags})
    return flags


def with_flags(message: str, flags: dict[str, str]) -> str:
    """``message`` with a leading parameter name that is one of ``flags`` written as its flag:
    ``"draws: must be ..." -> "--draws: must be ..."``; other messages unchanged."""
    m = _LEADING_NAME.match(message)
    if m is None or m.group(1) not in flags:
        return message
    return flags[m.group(1)] + message[m.end(1) :]
