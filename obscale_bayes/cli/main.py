"""The ``obscale-bayes`` command line: the parser and :func:`main`.

Commands, one module each: ``fit`` and ``check`` (:mod:`obscale_bayes.cli.fit`), ``forecast``
and ``quickstart`` (:mod:`obscale_bayes.cli.forecast`), ``backtest``
(:mod:`obscale_bayes.cli.backtest`) and ``sensitivity`` (:mod:`obscale_bayes.cli.sensitivity`);
shared argument types and the sampling options are :mod:`obscale_bayes.cli.args`.

Every error a user can cause (bad data, spec, fit file or argument) is printed as one line
``obscale-bayes: error: <message>`` on stderr with exit status 2, never with a traceback; a
library message that starts with a parameter name gets the command's flag instead
(:func:`obscale_bayes.cli.args.with_flags`).  ``check`` exits with 1 when the convergence gate
fails.  Progress and stage messages are the package's log lines
(:mod:`obscale_bayes.progress`), shown on stderr while a command runs (``--quiet``: warnings
only).  Output files (``--out``, ``--plot``) are written atomically and only after everything
before them has succeeded.

Heavy modules (PyMC, matplotlib) are imported only by the commands that need them, so argument
errors are reported at once.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from obscale_bayes import __version__, progress
from obscale_bayes.cli import backtest, fit, forecast, sensitivity
from obscale_bayes.cli.args import PROG, flag_names, with_flags
from obscale_bayes.errors import ObscaleError, UsageError, one_line


class _ArgError(Exception):
    """An argparse error, re-raised so that :func:`main` prints it on one line."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        cmd = self.prog.removeprefix(PROG).strip()
        hint = f"see '{PROG} {cmd + ' ' if cmd else ''}--help'"
        raise _ArgError(f"{message}; {hint}")


def build_parser() -> argparse.ArgumentParser:
    """The parser of every command; each sub-parser carries its parameter -> flag map."""
    p = _Parser(
        prog=PROG,
        description=(
            "Bayesian observational scaling laws: fit a hierarchical capability model to "
            "public benchmark scores and forecast stronger models with uncertainty bands."
        ),
    )
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    fit.add_parsers(sub)
    forecast.add_parsers(sub)
    backtest.add_parser(sub)
    sensitivity.add_parser(sub)
    for cmd in sub.choices.values():
        cmd.set_defaults(_flags=flag_names(cmd))
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 ok, 1 failed check, 2 error)."""
    parser = build_parser()
    flags: dict[str, str] = {}
    try:
        try:
            args = parser.parse_args(None if argv is None else list(argv))
        except SystemExit as e:  # --help / --version
            return int(e.code or 0)
        flags = args._flags
        level = logging.WARNING if getattr(args, "quiet", False) else logging.INFO
        with progress.enabled(level):
            return int(args.func(args))
    except ObscaleError as e:
        msg = one_line(e)
        if isinstance(e, UsageError):
            msg = with_flags(msg, flags)
        print(f"{PROG}: error: {msg}", file=sys.stderr)
        return 2
    except _ArgError as e:
        print(f"{PROG}: error: {one_line(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `obscale-bayes forecast ... | head`
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
