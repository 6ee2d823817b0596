r"""Scale checks of a benchmark column: chance-normalised scores, and a mix of two scales.

Leaderboards publish *chance-normalised* scores, :math:`s = (y - g) / (1 - g)` for a raw score
:math:`y` and chance level :math:`g` (on the [0, 1] metric scale); the model wants raw scores.
Both pass the [0, 1] range check, so a normalised column (or a column mixing both scales, as
tables merged from several sources do) would be fitted silently as raw.  A raw score can sit
below chance only by sampling noise, so on a benchmark with a chance floor :math:`g > 0`:

* a score is *well below chance* when :math:`y < g - \max(0.02,\ 3\sqrt{g(1-g)/n})` (three
  binomial standard deviations at chance, :math:`n` the item count, 1000 where unknown);
* when at least 3 rows (and at least 10% of the column) are well below chance, the column gets
  one warning naming the benchmark, the CSV lines and the likely cause: all or nearly all rows
  (>= 80%) -> chance-normalised scores; otherwise -> a mix of raw and normalised scores.

:func:`to_raw` inverts the normalisation, :math:`y = g + (1 - g)\,s`, for a column whose chance
level is known (``read_table(..., normalised=[...])``).  Benchmarks with :math:`g = 0` (GSM8K,
IFEval, MATH) are the same on both scales and need neither.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import pandas as pd

from obscale_bayes.data.csvfile import CsvTable
from obscale_bayes.errors import UsageError
from obscale_bayes.progress import get_logger

__all__ = ["below_chance_rows", "normalised_to_raw", "scale_checks", "scale_warning", "to_raw"]

log = get_logger(__name__)

MIN_ROWS = 3
MIN_SHARE = 0.10
ALL_SHARE = 0.80


def _unit(v: float, lo: float, hi: float) -> float:
    return (v - lo) / (hi - lo)


def below_chance_rows(cells: list[tuple[int, float]], meta: dict) -> list[int]:
    """CSV lines of the cells well below the benchmark's chance floor (see the module doc)."""
    lo, hi, floor = meta["metric_min"], meta["metric_max"], meta["floor"]
    if floor is None or math.isnan(floor):
        return []
    g = _unit(floor, lo, hi)
    if g <= 0:
        return []
    n = meta["n_items"]
    n = 1000.0 if n is None or math.isnan(n) else n
    margin = max(0.02, 3.0 * math.sqrt(g * (1 - g) / n))
    return [line for line, v in cells if _unit(v, lo, hi) < g - margin]


def scale_warning(name: str, bid: str, col: str, cells: list[tuple[int, float]], meta: dict) -> str:
    """The one-line warning for a column that looks chance-normalised or mixed ('' if none);
    also logged."""
    rows = below_chance_rows(cells, meta)
    if len(rows) < MIN_ROWS or len(rows) < MIN_SHARE * len(cells):
        return ""
    shown = ", ".join(map(str, rows[:8])) + (f" and {len(rows) - 8} more" if len(rows) > 8 else "")
    cause = (
        "the column looks chance-normalised ((raw - chance) / (1 - chance), as leaderboards "
        "show it); give raw scores or convert it with normalised"
        if len(rows) >= ALL_SHARE * len(cells)
        else "the column looks like a mix of raw and chance-normalised scores; put the "
        "normalised rows on the raw scale (raw = chance + (1 - chance) * normalised)"
    )
    msg = (
        f"{name}: column '{col}' ({bid}, chance floor {meta['floor']:g}): {len(rows)} of "
        f"{len(cells)} scores sit well below chance, lines {shown}; {cause}"
    )
    log.warning(msg)
    return msg


def to_raw(value: float, meta: dict) -> float:
    """A chance-normalised score back on the raw scale: ``lo + (hi - lo) (g + (1 - g) s)``."""
    lo, hi = meta["metric_min"], meta["metric_max"]
    g = _unit(meta["floor"], lo, hi)
    return lo + (hi - lo) * (g + (1 - g) * _unit(value, lo, hi))


def normalised_to_raw(
    t: CsvTable, scores: list, benches: list[dict], normalised: Sequence[str] | None
) -> list:
    """Scores of the ``normalised`` benchmarks put back on the raw scale (see ``scales``)."""
    if not normalised:
        return scores
    if isinstance(normalised, str):
        raise UsageError("normalised: give a list of benchmark ids (or ['all']), not a string")
    meta = {b["benchmark"]: b for b in benches}
    ids = list(meta) if list(normalised) == ["all"] else list(normalised)
    stray = [b for b in ids if b not in meta]
    if stray:
        raise UsageError(f"normalised: {stray} are not benchmarks of {t.name}; have {list(meta)}")
    if list(normalised) == ["all"]:
        ids = [b for b in ids if not pd.isna(meta[b]["floor"])]
    no_floor = [b for b in ids if pd.isna(meta[b]["floor"])]
    if no_floor:
        raise UsageError(
            f"normalised: {no_floor} have no fixed chance floor, so normalised scores cannot "
            "be converted; give raw scores for them"
        )
    conv = set(ids)
    log.info("%s: chance-normalised scores of %s put on the raw scale", t.name, sorted(conv))
    out = [(m, b, to_raw(v, meta[b]) if b in conv else v) for m, b, v in scores]
    for b in conv:  # so that the scale checks see the converted values
        col, cells = t.cells[b]
        t.cells[b] = (col, [(n, to_raw(v, meta[b])) for n, v in cells])
    return out


def scale_checks(t: CsvTable, benches: list[dict]) -> None:
    """:func:`scale_warning` for every benchmark column read into ``t.cells``."""
    for b in benches:
        col, cells = t.cells.get(b["benchmark"], ("", []))
        if cells:
            scale_warning(t.name, b["benchmark"], col, cells, b)
