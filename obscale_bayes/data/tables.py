"""Benchmark data in memory: the :class:`BenchmarkData` container and the shipped tables.

The shipped tables (``models.csv``, ``scores.csv``, ``benchmarks.csv``) are built by
``data/build_tables.py`` from the public ObsScaling figures; ``data/README.md`` is their
datasheet.  This module needs only numpy and pandas (no PyMC).

The tables' columns and the checks run on construction are :mod:`obscale_bayes.data.validate`
(its column names are re-exported here).
"""

from __future__ import annotations

import hashlib
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import pandas as pd

from obscale_bayes.data.validate import (
    BENCHMARK_COLUMNS,
    MODEL_COLUMNS,
    RELEASE_DATE,
    SCORE_COLUMNS,
    validate_tables,
)
from obscale_bayes.errors import DataError, UsageError

__all__ = [
    "BENCHMARK_COLUMNS",
    "GROUPS",
    "LEADERBOARD_V2_BENCHMARKS",
    "MODEL_COLUMNS",
    "RELEASE_DATE",
    "SCORE_COLUMNS",
    "STANDARD_BENCHMARKS",
    "BenchmarkData",
    "data_dir",
    "load_benchmark_metadata",
    "load_shipped",
]

#: The 8 standard benchmarks of the paper's capability space, in the paper's order.
STANDARD_BENCHMARKS = (
    "mmlu",
    "arc_c",
    "hellaswag",
    "winogrande",
    "truthfulqa",
    "gsm8k",
    "xwinograd",
    "humaneval",
)
#: Benchmark groups of the shipped metadata.
GROUPS = ("standard", "emergent", "post_training", "instruct", "agent", "leaderboard_v2")
#: The six Open LLM Leaderboard v2 tasks of group ``leaderboard_v2`` (raw scores).
LEADERBOARD_V2_BENCHMARKS = ("mmlu_pro", "gpqa", "math_lvl5", "bbh", "ifeval", "musr")
_TABLES = ("models.csv", "scores.csv", "benchmarks.csv")


@dataclass(frozen=True, eq=False)
class BenchmarkData:
    """Models, their benchmark scores and the benchmarks' metadata, validated.

    Parameters
    ----------
    models : pandas.DataFrame
        One row per model: ``model`` (unique str), ``family`` (str, NaN = unknown), ``kind``
        (``"base"``/``"instruct"``, NaN = unknown), ``params_b``, ``tokens_t``, ``flops_1e21``
        (floats, NaN = unknown; FLOPs in units of 1e21); optionally ``release_date``
        (``YYYY-MM-DD`` str, NaN = unknown), kept only when some model has one.
    scores : pandas.DataFrame
        Long format ``model, benchmark, value``; one row per observed cell (no NaN values).
    benchmarks : pandas.DataFrame
        One row per benchmark: ``benchmark`` (unique), ``display_name``, ``group``, ``floor``
        (chance level in metric units, NaN = fitted), ``n_items`` (NaN = unknown),
        ``metric_min``, ``metric_max``, ``unit``.
    source : str
        Where the data came from (file paths), used in messages.

    Notes
    -----
    Frames are copied, reduced to the columns above and type-normalised on construction
    (:func:`~obscale_bayes.data.validate.validate_tables`);
    every model and benchmark named in ``scores`` must appear in ``models``/``benchmarks``.
    Models without any score are allowed (e.g. forecast targets).
    """

    models: pd.DataFrame
    scores: pd.DataFrame
    benchmarks: pd.DataFrame
    source: str = "shipped"

    def __post_init__(self) -> None:
        m, s, b = validate_tables(self.models, self.scores, self.benchmarks, self.source)
        object.__setattr__(self, "models", m)
        object.__setattr__(self, "scores", s)
        object.__setattr__(self, "benchmarks", b)

    # ---- views ---------------------------------------------------------------------------
    @property
    def model_ids(self) -> list[str]:
        """Model ids in table order."""
        return list(self.models["model"])

    @property
    def benchmark_ids(self) -> list[str]:
        """Benchmark ids in table order."""
        return list(self.benchmarks["benchmark"])

    @property
    def families(self) -> list[str]:
        """Sorted distinct model families (unknown families excluded)."""
        return sorted(self.models["family"].dropna().unique())

    def __repr__(self) -> str:
        return (
            f"BenchmarkData({len(self.models)} models, {len(self.benchmarks)} benchmarks, "
            f"{len(self.scores)} scores, source={self.source!r})"
        )

    def wide(self) -> pd.DataFrame:
        """Models x benchmarks matrix of scores (NaN = missing), in table order."""
        w = self.scores.pivot(index="model", columns="benchmark", values="value")
        w = w.reindex(index=self.model_ids, columns=self.benchmark_ids).astype(float)
        w.index.name, w.columns.name = "model", "benchmark"
        return w

    def subset(
        self,
        models: Sequence[str] | None = None,
        benchmarks: Sequence[str] | None = None,
        *,
        drop_empty_benchmarks: bool = False,
    ) -> BenchmarkData:
        """Restrict to some models and/or benchmarks (table order is kept).

        Parameters
        ----------
        models, benchmarks : sequence of str, optional
            Ids to keep (``None`` keeps all).  Unknown ids raise :class:`UsageError`.
        drop_empty_benchmarks : bool
            Also drop benchmarks left without any score.

        Returns
        -------
        BenchmarkData
            Models left with no score are dropped.
        """
        m, b, s = self.models, self.benchmarks, self.scores
        for ids, have, what in (
            (models, m["model"], "model"),
            (benchmarks, b["benchmark"], "benchmark"),
        ):
            if ids is not None:
                if isinstance(ids, str):
                    raise UsageError(f"subset: {what}s must be a list of ids, not a string")
                unknown = [i for i in ids if i not in set(have)]
                if unknown:
                    raise UsageError(f"subset: unknown {what}(s) {unknown[:5]}")
        if benchmarks is not None:
            b = b[b["benchmark"].isin(set(benchmarks))]
        if models is not None:
            m = m[m["model"].isin(set(models))]
        s = s[s["model"].isin(set(m["model"])) & s["benchmark"].isin(set(b["benchmark"]))]
        m = m[m["model"].isin(set(s["model"]))]
        if drop_empty_benchmarks:
            b = b[b["benchmark"].isin(set(s["benchmark"]))]
        return BenchmarkData(m, s, b, source=self.source)

    # ---- identity and serialisation --------------------------------------------------------
    def _canonical(self) -> dict[str, pd.DataFrame]:
        return {
            "models": self.models.sort_values("model"),
            "scores": self.scores.sort_values(["model", "benchmark"]),
            "benchmarks": self.benchmarks.sort_values("benchmark"),
        }

    def fingerprint(self) -> str:
        """SHA-256 of a canonical CSV serialisation of the three tables.

        Rows are sorted by id, so the fingerprint does not depend on row order or on
        ``source``; any change of an id, a value or a metadata field changes it.
        """
        h = hashlib.sha256()
        for name, df in self._canonical().items():
            buf = io.StringIO()
            df.to_csv(buf, index=False, lineterminator="\n", float_format="%.17g", na_rep="")
            h.update(f"[{name}]\n".encode())
            h.update(buf.getvalue().encode())
        return h.hexdigest()

    def equals(self, other: BenchmarkData) -> bool:
        """Same tables (row order and ``source`` ignored)."""
        return isinstance(other, BenchmarkData) and self.fingerprint() == other.fingerprint()

    def to_json_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (NaN -> ``None``) that :meth:`from_json_dict` rebuilds exactly."""

        def enc(df: pd.DataFrame) -> dict[str, Any]:
            rows = [
                [None if isinstance(v, float) and math.isnan(v) else v for v in row]
                for row in df.astype(object).itertuples(index=False, name=None)
            ]
            return {"columns": list(df.columns), "data": rows}

        return {
            "format": "obscale_bayes.BenchmarkData/1",
            "source": self.source,
            "models": enc(self.models),
            "scores": enc(self.scores),
            "benchmarks": enc(self.benchmarks),
            "fingerprint": self.fingerprint(),
        }

    @classmethod
    def from_json_dict(cls, d: dict[str, Any]) -> BenchmarkData:
        """Rebuild from :meth:`to_json_dict` output; checks the stored fingerprint."""
        try:
            frames = {
                k: pd.DataFrame(d[k]["data"], columns=d[k]["columns"])
                for k in ("models", "scores", "benchmarks")
            }
            source = str(d.get("source", "json"))
        except (KeyError, TypeError, ValueError) as e:
            raise DataError(f"stored benchmark data is malformed ({e!r}); refit") from e
        data = cls(frames["models"], frames["scores"], frames["benchmarks"], source=source)
        fp = d.get("fingerprint")
        if fp is not None and fp != data.fingerprint():
            raise DataError(
                f"stored benchmark data from {source} fails its fingerprint check; "
                "the file is corrupt or was edited; refit"
            )
        return data


# ---- shipped tables -----------------------------------------------------------------------
def data_dir() -> Path:
    """Folder holding the shipped tables (``obscale_bayes/data/shipped``, the only copy).

    The repository's ``data/*.csv`` are links to these files.
    """
    pkg = Path(__file__).resolve().parent / "shipped"
    if all((pkg / t).is_file() for t in _TABLES):
        return pkg
    raise DataError(
        f"shipped tables {_TABLES} not found in {pkg}; "
        "run `python data/build_tables.py` or reinstall obscale-bayes"
    )


@lru_cache(maxsize=4)
def _read_shipped(folder: str) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    d = Path(folder)
    kw = dict(keep_default_na=False, na_values=[""], dtype={"model": str, "benchmark": str})
    return tuple(pd.read_csv(d / t, **kw) for t in _TABLES)  # type: ignore[return-value]


def load_benchmark_metadata() -> pd.DataFrame:
    """The shipped ``benchmarks.csv`` (all columns, incl. ``upstream_column``, ``description``).

    Returns
    -------
    pandas.DataFrame
        One row per benchmark, ``floor``/``n_items`` NaN where blank.
    """
    meta = _read_shipped(str(data_dir()))[2].copy()
    meta["n_items"] = meta["n_items"].astype(float)
    return meta


def load_shipped(
    groups: str | Sequence[str] = "standard",
    kind: str | None = "base",
    benchmarks: Sequence[str] | None = None,
) -> BenchmarkData:
    """Load the shipped benchmark tables.

    Parameters
    ----------
    groups : str or sequence of str
        Benchmark groups to include, from :data:`GROUPS` (``"all"`` = every group).
    kind : {"base", "instruct", None}
        Keep only models of this kind (``None`` = all).
    benchmarks : sequence of str, optional
        Exactly these benchmark ids (any group; ``groups`` is then ignored).

    Returns
    -------
    BenchmarkData
        Models without any score on the chosen benchmarks are dropped.  The default is the
        128 base models x the 8 standard benchmarks.
    """
    folder = data_dir()
    models, scores, meta = _read_shipped(str(folder))
    if benchmarks is not None:
        if isinstance(benchmarks, str):
            benchmarks = [benchmarks]
        unknown = [b for b in benchmarks if b not in set(meta["benchmark"])]
        if unknown:
            raise UsageError(
                f"load_shipped: unknown benchmark(s) {unknown[:5]}; see load_benchmark_metadata()"
            )
        meta = meta[meta["benchmark"].isin(set(benchmarks))]
    else:
        g = GROUPS if groups == "all" else (groups,) if isinstance(groups, str) else groups
        bad = [x for x in g if x not in GROUPS]
        if bad:
            raise UsageError(f"load_shipped: unknown group(s) {bad}; choose from {GROUPS}")
        meta = meta[meta["group"].isin(set(g))]
    if kind is not None:
        if kind not in ("base", "instruct"):
            raise UsageError(f"load_shipped: kind must be 'base', 'instruct' or None, not {kind!r}")
        models = models[models["kind"] == kind]
    s = scores[
        scores["model"].isin(set(models["model"]))
        & scores["benchmark"].isin(set(meta["benchmark"]))
    ]
    models = models[models["model"].isin(set(s["model"]))]
    if s.empty:
        raise UsageError(
            f"load_shipped: no {kind or 'shipped'} model has scores on these benchmarks; "
            "change kind= (instruct benchmarks need kind='instruct' or None)"
        )
    return BenchmarkData(models, s, meta, source=f"shipped tables in {folder}")
