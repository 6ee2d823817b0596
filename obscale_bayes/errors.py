"""Exceptions whose message is the whole one-line story told to the user.

Every error a user can cause (bad data, bad spec, bad fit file, bad CLI value) is raised as an
:class:`ObscaleError` subclass.  The CLI prints ``str(error)`` on one line and exits non-zero; it
never shows a traceback for these.  Messages name the file, the row/column and the fix.
"""

from __future__ import annotations


class ObscaleError(Exception):
    """Base class for errors caused by user input (printed as one line, no traceback)."""


class DataError(ObscaleError):
    """A benchmark table (shipped or user-given) is invalid."""


class SpecError(ObscaleError):
    """A model specification file is invalid."""


class FitFileError(ObscaleError):
    """A file given as a fitted result is missing, corrupt or not an obscale-bayes fit."""


class UsageError(ObscaleError):
    """A command-line or API argument is invalid (e.g. a non-positive FLOPs value)."""


def one_line(msg: str) -> str:
    """Collapse whitespace so a message always prints on a single line."""
    return " ".join(str(msg).split())
