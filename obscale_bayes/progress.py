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
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

__all__ = ["LOGGER_NAME", "get_logger", "enable", "enabled", "disable", "report_progress"]

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


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time of each message.

    A handler bound to the ``sys.stderr`` of the moment :func:`enable` ran would keep writing
    there after a caller redirects stderr (``contextlib.redirect_stderr``, pytest's capture).
    """

    def __init__(self) -> None:
        logging.Handler.__init__(self)

    @property
    def stream(self) -> TextIO:  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:  # StreamHandler.setStream; always sys.stderr
        pass


def enable(level: int = logging.INFO, stream: TextIO | None = None) -> logging.Handler:
    """Show the package's messages on ``stream`` (default: the current ``sys.stderr``).

    Idempotent: a second call only changes the level. Returns the handler.
    """
    logger = logging.getLogger(LOGGER_NAME)
    for h in logger.handlers:
        if getattr(h, _HANDLER_FLAG, False):
            h.setLevel(level)
            logger.setLevel(min(level, logger.level or level))
            return h
    h = logging.StreamHandler(stream) if stream is not None else _StderrHandler()
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


@contextmanager
def enabled(level: int = logging.INFO, stream: TextIO | None = None) -> Iterator[logging.Handler]:
    """:func:`enable` for the duration of a ``with`` block, then the previous state again.

    The command line runs inside one, so that calling ``main()`` from Python (tests, a notebook)
    leaves the package's logging as it found it.
    """
    logger = logging.getLogger(LOGGER_NAME)
    before = [h for h in logger.handlers if getattr(h, _HANDLER_FLAG, False)]
    state = (logger.level, logger.propagate, before[0].level if before else None)
    h = enable(level, stream)
    try:
        yield h
    finally:
        if before:
            h.setLevel(state[2])
        else:
            logger.removeHandler(h)
        logger.setLevel(state[0])
        logger.propagate = state[1]


def report_progress(
    logger: logging.Logger, done: int, total: int, what: str, started: float | None = None
) -> None:
    """One progress line, ``[done/total] what (elapsed)``, at INFO on ``logger``.

    The single format of every long loop (backtests, sweeps, SBC replications).
    """
    el = f" ({time.monotonic() - started:.0f} s)" if started is not None else ""
    logger.info("[%d/%d] %s%s", done, total, what, el)
