"""One logger for the whole package; the library never prints.

Library code reports through :func:`get_logger` (the ``obscale_bayes`` logger tree) and
:func:`report_progress`; nothing is shown unless the caller turns it on. The command line calls
:func:`enable` once, which sends INFO and above to stderr as ``obscale-bayes: message`` lines. In a
notebook, ``obscale_bayes.progress.enable()`` does the same.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import TextIO

__all__ = ["LOGGER_NAME", "get_logger", "enable", "disable", "report_progress"]

LOGGER_NAME = "obscale_bayes"
_HANDLER_FLAG = "_obscale_bayes_handler"

logging.getLogger(LOGGER_NAME).addHandler(logging.NullHandler())


def get_logger(name: str | None = None) -> logging.Logger:
    """The package logger, or a child of it (``get_logger(__name__)``)."""
    if not name or name == LOGGER_NAME:
        return logging.getLogger(LOGGER_NAME)
    if not name.startswith(LOGGER_NAME + "."):
        name = f"{LOGGER_NAME}.{name}"
    return logging.getLogger(name)


def enable(level: int = logging.INFO, stream: TextIO | None = None) -> logging.Handler:
    """Show the package's messages on ``stream`` (stderr); idempotent. Returns the handler."""
    logger = logging.getLogger(LOGGER_NAME)
    for h in logger.handlers:
        if getattr(h, _HANDLER_FLAG, False):
            h.setLevel(level)
            logger.setLevel(min(level, logger.level or level))
            return h
    h = logging.StreamHandler(stream if stream is not None else sys.stderr)
    h.setFormatter(logging.Formatter("obscale-bayes: %(message)s"))
    h.setLevel(level)
    setattr(h, _HANDLER_FLAG, True)
    logger.addHandler(h)
    logger.setLevel(level)
    logger.propagate = False
    return h


def disable() -> None:
    """Remove the handler :func:`enable` added."""
    logger = logging.getLogger(LOGGER_NAME)
    for h in list(logger.handlers):
        if getattr(h, _HANDLER_FLAG, False):
            logger.removeHandler(h)
    logger.propagate = True


def report_progress(
    logger: logging.Logger, done: int, total: int, what: str, started: float | None = None
) -> None:
    """One progress line, ``[done/total] what (elapsed)``, at INFO on ``logger``.

    The single format of every long loop (backtests, sweeps, SBC replications).
    """
    el = f" ({time.monotonic() - started:.0f} s)" if started is not None else ""
    logger.info("[%d/%d] %s%s", done, total, what, el)
