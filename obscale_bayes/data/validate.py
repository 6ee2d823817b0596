"""The columns of the three benchmark tables, and their validation on construction.

:func:`validate_tables` is what :class:`~obscale_bayes.data.tables.BenchmarkData` runs on the
``models``, ``scores`` and ``benchmarks`` frames it is given: it reduces each to its columns
(:data:`MODEL_COLUMNS`, :data:`SCORE_COLUMNS`, :data:`BENCHMARK_COLUMNS`, and the optional
:data:`RELEASE_DATE`), normalises their types (``str`` with NaN for missing, or ``float``) and
checks ids, duplicates, cross-references, model kinds and metric ranges, raising
:class:`~obscale_bayes.errors.DataError` with one line naming the source and the fix.
This module needs only numpy and pandas (no PyMC).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from obscale_bayes.errors import DataError

__all__ = [
    "BENCHMARK_COLUMNS",
    "MODEL_COLUMNS",
    "RELEASE_DATE",
    "SCORE_COLUMNS",
    "validate_tables",
]

MODEL_COLUMNS = ("model", "family", "kind", "params_b", "tokens_t", "flops_1e21")
#: Optional model column: ISO date ``YYYY-MM-DD`` (kept only when some model has one).
RELEASE_DATE = "release_date"
SCORE_COLUMNS = ("model", "benchmark", "value")
BENCHMARK_COLUMNS = (
    "benchmark",
    "display_name",
    "group",
    "floor",
    "n_items",
    "metric_min",
    "metric_max",
    "unit",
)
_MODEL_STR = ("model", "family", "kind")
_BENCH_STR = ("benchmark", "display_name", "group", "unit")


def _strings(s: pd.Series) -> pd.Series:
    """Object column of ``str`` with NaN for missing (empty strings count as missing)."""
    out = s.astype(object).where(s.notna(), np.nan)
    out = out.map(lambda v: v if isinstance(v, float) and math.isnan(v) else str(v))
    return out.where(out != "", np.nan).astype(object)


def _frame(
    df: pd.DataFrame, cols: Sequence[str], strs: Sequence[str], what: str, src: str
) -> pd.DataFrame:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise DataError(f"{src}: {what} table lacks column(s) {missing}; add them")
    out = df.loc[:, list(cols)].reset_index(drop=True).copy()
    for c in cols:
        if c in strs:
            out[c] = _strings(out[c])
        else:
            try:
                out[c] = pd.to_numeric(out[c], errors="raise").astype(float)
            except (TypeError, ValueError) as e:
                raise DataError(f"{src}: {what} column '{c}' is not numeric ({e}); fix it") from e
    return out


def _is_date(text: str) -> bool:
    """An ISO calendar date ``YYYY-MM-DD`` that exists."""
    import datetime

    try:
        return len(text) == 10 and datetime.date.fromisoformat(text).isoformat() == text
    except ValueError:
        return False


def validate_tables(
    models: pd.DataFrame, scores: pd.DataFrame, benchmarks: pd.DataFrame, src: str
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The three tables copied, reduced to their columns, type-normalised and checked.

    Parameters
    ----------
    models, scores, benchmarks : pandas.DataFrame
        As described in :class:`~obscale_bayes.data.tables.BenchmarkData`.
    src : str
        Where the data came from, used in messages.

    Returns
    -------
    tuple of pandas.DataFrame
        ``(models, scores, benchmarks)``, new frames.

    Raises
    ------
    DataError
        A missing or non-numeric column, a blank or repeated id, a non-finite or repeated score,
        a score naming an unknown model or benchmark, a bad kind or release date, or
        ``metric_min >= metric_max``.
    """
    m = _frame(models, MODEL_COLUMNS, _MODEL_STR, "models", src)
    if RELEASE_DATE in models.columns:
        dates = _strings(models[RELEASE_DATE].reset_index(drop=True))
        bad = dates.dropna()[~dates.dropna().map(_is_date)]
        if len(bad):
            raise DataError(
                f"{src}: release_date {bad.iloc[0]!r} of model '{m['model'][bad.index[0]]}' "
                "is not a date; write YYYY-MM-DD or leave it blank"
            )
        if dates.notna().any():  # an all-blank column is no column (same fingerprint)
            m[RELEASE_DATE] = dates
    s = _frame(scores, SCORE_COLUMNS, ("model", "benchmark"), "scores", src)
    b = _frame(benchmarks, BENCHMARK_COLUMNS, _BENCH_STR, "benchmarks", src)
    for df, col, what in ((m, "model", "models"), (b, "benchmark", "benchmarks")):
        if df[col].isna().any():
            raise DataError(f"{src}: {what} table has a blank '{col}'; fill it")
        dup = df[col][df[col].duplicated()]
        if len(dup):
            raise DataError(f"{src}: {what} table repeats '{dup.iloc[0]}'; keep one row")
    if s[["model", "benchmark"]].isna().any().any():
        raise DataError(f"{src}: scores table has a blank model or benchmark; fill it")
    if not np.isfinite(s["value"]).all():
        raise DataError(f"{src}: scores must be finite numbers; drop missing cells")
    dup = s[s.duplicated(["model", "benchmark"])]
    if len(dup):
        r = dup.iloc[0]
        raise DataError(f"{src}: score of '{r.model}' on '{r.benchmark}' appears twice")
    for col, ref, what in (("model", m, "models"), ("benchmark", b, "benchmarks")):
        unknown = sorted(set(s[col]) - set(ref[col]))
        if unknown:
            raise DataError(
                f"{src}: scores name {col}(s) {unknown[:5]} missing from the {what} table; add them"
            )
    bad_kind = m["kind"].dropna()[~m["kind"].dropna().isin(("base", "instruct"))]
    if len(bad_kind):
        raise DataError(f"{src}: model kind {bad_kind.iloc[0]!r} is not 'base' or 'instruct'")
    if (b["metric_min"] >= b["metric_max"]).any():
        bad = b.loc[b["metric_min"] >= b["metric_max"], "benchmark"].iloc[0]
        raise DataError(f"{src}: benchmark '{bad}' has metric_min >= metric_max; fix it")
    return m, s, b
