"""Validation of user-given numbers (no heavy imports: the CLI checks arguments first).

Messages start with the name of the *parameter* (``flops: ...``, ``draws: ...``), never with a
command-line flag: the CLI maps a leading parameter name to its flag (``obscale_bayes.cli.args``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from obscale_bayes.errors import UsageError

__all__ = ["check_ci", "check_flops", "check_positive_int"]


def check_flops(flops: float, where: str = "flops") -> float:
    """Validate a FLOPs value (absolute FLOPs, e.g. 1e24); ``where`` names the parameter."""
    try:
        f = float(flops)
    except (TypeError, ValueError):
        raise UsageError(
            f"{where}: '{flops}' is not a number; give training FLOPs like 1e24"
        ) from None
    if not math.isfinite(f) or f <= 0:
        raise UsageError(
            f"{where}: training FLOPs must be a positive number (e.g. 1e24), got {flops}"
        )
    return f


def check_ci(ci: float, where: str = "ci") -> float:
    """Validate a central-interval probability (strictly between 0 and 1)."""
    try:
        c = float(ci)
    except (TypeError, ValueError):
        raise UsageError(
            f"{where}: '{ci}' is not a number; give an interval probability like 0.9"
        ) from None
    if not 0.0 < c < 1.0:
        raise UsageError(
            f"{where}: the interval probability must lie strictly between 0 and 1, got {ci}"
        )
    return c


def check_positive_int(value: int, where: str) -> int:
    """Validate a count such as ``draws`` or ``chains`` (a whole number >= 1)."""
    try:
        v = int(value)
    except (TypeError, ValueError):
        raise UsageError(f"{where}: '{value}' is not a whole number") from None
    if v < 1:
        raise UsageError(f"{where}: must be a positive whole number, got {value}")
    return v


def parse_choices(
    value: str | Sequence[str] | None, known: Sequence[str], param: str, noun: str
) -> tuple[str, ...]:
    """Choices from ``known``, given as comma-separated text or a sequence (None = all).

    Duplicates are dropped (first order kept); an unknown or empty choice is a one-line
    :class:`UsageError` naming ``param``.
    """
    if value is None:
        return tuple(known)
    items = value.split(",") if isinstance(value, str) else list(value)
    items = [str(t).strip() for t in items if str(t).strip()]
    bad = [t for t in items if t not in known]
    if bad or not items:
        raise UsageError(
            f"{param}: unknown {noun} {bad[0] if bad else value!r}; choose from "
            f"{', '.join(known)} (comma-separated)"
        )
    return tuple(dict.fromkeys(items))
