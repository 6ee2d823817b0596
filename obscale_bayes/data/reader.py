"""Read a user's own benchmark table into a validated :class:`~obscale_bayes.data.tables.BenchmarkData`.

Two layouts are accepted (UTF-8 CSV, comma-separated, header on line 1):

* **wide**: one row per model; columns ``model`` (or ``Model``), optional ``family``
  (``Model Family``), ``kind``, ``params_b`` (``Model Size (B)``), ``tokens_t``
  (``Pretraining Data Size (T)``), ``flops_1e21`` (``FLOPs (1E21)``); every other column is a
  benchmark, named by its id, upstream column name or display name (case-insensitive).
* **long**: one row per score; columns ``model, benchmark, value`` plus the optional model
  columns above (constant per model) and ``floor, metric_min, metric_max, n_items``
  (constant per benchmark).

Blank cells are missing values.  Nothing is coerced: every problem raises
:class:`~obscale_bayes.errors.DataError` with one line naming the file, the CSV line
(header = line 1) and/or column, and the fix.  :func:`read_tables` reads several files into one
table.  The raw CSV reading is :mod:`obscale_bayes.data.csvfile`, the rows of the two layouts
and their checks :mod:`obscale_bayes.data.row_readers`, the benchmark metadata checks
:mod:`obscale_bayes.data.metadata`, the choice of a wide table's benchmark columns
:mod:`obscale_bayes.data.aliases` and the scale checks :mod:`obscale_bayes.data.scales`;
:mod:`obscale_bayes.data.writers` writes tables back.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from obscale_bayes.data.aliases import COMPUTE_COLUMNS, choose_columns
from obscale_bayes.data.csvfile import CsvTable, header_key
from obscale_bayes.data.metadata import known_metadata, name_lookup, read_extra
from obscale_bayes.data.row_readers import _IGNORED, _MODEL_ALIASES, _read_long, _read_wide
from obscale_bayes.data.scales import normalised_to_raw, scale_checks
from obscale_bayes.data.tables import (
    BENCHMARK_COLUMNS,
    RELEASE_DATE,
    BenchmarkData,
    load_benchmark_metadata,
)
from obscale_bayes.errors import DataError, UsageError
from obscale_bayes.progress import get_logger

log = get_logger(__name__)

__all__ = ["read_table", "read_tables"]


def read_table(
    path: str | os.PathLike[str],
    metadata: pd.DataFrame | None = None,
    *,
    extra_benchmarks: str | os.PathLike[str] | None = None,
    require_family: bool = True,
    columns: Sequence[str] | None = None,
    ignore_columns: Sequence[str] | None = None,
    normalised: Sequence[str] | None = None,
) -> BenchmarkData:
    """Read and validate a user's benchmark table (wide or long CSV).

    Parameters
    ----------
    path : str or path-like
        The CSV file.
    metadata : pandas.DataFrame, optional
        Benchmark metadata with the ``benchmarks.csv`` columns; default: the shipped one.  Pass
        a fit's ``fit.data.benchmarks`` to read new models with the fit's own metadata.
    extra_benchmarks : str or path-like, optional
        CSV with ``benchmarks.csv`` columns (``benchmark, floor, metric_min, metric_max,
        n_items``; floor may be ``fitted``, n_items blank with a warning) describing benchmarks
        unknown to ``metadata`` (the command line's ``--benchmarks``).
    require_family : bool
        Every model must have a family (needed for fitting; not for forecasting).
    columns : sequence of str, optional
        Wide tables: only these columns (headers, ids or aliases) are benchmarks; every other
        non-model column is left out (logged).
    ignore_columns : sequence of str, optional
        Wide tables: columns to leave out (flags such as ``Instruct``, subtask columns).
    normalised : sequence of str, optional
        Benchmarks (ids, or ``["all"]``) whose scores are chance-normalised,
        :math:`s = (y - g)/(1 - g)`: converted to raw :math:`y = g + (1 - g) s` on reading
        (needs a known floor).  See :mod:`obscale_bayes.data.scales`.

    Returns
    -------
    BenchmarkData
        ``source`` is the path.  Benchmarks are those present in the file.

    Raises
    ------
    DataError
        One line naming the file, line and/or column, and the fix.
    """
    meta = load_benchmark_metadata() if metadata is None else metadata
    missing = [c for c in BENCHMARK_COLUMNS if c not in meta.columns]
    if missing:
        raise DataError(f"benchmark metadata lacks column(s) {missing}; add them")
    look, known = name_lookup(meta), known_metadata(meta)
    if extra_benchmarks is not None:
        read_extra(extra_benchmarks, look, known)
    t = CsvTable(path, aliases=_MODEL_ALIASES)
    cols = [header_key(h) for h in t.header]
    t.factors = {}  # canonical compute column -> factor to its unit (absolute FLOPs -> 1e21)
    for h, c in zip(t.header, cols, strict=True):
        if c in COMPUTE_COLUMNS:
            canon, unit, factor = COMPUTE_COLUMNS[c]
            t.factors[canon] = factor
            if c != canon:
                log.info("%s: column '%s' read as %s (%s)", t.name, h, canon, unit)
    if "model" not in {_MODEL_ALIASES.get(c) for c in cols}:
        sep = next((s for s in ";\t|" if s in ",".join(t.header)), None)
        hint = f" (the file seems to use {sep!r} as separator; use commas)" if sep else ""
        raise t.error(
            1, None, f"no 'model' column{hint}; name the model-id column 'model' or 'Model'"
        )
    long = "benchmark" in cols and "value" in cols
    if long and (columns or ignore_columns):
        raise UsageError("columns: only for wide tables; a long table names its benchmarks per row")
    if long:
        models, scores, benches = _read_long(t, cols, look, known)
    else:
        skip = set(_MODEL_ALIASES) | _IGNORED
        pick = choose_columns(t, cols, look, known, skip, columns, ignore_columns)
        models, scores, benches = _read_wide(t, cols, pick, known)
    scores = normalised_to_raw(t, scores, benches, normalised)
    scale_checks(t, benches)
    if require_family:
        if "family" not in {_MODEL_ALIASES.get(c) for c in cols}:
            raise t.error(
                1,
                None,
                "no family column; add 'family' (or 'Model Family'), or pass require_family=False",
            )
        for m in models.values():
            if m["family"] is None:
                raise t.error(
                    m["_line"], "family", f"model '{m['model']}' has no family; fill the cell"
                )
    scored = {m for m, _, _ in scores}
    empty = [m for m in models if m not in scored]
    if empty:
        shown = ", ".join(f"'{m}'" for m in empty[:10]) + (
            f" and {len(empty) - 10} more" if len(empty) > 10 else ""
        )
        log.warning(
            "%s: %d model(s) have no score on the chosen benchmarks and are left out of a fit: %s",
            t.name,
            len(empty),
            shown,
        )
    mdf = pd.DataFrame(list(models.values())).drop(columns="_line")
    if mdf[RELEASE_DATE].isna().all():
        mdf = mdf.drop(columns=RELEASE_DATE)
    sdf = pd.DataFrame(scores, columns=["model", "benchmark", "value"])
    return BenchmarkData(mdf, sdf, pd.DataFrame(benches), source=t.name)


def read_tables(paths: Sequence[str | os.PathLike[str]], **kwargs) -> BenchmarkData:
    """Read several tables with :func:`read_table` (``kwargs`` passed on) into one.

    A model may appear in one file only; a benchmark appearing in several files must have the
    same metadata (``floor, n_items, metric_min, metric_max``) in each.

    Raises
    ------
    UsageError
        No path, or a file given twice.
    DataError
        A bad table, a model in two files, or benchmark metadata that disagree.
    """
    if not paths:
        raise UsageError("paths: give at least one table file")
    seen: set[Path] = set()
    for p in paths:
        key = Path(p).resolve()
        if key in seen:
            raise UsageError(f"paths: {p} is given twice; give each file once")
        seen.add(key)
    tables = [read_table(p, **kwargs) for p in paths]
    if len(tables) == 1:
        return tables[0]
    owner: dict[str, str] = {}
    bench: dict[str, tuple[dict, str]] = {}
    for p, t in zip(map(str, paths), tables, strict=True):
        for m in t.model_ids:
            if m in owner:
                raise DataError(
                    f"model '{m}' appears in both {owner[m]} and {p}; keep each model in one file"
                )
            owner[m] = p
        for row in t.benchmarks.to_dict("records"):
            b = row["benchmark"]
            if b not in bench:
                bench[b] = (row, p)
                continue
            first, fp = bench[b]
            diff = [k for k in ("floor", "n_items", "metric_min", "metric_max")
                    if not _same(first[k], row[k])]  # fmt: skip
            if diff:
                k = diff[0]
                raise DataError(
                    f"benchmark '{b}' has {k} {first[k]} in {fp} but {row[k]} in {p}; "
                    "make the benchmark metadata agree"
                )
    return BenchmarkData(
        pd.concat([t.models for t in tables], ignore_index=True),
        pd.concat([t.scores for t in tables], ignore_index=True),
        pd.DataFrame([r for r, _ in bench.values()]),
        source=" + ".join(map(str, paths)),
    )


def _same(a: float, b: float) -> bool:
    """Equal metadata values: both missing, or both present and close."""
    if pd.isna(a) or pd.isna(b):
        return bool(pd.isna(a) and pd.isna(b))
    return math.isclose(a, b)
