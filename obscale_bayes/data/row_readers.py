"""The rows of a user's wide or long table: model fields, scores and their checks.

:mod:`obscale_bayes.data.reader` opens the file (:class:`~obscale_bayes.data.csvfile.CsvTable`),
chooses its layout and its benchmark columns, and hands the rows to :func:`_read_wide` (one row
per model) or :func:`_read_long` (one row per score).  Both build the models from their model
columns (:data:`_MODEL_ALIASES`: accepted header spellings, compute columns with their units)
through the same checks: a model id on every row, ``kind`` ``base``/``instruct``, an ISO
``release_date``, compute values positive and in their unit; and both check each benchmark's
scores against its metric range (:func:`_check_scores`, which also catches percent scores).  A
long table's model and benchmark fields must be constant per model and per benchmark.  Every
problem raises :class:`~obscale_bayes.errors.DataError` through ``CsvTable.error`` (file, CSV
line, column, fix).
"""

from __future__ import annotations

import math

from obscale_bayes.data.aliases import COMPUTE_COLUMNS
from obscale_bayes.data.csvfile import CsvTable, header_key
from obscale_bayes.data.metadata import BENCH_FIELDS, benchmark_spec
from obscale_bayes.data.validate import RELEASE_DATE, _is_date

_SPELLINGS = {  # canonical model column: accepted header spellings (case-insensitive)
    "model": ("model", "fullname", "model name"),
    "family": ("family", "model family"),
    "kind": ("kind",),
    RELEASE_DATE: (RELEASE_DATE, "release date", "version release date"),
}
# compute columns (size, #Params (B), tokens, flops, ...) with their units: aliases.COMPUTE_COLUMNS
_MODEL_ALIASES = {k: canon for canon, keys in _SPELLINGS.items() for k in keys} | {
    k: canon for k, (canon, _, _) in COMPUTE_COLUMNS.items()
}
_IGNORED = {"flops_source", "source_table", "release_date_source"}
# Values above these are surely in the wrong unit (raw FLOPs / parameters / tokens).
_UNIT_LIMIT = {
    "params_b": (1e5, "billions of parameters"),
    "tokens_t": (1e4, "trillions of tokens"),
    "flops_1e21": (1e8, "units of 1e21 FLOPs (8.4e22 FLOPs -> 84)"),
}


def _check_scores(t: CsvTable, bid: str, col: str, cells: list[tuple[int, float]], b: dict) -> None:
    lo, hi = b["metric_min"], b["metric_max"]
    vals = [v for _, v in cells]
    if (lo, hi) == (0.0, 1.0) and max(vals) > 1 and min(vals) >= 0 and max(vals) <= 100:
        n = cells[vals.index(max(vals))][0]
        raise t.error(
            n,
            col,
            f"scores of '{bid}' look like percent (max "
            f"{max(vals):g}, metric range [0, 1]); divide the column by 100",
        )
    tol = 1e-9 * (hi - lo)
    for n, v in cells:
        if not lo - tol <= v <= hi + tol:
            raise t.error(
                n,
                col,
                f"score {v:g} of '{bid}' is outside its metric "
                f"range [{lo:g}, {hi:g}]; fix the value",
            )


def _model_fields(t: CsvTable, n: int, raw: dict[str, str]) -> dict:
    out: dict = {"family": raw.get("family") or None, "kind": raw.get("kind") or None}
    if out["kind"] not in (None, "base", "instruct"):
        raise t.error(n, "kind", f"kind '{out['kind']}' must be 'base' or 'instruct' (or blank)")
    date = raw.get(RELEASE_DATE, "")
    if date and not _is_date(date):
        raise t.error(
            n, RELEASE_DATE, f"'{date}' is not a date; write YYYY-MM-DD or leave the cell blank"
        )
    out[RELEASE_DATE] = date or None
    factors = getattr(t, "factors", {})
    for f, (limit, unit) in _UNIT_LIMIT.items():
        v = t.number(n, f, raw.get(f, ""))
        if v is not None and factors.get(f, 1.0) != 1.0:
            if v < 1e15:
                raise t.error(
                    n,
                    f,
                    f"this column holds absolute training FLOPs (e.g. 8.4e22), but {v:g} is far "
                    "too small; name the column flops_1e21 if it is in units of 1e21",
                )
            v *= factors[f]
        if v is not None and v <= 0:
            raise t.error(n, f, f"{f} must be positive, got {v:g}; leave the cell blank if unknown")
        if v is not None and v > limit:
            raise t.error(n, f, f"{f} = {v:g} looks like the wrong unit; give {unit}")
        out[f] = math.nan if v is None else v
    return out


def _blank(v: object) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _new_model(t: CsvTable, n: int, raw: dict[str, str]) -> dict:
    if not raw.get("model"):
        raise t.error(n, "model", "blank model id; fill it or delete the row")
    return {"model": raw["model"], **_model_fields(t, n, raw), "_line": n}


def _read_wide(t: CsvTable, cols: list[str], bcols: list[tuple[int, str]], known: dict):
    models: dict[str, dict] = {}
    cells: dict[str, list[tuple[int, float]]] = {b: [] for _, b in bcols}
    scores = []
    for n, r in t.rows:
        raw = {_MODEL_ALIASES[c]: v for c, v in zip(cols, r, strict=True) if c in _MODEL_ALIASES}
        m = _new_model(t, n, raw)
        if m["model"] in models:
            raise t.error(
                n,
                "model",
                f"model '{m['model']}' already on line "
                f"{models[m['model']]['_line']}; keep one row per model",
            )
        models[m["model"]] = m
        for i, bid in bcols:
            v = t.number(n, t.header[i], r[i])
            if v is not None:
                cells[bid].append((n, v))
                scores.append((m["model"], bid, v))
    for i, bid in bcols:
        if cells[bid]:
            _check_scores(t, bid, t.header[i], cells[bid], known[bid])
    t.cells = {b: (t.header[i], cells[b]) for i, b in bcols}
    return models, scores, [dict(known[b]) for _, b in bcols]


def _read_long(t: CsvTable, cols: list[str], look: dict, known: dict):
    allowed = set(_MODEL_ALIASES) | _IGNORED | set(BENCH_FIELDS) | {"benchmark", "value"}
    for c, h in zip(cols, t.header, strict=True):
        if c not in allowed:
            raise t.error(
                1,
                h,
                "unexpected column in a long table; allowed: "
                "model, benchmark, value, family, kind, params_b, tokens_t, "
                "flops_1e21, floor, metric_min, metric_max, n_items",
            )
    models: dict[str, dict] = {}
    seen: dict[tuple[str, str], int] = {}
    bfirst: dict[str, tuple[int, dict]] = {}
    cells: dict[str, list[tuple[int, float]]] = {}
    scores = []
    for n, r in t.rows:
        raw = dict(zip(cols, r, strict=True))
        mraw = {_MODEL_ALIASES[c]: v for c, v in raw.items() if c in _MODEL_ALIASES}
        m = _new_model(t, n, mraw)
        prev = models.setdefault(m["model"], m)
        for f in ("family", "kind", *_UNIT_LIMIT):
            if mraw.get(f, "") == "":
                continue  # blank: not restated on this row
            if _blank(prev[f]):
                prev[f] = m[f]
            elif prev[f] != m[f]:
                raise t.error(
                    n,
                    f,
                    f"model '{m['model']}' has {f} {m[f]!r} here "
                    f"but {prev[f]!r} earlier; {f} must be constant per model",
                )
        value = t.number(n, "value", raw["value"])
        if raw["benchmark"] == "":
            if value is not None:
                raise t.error(n, "benchmark", "blank benchmark for a score; fill it")
            continue
        bid = look.get(header_key(raw["benchmark"]), raw["benchmark"])
        braw = {f: raw.get(f, "") for f in BENCH_FIELDS}
        if bid not in bfirst:
            bfirst[bid] = (n, braw)
            known[bid] = benchmark_spec(t, n, bid, braw, known.get(bid))
            cells[bid] = []
        elif braw != bfirst[bid][1]:
            f = next(f for f in BENCH_FIELDS if braw[f] != bfirst[bid][1][f])
            raise t.error(
                n,
                f,
                f"benchmark '{bid}' has {f} '{braw[f]}' here but "
                f"'{bfirst[bid][1][f]}' on line {bfirst[bid][0]}; keep it constant",
            )
        if value is None:
            continue
        if (m["model"], bid) in seen:
            raise t.error(
                n,
                None,
                f"score of '{m['model']}' on '{bid}' already given on "
                f"line {seen[(m['model'], bid)]}; keep one row per model and benchmark",
            )
        seen[(m["model"], bid)] = n
        cells[bid].append((n, value))
        scores.append((m["model"], bid, value))
    for bid, c in cells.items():
        if c:
            _check_scores(t, bid, "value", c, known[bid])
    t.cells = {b: ("value", c) for b, c in cells.items()}
    order = {b: i for i, b in enumerate(known)}  # metadata order first, then new ones
    return models, scores, [dict(known[b]) for b in sorted(bfirst, key=order.__getitem__)]
