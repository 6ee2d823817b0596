"""Validation of user-given numbers (no heavy imports: the CLI checks arguments first)."""

from __future__ import annotations

import math

from obscale_bayes.errors import UsageError

__all__ = ["check_ci", "check_flops"]


def check_flops(flops: float, where: str = "--flops") -> float:
    """Validate a FLOPs value (absolute FLOPs, e.g. 1e24)."""
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


def check_ci(ci: float) -> float:
    """Validate a central-interval probability."""
    try:
        c = float(ci)
    except (TypeError, ValueError):
        raise UsageError(
            f"--ci: '{ci}' is not a number; give an interval probability like 0.9"
        ) from None
    if not 0.0 < c < 1.0:
        raise UsageError(
            f"--ci: the interval probability must lie strictly between 0 and 1, got {ci}"
        )
    return c
