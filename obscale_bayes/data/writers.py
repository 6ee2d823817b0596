"""Write a :class:`~obscale_bayes.data.tables.BenchmarkData` as CSV files that
:func:`~obscale_bayes.data.reader.read_table` reads back unchanged.

Two layouts, as the reader accepts: a self-describing **long** table (one row per score, with
the benchmark metadata on every row) and a **wide** table (one row per model) with, optionally,
the benchmark metadata in a second file.  Files are written through
:func:`obscale_bayes.io.atomic_write` (no partial file on error).
"""

from __future__ import annotations

import os

import pandas as pd

from obscale_bayes.data.metadata import BENCH_FIELDS
from obscale_bayes.data.tables import BenchmarkData
from obscale_bayes.io import atomic_write

__all__ = ["write_long_csv", "write_wide_csv"]


def _write_csv(df: pd.DataFrame, path: str | os.PathLike[str]) -> None:
    atomic_write(
        path,
        lambda f: df.to_csv(f, index=False, lineterminator="\n"),
        binary=False,
        what="the table",
    )


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
    b = _floor_out(data.benchmarks)[["benchmark", *BENCH_FIELDS]]
    bpos = {x: i for i, x in enumerate(data.benchmark_ids)}
    mpos = {x: i for i, x in enumerate(data.model_ids)}
    s = data.scores.assign(_m=data.scores["model"].map(mpos), _b=data.scores["benchmark"].map(bpos))
    s = s.sort_values(["_m", "_b"]).drop(columns=["_m", "_b"])
    idle = data.models.loc[~data.models["model"].isin(set(s["model"])), ["model"]]
    s = pd.concat([s, idle], ignore_index=True).merge(data.models, on="model", how="left")
    s = s.merge(b, on="benchmark", how="left")
    s = s.assign(_m=s["model"].map(mpos)).sort_values("_m", kind="stable").drop(columns="_m")
    _write_csv(s, path)


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
    _write_csv(table, path)
    if metadata_path is not None:
        _write_csv(_floor_out(data.benchmarks), metadata_path)
