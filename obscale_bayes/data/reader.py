"""Read a user's own benchmark table into a validated :class:`~obscale_bayes.data.BenchmarkData`.

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
(header = line 1) and/or column, and the fix.
"""

from __future__ import annotations

import csv
import math
import os
import re
import tempfile
from pathlib import Path

import pandas as pd

from obscale_bayes.data.tables import BENCHMARK_COLUMNS, BenchmarkData, load_benchmark_metadata
from obscale_bayes.errors import DataError

__all__ = ["read_table", "write_long_csv", "write_wide_csv"]

_SPELLINGS = {  # canonical model column: accepted header spellings (case-insensitive)
    "model": ("model",),
    "family": ("family", "model family"),
    "kind": ("kind",),
    "params_b": ("params_b", "model size (b)"),
    "tokens_t": ("tokens_t", "pretraining data size (t)"),
    "flops_1e21": ("flops_1e21", "flops (1e21)"),
}
_MODEL_ALIASES = {k: canon for canon, keys in _SPELLINGS.items() for k in keys}
_IGNORED = {"flops_source", "source_table"}
_BENCH_FIELDS = ("floor", "metric_min", "metric_max", "n_items")
# Values above these are surely in the wrong unit (raw FLOPs / parameters / tokens).
_UNIT_LIMIT = {
    "params_b": (1e5, "billions of parameters"),
    "tokens_t": (1e4, "trillions of tokens"),
    "flops_1e21": (1e8, "units of 1e21 FLOPs (8.4e22 FLOPs -> 84)"),
}
_NUM = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")
_NOT_NUMBERS = set(
    "nan na n/a #n/a null none inf +inf -inf infinity +infinity -infinity - ?".split()
)


def _key(name: str) -> str:
    return " ".join(str(name).strip().lower().split())


class _Csv:
    """A CSV file read as raw strings, each row with its 1-based line number."""

    def __init__(self, path: str | os.PathLike[str], what: str = "table") -> None:
        self.name = str(path)
        p = Path(path)
        if not p.is_file():
            raise DataError(f"{self.name}: {what} file not found; check the path")
        if p.stat().st_size == 0:
            raise DataError(f"{self.name}: file is empty (0 bytes); write a header and rows")
        try:
            with p.open(encoding="utf-8-sig", newline="") as f:
                reader = csv.reader(f)
                rows = [(reader.line_num, r) for r in reader]
        except UnicodeDecodeError as e:
            raise DataError(f"{self.name}: not UTF-8 text ({e.reason}); save as UTF-8 CSV") from e
        except csv.Error as e:
            raise DataError(f"{self.name}: line {reader.line_num}: malformed CSV ({e})") from e
        except OSError as e:
            raise DataError(f"{self.name}: cannot read the file ({e.strerror}); check it") from e
        rows = [(n, [c.strip() for c in r]) for n, r in rows if any(c.strip() for c in r)]
        if not rows:
            raise DataError(f"{self.name}: file has no header; write a header and rows")
        (_, self.header), self.rows = rows[0], rows[1:]
        if not self.rows:
            raise DataError(f"{self.name}: file has a header but no data rows; add rows")
        for i, h in enumerate(self.header, 1):
            if not h:
                raise DataError(f"{self.name}: line 1: column {i} has no name; name it")
        keys = [_key(h) for h in self.header]
        self.label = {_MODEL_ALIASES.get(k, k): h for k, h in zip(keys, self.header, strict=True)}
        for i, k in enumerate(keys):
            if k in keys[:i]:
                raise DataError(
                    f"{self.name}: line 1: column '{self.header[i]}' appears twice; keep one"
                )
        for n, r in self.rows:
            if len(r) != len(self.header):
                raise DataError(
                    f"{self.name}: line {n} has {len(r)} fields but the header has "
                    f"{len(self.header)}; fix the commas on that line"
                )

    def where(self, line: int | None = None, col: str | None = None) -> str:
        out = self.name + (f": line {line}" if line else "")
        return out + (f", column '{self.label.get(col, col)}'" if col else "")

    def error(self, line: int | None, col: str | None, msg: str) -> DataError:
        return DataError(f"{self.where(line, col)}: {msg}")

    def number(self, line: int, col: str, raw: str) -> float | None:
        """Parse a numeric cell: blank -> None, a finite number, or DataError."""
        if raw == "":
            return None
        if raw.lower() in _NOT_NUMBERS:
            raise self.error(
                line,
                col,
                f"value '{raw}' is not a finite number; leave the cell blank for a missing value",
            )
        if not _NUM.fullmatch(raw):
            hint = "; write fractions, e.g. 0.45 for 45%" if raw.endswith("%") else ""
            raise self.error(
                line,
                col,
                f"value '{raw}' is not a number; fix the "
                f"cell or leave it blank for a missing value{hint}",
            )
        v = float(raw)
        if not math.isfinite(v):
            raise self.error(line, col, f"value '{raw}' overflows; fix the cell")
        return v


def _lookup(meta: pd.DataFrame) -> dict[str, str]:
    """Case-insensitive names (id, upstream column(s), display name) -> benchmark id."""
    out: dict[str, str] = {}
    clash: set[str] = set()
    for _, r in meta.iterrows():
        up = r.get("upstream_column")
        names = [r["display_name"], *(up.split(";") if isinstance(up, str) else [])]
        for name in names:
            k = _key(name) if isinstance(name, str) else ""
            if k and out.get(k, r["benchmark"]) != r["benchmark"]:
                clash.add(k)
            elif k:
                out[k] = r["benchmark"]
    out = {k: v for k, v in out.items() if k not in clash}
    out.update({_key(b): b for b in meta["benchmark"]})  # ids always win
    return out


def _bench_spec(t: _Csv, line: int, bid: str, raw: dict[str, str], known: dict | None) -> dict:
    """Benchmark metadata from a file's cells, checked against the known metadata (if any)."""
    vals: dict[str, float | None] = {}
    for f in _BENCH_FIELDS:
        cell = raw.get(f, "")
        vals[f] = math.nan if f == "floor" and cell.lower() == "fitted" else t.number(line, f, cell)
    if known is not None:
        for f in _BENCH_FIELDS:
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


def _known(meta: pd.DataFrame) -> dict[str, dict]:
    m = meta.loc[:, list(BENCHMARK_COLUMNS)].copy()
    for f in _BENCH_FIELDS:
        m[f] = pd.to_numeric(m[f]).astype(float)
    return {r["benchmark"]: r for r in m.to_dict("records")}


def _read_extra(path: str | os.PathLike[str], look: dict, known: dict) -> None:
    t = _Csv(path, "extra benchmark metadata")
    cols = [_key(h) for h in t.header]
    if "benchmark" not in cols:
        raise t.error(1, None, "no 'benchmark' column; use the benchmarks.csv columns")
    for n, r in t.rows:
        raw = dict(zip(cols, r, strict=True))
        bid = look.get(_key(raw["benchmark"]), raw["benchmark"])
        known[bid] = _bench_spec(t, n, bid, raw, known.get(bid))
        look[_key(bid)] = bid


def _check_scores(t: _Csv, bid: str, col: str, cells: list[tuple[int, float]], b: dict) -> None:
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


def _model_fields(t: _Csv, n: int, raw: dict[str, str]) -> dict:
    out: dict = {"family": raw.get("family") or None, "kind": raw.get("kind") or None}
    if out["kind"] not in (None, "base", "instruct"):
        raise t.error(n, "kind", f"kind '{out['kind']}' must be 'base' or 'instruct' (or blank)")
    for f, (limit, unit) in _UNIT_LIMIT.items():
        v = t.number(n, f, raw.get(f, ""))
        if v is not None and v <= 0:
            raise t.error(n, f, f"{f} must be positive, got {v:g}; leave the cell blank if unknown")
        if v is not None and v > limit:
            raise t.error(n, f, f"{f} = {v:g} looks like the wrong unit; give {unit}")
        out[f] = math.nan if v is None else v
    return out


def read_table(
    path: str | os.PathLike[str],
    metadata: pd.DataFrame | None = None,
    *,
    extra_benchmarks: str | os.PathLike[str] | None = None,
    require_family: bool = True,
) -> BenchmarkData:
    """Read and validate a user's benchmark table (wide or long CSV).

    Parameters
    ----------
    path : str or path-like
        The CSV file.
    metadata : pandas.DataFrame, optional
        Benchmark metadata with the ``benchmarks.csv`` columns; default: the shipped one.
    extra_benchmarks : str or path-like, optional
        CSV with ``benchmarks.csv`` columns (at least ``benchmark, floor, metric_min,
        metric_max``; floor may be ``fitted``) describing benchmarks unknown to ``metadata``.
    require_family : bool
        Every model must have a family (needed for fitting; not for forecasting).

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
    look, known = _lookup(meta), _known(meta)
    if extra_benchmarks is not None:
        _read_extra(extra_benchmarks, look, known)
    t = _Csv(path)
    cols = [_key(h) for h in t.header]
    if "model" not in cols:
        sep = next((s for s in ";\t|" if s in ",".join(t.header)), None)
        hint = f" (the file seems to use {sep!r} as separator; use commas)" if sep else ""
        raise t.error(
            1, None, f"no 'model' column{hint}; name the model-id column 'model' or 'Model'"
        )
    long = "benchmark" in cols and "value" in cols
    models, scores, benches = (_read_long if long else _read_wide)(t, cols, look, known)
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
    mdf = pd.DataFrame(list(models.values())).drop(columns="_line")
    sdf = pd.DataFrame(scores, columns=["model", "benchmark", "value"])
    return BenchmarkData(mdf, sdf, pd.DataFrame(benches), source=t.name)


def _blank(v: object) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _new_model(t: _Csv, n: int, raw: dict[str, str]) -> dict:
    if not raw.get("model"):
        raise t.error(n, "model", "blank model id; fill it or delete the row")
    return {"model": raw["model"], **_model_fields(t, n, raw), "_line": n}


def _read_wide(t: _Csv, cols: list[str], look: dict, known: dict):
    bcols: list[tuple[int, str]] = []
    for i, c in enumerate(cols):
        if c in _MODEL_ALIASES or c in _IGNORED:
            continue
        bid = look.get(c)
        if bid is None or bid not in known:
            raise t.error(
                1,
                t.header[i],
                "unknown benchmark; use a known id (see "
                "load_benchmark_metadata()) or describe it with extra_benchmarks= "
                "(floor, metric_min, metric_max)",
            )
        if bid in [b for _, b in bcols]:
            raise t.error(1, t.header[i], f"a second column for benchmark '{bid}'; keep one")
        bcols.append((i, bid))
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
    return models, scores, [dict(known[b]) for _, b in bcols]


def _read_long(t: _Csv, cols: list[str], look: dict, known: dict):
    allowed = set(_MODEL_ALIASES) | _IGNORED | set(_BENCH_FIELDS) | {"benchmark", "value"}
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
        bid = look.get(_key(raw["benchmark"]), raw["benchmark"])
        braw = {f: raw.get(f, "") for f in _BENCH_FIELDS}
        if bid not in bfirst:
            bfirst[bid] = (n, braw)
            known[bid] = _bench_spec(t, n, bid, braw, known.get(bid))
            cells[bid] = []
        elif braw != bfirst[bid][1]:
            f = next(f for f in _BENCH_FIELDS if braw[f] != bfirst[bid][1][f])
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
    order = {b: i for i, b in enumerate(known)}  # metadata order first, then new ones
    return models, scores, [dict(known[b]) for b in sorted(bfirst, key=order.__getitem__)]


# ---- writing ------------------------------------------------------------------------------
def _atomic_csv(df: pd.DataFrame, path: str | os.PathLike[str]) -> None:
    p = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent or ".")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            df.to_csv(f, index=False, lineterminator="\n")
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _floor_out(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    out["floor"] = out["floor"].astype(object).where(out["floor"].notna(), "fitted")
    out["n_items"] = out["n_items"].astype("Int64")
    return out


def write_long_csv(data: BenchmarkData, path: str | os.PathLike[str]) -> None:
    """Write ``data`` as a self-describing long CSV that :func:`read_table` reads back.

    Columns: ``model, benchmark, value``, the model columns and the benchmark columns
    ``floor`` (``fitted`` when NaN), ``metric_min, metric_max, n_items``.  Models without
    scores get one row with blank benchmark and value.  The file is written atomically.
    """
    b = _floor_out(data.benchmarks)[["benchmark", *_BENCH_FIELDS]]
    bpos = {x: i for i, x in enumerate(data.benchmark_ids)}
    mpos = {x: i for i, x in enumerate(data.model_ids)}
    s = data.scores.assign(_m=data.scores["model"].map(mpos), _b=data.scores["benchmark"].map(bpos))
    s = s.sort_values(["_m", "_b"]).drop(columns=["_m", "_b"])
    idle = data.models.loc[~data.models["model"].isin(set(s["model"])), ["model"]]
    s = pd.concat([s, idle], ignore_index=True).merge(data.models, on="model", how="left")
    s = s.merge(b, on="benchmark", how="left")
    s = s.assign(_m=s["model"].map(mpos)).sort_values("_m", kind="stable").drop(columns="_m")
    _atomic_csv(s, path)


def write_wide_csv(
    data: BenchmarkData,
    path: str | os.PathLike[str],
    metadata_path: str | os.PathLike[str] | None = None,
) -> None:
    """Write ``data`` as a wide CSV (one row per model, one column per benchmark id).

    Parameters
    ----------
    data : BenchmarkData
    path : str or path-like
        The wide table (written atomically).
    metadata_path : str or path-like, optional
        Also write the benchmark metadata there, for ``read_table(path,
        extra_benchmarks=metadata_path)`` when ``data`` has benchmarks unknown to the shipped
        metadata.
    """
    table = data.models.set_index("model").join(data.wide()).reset_index()
    _atomic_csv(table, path)
    if metadata_path is not None:
        _atomic_csv(_floor_out(data.benchmarks), metadata_path)
