"""Benchmark metadata of a user's table: names, known metadata, and what a file says.

A benchmark in a user's file is named by its id, its upstream column name or its display name
(:func:`name_lookup`); its metadata (chance floor, metric range, number of items) is either
known (the shipped ``benchmarks.csv``, or an extra metadata file read by :func:`read_extra`) or
given by the file itself, and :func:`benchmark_spec` checks the one against the other.
"""

from __future__ import annotations

import math
import os

import pandas as pd

from obscale_bayes.data.csvfile import CsvTable, header_key
from obscale_bayes.data.tables import BENCHMARK_COLUMNS

__all__ = ["BENCH_FIELDS", "benchmark_spec", "known_metadata", "name_lookup", "read_extra"]

#: Numeric benchmark metadata a long table may carry per row (constant per benchmark).
BENCH_FIELDS = ("floor", "metric_min", "metric_max", "n_items")


def name_lookup(meta: pd.DataFrame) -> dict[str, str]:
    """Case-insensitive names (id, upstream column(s), display name) -> benchmark id."""
    out: dict[str, str] = {}
    clash: set[str] = set()
    for _, r in meta.iterrows():
        up = r.get("upstream_column")
        names = [r["display_name"], *(up.split(";") if isinstance(up, str) else [])]
        for name in names:
            k = header_key(name) if isinstance(name, str) else ""
            if k and out.get(k, r["benchmark"]) != r["benchmark"]:
                clash.add(k)
            elif k:
                out[k] = r["benchmark"]
    out = {k: v for k, v in out.items() if k not in clash}
    out.update({header_key(b): b for b in meta["benchmark"]})  # ids always win
    return out


def benchmark_spec(
    t: CsvTable, line: int, bid: str, raw: dict[str, str], known: dict | None
) -> dict:
    """Benchmark metadata from a file's cells (``raw``: column -> cell, on CSV line ``line``):
    checked against the known metadata when there is some (and that returned), otherwise
    validated as a new benchmark (floor, metric_min and metric_max required)."""
    vals: dict[str, float | None] = {}
    for f in BENCH_FIELDS:
        cell = raw.get(f, "")
        vals[f] = math.nan if f == "floor" and cell.lower() == "fitted" else t.number(line, f, cell)
    if known is not None:
        for f in BENCH_FIELDS:
            v, k = vals[f], known[f]
            if v is not None and not (math.isnan(v) and math.isnan(k) or math.isclose(v, k)):
                raise t.error(
                    line,
                    f,
                    f"benchmark '{bid}' is known with {f} = {k}, "
                    f"the file says {v}; convert the scores or rename the benchmark",
                )
        return known
    for f in ("floor", "metric_min", "metric_max"):
        if vals[f] is None:
            raise t.error(
                line,
                f,
                f"benchmark '{bid}' is not in the metadata, so "
                f"give its {f} (floor may be 'fitted')",
            )
    lo, hi, floor, n = vals["metric_min"], vals["metric_max"], vals["floor"], vals["n_items"]
    if not lo < hi or not (math.isnan(floor) or lo <= floor <= hi):
        raise t.error(
            line,
            None,
            f"benchmark '{bid}' needs metric_min < metric_max and "
            f"the floor inside that range (got {lo}, {hi}, floor {floor})",
        )
    if n is not None and (n <= 0 or n != int(n)):
        raise t.error(line, "n_items", "n_items must be a positive whole number")
    unit = raw.get("unit") or ("fraction" if (lo, hi) == (0.0, 1.0) else "score")
    return dict(
        benchmark=bid,
        display_name=raw.get("display_name") or bid,
        group=raw.get("group") or "user",
        floor=floor,
        n_items=math.nan if n is None else n,
        metric_min=lo,
        metric_max=hi,
        unit=unit,
    )


def known_metadata(meta: pd.DataFrame) -> dict[str, dict]:
    """Benchmark id -> its metadata row (``BENCHMARK_COLUMNS``, numeric fields as floats)."""
    m = meta.loc[:, list(BENCHMARK_COLUMNS)].copy()
    for f in BENCH_FIELDS:
        m[f] = pd.to_numeric(m[f]).astype(float)
    return {r["benchmark"]: r for r in m.to_dict("records")}


def read_extra(path: str | os.PathLike[str], look: dict[str, str], known: dict[str, dict]) -> None:
    """Add the benchmarks described by an extra metadata CSV to ``look`` and ``known`` (in
    place); a benchmark already known must agree with its known metadata."""
    t = CsvTable(path, "extra benchmark metadata")
    cols = [header_key(h) for h in t.header]
    if "benchmark" not in cols:
        raise t.error(1, None, "no 'benchmark' column; use the benchmarks.csv columns")
    for n, r in t.rows:
        raw = dict(zip(cols, r, strict=True))
        bid = look.get(header_key(raw["benchmark"]), raw["benchmark"])
        known[bid] = benchmark_spec(t, n, bid, raw, known.get(bid))
        look[header_key(bid)] = bid
