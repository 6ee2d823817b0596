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

from obscale_bayes.data.aliases import BENCHMARK_ALIASES
from obscale_bayes.data.csvfile import CsvTable, header_key
from obscale_bayes.data.tables import BENCHMARK_COLUMNS, load_benchmark_metadata
from obscale_bayes.progress import get_logger

log = get_logger(__name__)

__all__ = [
    "BENCH_FIELDS",
    "EXTRA_REQUIRED",
    "benchmark_spec",
    "known_metadata",
    "name_lookup",
    "read_extra",
]

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
    ids = set(meta["benchmark"])
    # leaderboard spellings, and the shipped names of the ids present (a fit's stored metadata
    # has no upstream_column), where they do not clash with the table's own names
    if "upstream_column" not in meta.columns:
        shipped = load_benchmark_metadata()
        extra = name_lookup(shipped[shipped["benchmark"].isin(ids)])
        out = {**{k: v for k, v in extra.items()}, **out}
    out = {**{k: v for k, v in BENCHMARK_ALIASES.items() if v in ids}, **out}
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


#: Columns a metadata file (``--benchmarks``) must have (``n_items`` may be blank).
EXTRA_REQUIRED = ("benchmark", "floor", "metric_min", "metric_max", "n_items")


def _missing_fields(raw: dict[str, str], known: dict | None) -> list[str]:
    if known is not None:
        return []
    return [f for f in ("floor", "metric_min", "metric_max") if raw.get(f, "") == ""]


def _same(v: float, k: float) -> bool:
    return (math.isnan(v) and math.isnan(k)) or (not math.isnan(k) and math.isclose(v, k))


def read_extra(path: str | os.PathLike[str], look: dict[str, str], known: dict[str, dict]) -> None:
    """Add the benchmarks described by a metadata CSV to ``look`` and ``known`` (in place).

    The file has the ``benchmarks.csv`` columns (at least :data:`EXTRA_REQUIRED`).  A benchmark
    already known must agree with its known metadata; one described on two lines must be
    described the same way.  The missing fields of *all* new benchmarks are reported in one
    message; a blank ``n_items`` is a warning naming what the fit will assume.
    """
    t = CsvTable(path, "benchmark metadata")
    cols = [header_key(h) for h in t.header]
    lacking = [c for c in EXTRA_REQUIRED if c not in cols]
    if lacking:
        raise t.error(
            1,
            None,
            f"metadata file lacks column(s) {lacking}; give the benchmarks.csv columns "
            f"{', '.join(EXTRA_REQUIRED)} (n_items may be blank, floor may be 'fitted')",
        )
    rows = [(n, dict(zip(cols, r, strict=True))) for n, r in t.rows]
    gaps = []
    for n, raw in rows:
        bid = look.get(header_key(raw["benchmark"]), raw["benchmark"])
        if not raw["benchmark"]:
            raise t.error(n, "benchmark", "blank benchmark id; fill it or delete the row")
        miss = _missing_fields(raw, known.get(bid))
        if miss:
            gaps.append(f"line {n} '{bid}': {', '.join(miss)}")
    if gaps:
        raise t.error(
            None,
            None,
            "missing metadata of new benchmarks: " + "; ".join(gaps) + "; fill them (floor may be "
            "'fitted')",
        )
    first: dict[str, tuple[int, dict]] = {}
    no_items = []
    for n, raw in rows:
        bid = look.get(header_key(raw["benchmark"]), raw["benchmark"])
        if bid in first:
            n0, spec0 = first[bid]
            for f in BENCH_FIELDS:
                cell = raw.get(f, "")
                v = math.nan if f == "floor" and cell.lower() == "fitted" else t.number(n, f, cell)
                k = spec0[f]
                if v is None and math.isnan(k) or v is not None and _same(v, k):
                    continue
                raise t.error(
                    n,
                    f,
                    f"benchmark '{bid}' is described on line {n0} with {f} = {k} and here with "
                    f"{f} = {'blank' if v is None else v}; keep one description",
                )
            continue
        spec = benchmark_spec(t, n, bid, raw, known.get(bid))
        first[bid] = (n, spec)
        known[bid] = spec
        look[header_key(bid)] = bid
        if math.isnan(spec["n_items"]):
            no_items.append(bid)
    if no_items:
        log.warning(
            "%s: no n_items for %s: the noise term assumes the spec's default_n_items "
            "(1000 in the shipped specs); give n_items for a right sampling noise",
            t.name,
            ", ".join(f"'{b}'" for b in no_items),
        )
