"""What every figure module shares: the figure-file check and writer, and posterior-draw helpers.

Figures are built on :class:`matplotlib.figure.Figure` directly (Agg canvas), so they never touch
pyplot's global state or need a display; in a notebook a returned figure renders inline.
:func:`save_figure` writes one through :func:`obscale_bayes.io.atomic_write` (no partial file on
error).  :func:`figure_format` is the one check of a figure path's extension: ``save_figure``
calls it, and so does the command line before any work starts.  This module imports no
matplotlib at import time.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from obscale_bayes.errors import UsageError
from obscale_bayes.io import atomic_write

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

    from obscale_bayes.fit.fitted import CapabilityModel

__all__ = [
    "FIGURE_FORMATS",
    "coord_values",
    "display_names",
    "figure_format",
    "pick",
    "posterior_draws",
    "quantiles",
    "save_figure",
]

#: File types :func:`save_figure` writes (by the path's extension).
FIGURE_FORMATS = ("png", "pdf", "svg", "jpg", "jpeg")


def figure_format(path: str | os.PathLike[str]) -> str:
    """The matplotlib format of a figure path, from its extension (``"jpg"`` -> ``"jpeg"``).

    Raises
    ------
    UsageError
        The extension is not one of :data:`FIGURE_FORMATS`.
    """
    p = Path(path)
    ext = p.suffix.lower().lstrip(".")
    if ext not in FIGURE_FORMATS:
        raise UsageError(
            f"{p}: unsupported figure type '{p.suffix or '(none)'}'; "
            f"use one of {', '.join('.' + f for f in FIGURE_FORMATS)}"
        )
    return "jpeg" if ext == "jpg" else ext


def save_figure(fig: Figure, path: str | os.PathLike[str], dpi: int = 150) -> Path:
    """Write ``fig`` atomically (temporary file + rename); the format follows the extension.

    Raises
    ------
    UsageError
        Unsupported extension, or the file cannot be written (one line, nothing left behind).
    """
    fmt = figure_format(path)
    return atomic_write(path, lambda f: fig.savefig(f, format=fmt, dpi=dpi), what="the figure")


# ---------------------------------------------------------------------------- posterior draws
def quantiles(draws: np.ndarray, ci: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Median and central ``ci`` interval ``(median, lower, upper)`` over axis 0."""
    lo, med, hi = np.quantile(draws, [(1 - ci) / 2, 0.5, (1 + ci) / 2], axis=0)
    return med, lo, hi


def posterior_draws(fit: CapabilityModel, name: str, *dims: str) -> np.ndarray:
    """Posterior draws of the variable ``name`` as an array ``(sample, *dims)``."""
    post = fit.idata["posterior"].dataset
    if name not in post:
        raise UsageError(f"the fit's posterior has no '{name}'; refit with this package")
    da = post[name].stack(sample=("chain", "draw")).transpose("sample", *dims)
    return da.to_numpy()


def coord_values(fit: CapabilityModel, dim: str) -> list[str]:
    """The labels of a posterior dimension (``"model"``, ``"family"``, ``"factor"``, ...)."""
    return [str(v) for v in fit.idata["posterior"].dataset[dim].values]


def pick(given: str | Sequence[str] | None, have: list[str], what: str) -> list[str]:
    """``given`` (one name or several, duplicates dropped) checked against ``have``; all of
    ``have`` when ``given`` is None."""
    if given is None:
        return list(have)
    out = [given] if isinstance(given, str) else list(dict.fromkeys(given))
    unknown = [v for v in out if v not in have]
    if unknown or not out:
        raise UsageError(f"unknown {what}(s) {unknown}; the fit has {have}")
    return out


def display_names(fit: CapabilityModel) -> dict[str, str]:
    """Benchmark id -> display name (the id where the metadata has none)."""
    b = fit.data.benchmarks
    return dict(zip(b["benchmark"], b["display_name"].fillna(b["benchmark"]), strict=True))
