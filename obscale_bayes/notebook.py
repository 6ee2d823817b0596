"""Settings shared by the executed notebooks in ``notebooks/``.

The notebooks are committed executed with full sampling settings; the test suite re-executes
them with ``OBSCALE_FAST=1`` so that none can rot, with small draw counts that keep CI short.
The notebooks hold no model code: they call the package, and ask this module how hard to sample.
"""

from __future__ import annotations

import os

FAST_ENV = "OBSCALE_FAST"


def fast_mode() -> bool:
    """True when ``OBSCALE_FAST=1`` is set (the notebook tests set it)."""
    return os.environ.get(FAST_ENV, "").strip() == "1"


def sampling(draws: int = 1000, tune: int = 1000, chains: int = 4) -> dict[str, int]:
    """Keyword arguments for :meth:`CapabilityModel.fit`: the given ones, or small ones in fast mode.

    Fast mode uses 2 chains x (300 tune + 150 draws): enough for the notebook to run end to end
    and draw its figures, not enough for its numbers to mean anything.
    """
    if fast_mode():
        return {"draws": 150, "tune": 300, "chains": 2}
    return {"draws": int(draws), "tune": int(tune), "chains": int(chains)}


def scaled(n: int, fast_n: int) -> int:
    """``n`` normally, ``fast_n`` in fast mode (for sweep sizes, numbers of repeats, ...)."""
    return int(fast_n) if fast_mode() else int(n)
