"""Backtest cases: the one builder that turns a table, a task, inputs and a split into a case.

A :class:`BacktestCase` is everything a backtest needs: the models table (metadata, the input
benchmarks' scores and the raw target), the train/test masks, the link of the baselines and the
target's transform ``y01 = (y - chance) / (max_value - chance)``, the scale every method is scored
on.  :func:`build_case` is the only place that builds one; the paper's nine analyses
(:func:`paper_case`, settings in :mod:`~obscale_bayes.evaluation.presets`), the BBH preset and any
user-chosen task / inputs / split (:func:`preset_cases`, the CLI's ``--task``) all go through it.

Models without the target, or without any input score, are dropped before splitting (as in the
paper's code).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from obscale_bayes.data.tables import BenchmarkData, load_benchmark_metadata
from obscale_bayes.errors import DataError, UsageError
from obscale_bayes.evaluation.baselines import TrainingFrame
from obscale_bayes.evaluation.presets import (
    ANALYSES,
    PRESETS,
    PaperAnalysis,
    get_analysis,
    paper_table,
    read_raw_tables,
)
from obscale_bayes.evaluation.splits import SplitSpec, parse_split
from obscale_bayes.evaluation.tasks import load_for, parse_inputs, resolve_task

__all__ = ["META_COLUMNS", "BacktestCase", "build_case", "paper_case", "preset_cases"]

META_COLUMNS = ["family", "params_b", "tokens_t", "flops_1e21"]
"""Per-model metadata a case keeps next to the scores."""


@dataclass(frozen=True)
class BacktestCase:
    """One backtest: a table of models, the inputs, the target and the split.

    Attributes
    ----------
    name : str
        Label of the case (unique within a run).
    models : pandas.DataFrame
        Indexed by model; ``family, params_b, tokens_t, flops_1e21``, the inputs, ``raw_target``.
    inputs : tuple of str
        Input benchmark ids.
    target : str
        Target benchmark id.
    train, test : pandas.Series of bool
        Masks aligned to ``models.index``.
    split : str
        Label of the split (``flops<=84e21``, ``top10%``, ...).
    link : str
        Link of the baselines (``sigmoid`` or ``floored_sigmoid``).
    chance, max_value : float
        Target transform ``(y - chance) / (max_value - chance)``.
    benchmarks : pandas.DataFrame, optional
        Metadata of the inputs and target (default: the shipped metadata).
    """

    name: str
    models: pd.DataFrame
    inputs: tuple[str, ...]
    target: str
    train: pd.Series
    test: pd.Series
    split: str
    link: str = "floored_sigmoid"
    chance: float = 0.0
    max_value: float = 1.0
    benchmarks: pd.DataFrame | None = None

    def transform(self, y: np.ndarray | pd.Series) -> np.ndarray:
        """The scale errors are measured on: ``(y - chance) / (max - chance)``."""
        return (np.asarray(y, dtype=float) - self.chance) / (self.max_value - self.chance)

    @property
    def truth(self) -> pd.Series:
        """The held-out models' transformed target, indexed by model."""
        m = self.models[self.test]
        return pd.Series(self.transform(m["raw_target"]), index=m.index)

    def frame(self, rows: pd.Series | Sequence[str]) -> TrainingFrame:
        """The baselines' view of ``rows`` (a mask or model ids): inputs, transformed target,
        family, log10 FLOPs."""
        m = self.models.loc[rows]
        return TrainingFrame(
            inputs=m[list(self.inputs)],
            target=pd.Series(self.transform(m["raw_target"]), index=m.index),
            family=m["family"],
            log10_flops=np.log10(m["flops_1e21"]) + 21.0,
        )

    @property
    def train_frame(self) -> TrainingFrame:
        """:meth:`frame` of the training models."""
        return self.frame(self.train)

    @property
    def test_frame(self) -> TrainingFrame:
        """:meth:`frame` of the held-out models."""
        return self.frame(self.test)

    def data(self, rows: pd.Series, with_target: bool) -> BenchmarkData:
        """``rows`` as a :class:`~obscale_bayes.data.tables.BenchmarkData` for the Bayesian model:
        their input scores and, with ``with_target``, their target score."""
        m = self.models[rows]
        cols = list(self.inputs) + (["raw_target"] if with_target else [])
        long = m[cols].rename(columns={"raw_target": self.target}).reset_index()
        long = long.melt(id_vars="model").dropna().rename(columns={"variable": "benchmark"})
        meta = load_benchmark_metadata() if self.benchmarks is None else self.benchmarks
        meta = meta[meta["benchmark"].isin(list(self.inputs) + [self.target])]
        models = m[META_COLUMNS].reset_index()
        models["kind"] = np.nan
        source = f"{self.name} ({'train' if with_target else 'test inputs'})"
        return BenchmarkData(models, long[["model", "benchmark", "value"]], meta, source=source)


def _wide(table: BenchmarkData | pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """(wide per-model table, benchmark metadata of the table or None = shipped)."""
    if isinstance(table, BenchmarkData):
        m = table.models.set_index("model").reindex(columns=META_COLUMNS)
        return m.join(table.wide(), how="left"), table.benchmarks
    if isinstance(table, pd.DataFrame):
        return table, None
    raise UsageError(
        f"table: expected a BenchmarkData or a wide DataFrame indexed by model, not "
        f"{type(table).__name__}"
    )


def _bounds(
    target: str, meta: pd.DataFrame | None, chance: float | None, max_value: float | None
) -> tuple[float, float]:
    if chance is None or max_value is None:
        meta = load_benchmark_metadata() if meta is None else meta
        row = meta.set_index("benchmark")
        if target not in row.index:
            raise UsageError(
                f"chance: the task {target!r} has no metric range in the benchmark metadata; "
                "give chance= and max_value="
            )
        chance = float(row.loc[target, "metric_min"]) if chance is None else chance
        max_value = float(row.loc[target, "metric_max"]) if max_value is None else max_value
    if not np.isfinite(chance) or not np.isfinite(max_value) or max_value <= chance:
        raise UsageError(
            f"max_value: must be finite and above chance ({chance:g}), got {max_value:g}"
        )
    return float(chance), float(max_value)


def build_case(
    table: BenchmarkData | pd.DataFrame,
    task: str,
    inputs: str | Sequence[str] | None,
    split: SplitSpec | str,
    *,
    families: Sequence[str] | None = None,
    link: str = "floored_sigmoid",
    chance: float | None = None,
    max_value: float | None = None,
    name: str | None = None,
) -> BacktestCase:
    """One :class:`BacktestCase`: the target ``task`` forecast from ``inputs`` on ``split``.

    Parameters
    ----------
    table : BenchmarkData or pandas.DataFrame
        The scores: a benchmark table, or a wide frame indexed by model with the columns of
        :data:`META_COLUMNS` (missing ones are NaN) and one column per benchmark.
    task : str
        Target: a benchmark id of the table or an alias (:func:`~.tasks.task_aliases`).
    inputs : str, sequence of str or None
        Input benchmark ids, or comma-separated text (None = the 8 standard benchmarks).
    split : SplitSpec or str
        The split, or its text form (``cutoff:84``, ``top:0.1``, ... :func:`~.splits.parse_split`).
    families : sequence of str, optional
        Keep only these model families.
    link : str
        Link of the baselines.
    chance, max_value : float, optional
        Target transform ``(y - chance) / (max_value - chance)``; default: the target's
        ``metric_min`` / ``metric_max`` in the table's benchmark metadata (shipped metadata for a
        DataFrame).
    name : str, optional
        Label (default: ``task``).

    Raises
    ------
    UsageError
        One line naming the parameter (``task``, ``inputs``, ``split``, ...).
    """
    wide, meta = _wide(table)
    known = [c for c in wide.columns if c not in META_COLUMNS]
    target = resolve_task(task, known)
    inputs = parse_inputs(inputs, known)
    if target in inputs:
        raise UsageError(f"inputs: the task {target!r} is also an input; drop it from inputs")
    split = parse_split(split) if isinstance(split, str) else split
    models = wide.reindex(columns=META_COLUMNS + list(inputs))
    models["raw_target"] = wide[target]
    if families is not None:
        models = models[models["family"].isin(families)]
    models = models[models["raw_target"].notna() & models[list(inputs)].notna().any(axis=1)]
    models.index.name = "model"
    if len(models) < 3:
        raise UsageError(
            f"task: {task!r}: only {len(models)} model(s) have this task and an input score; "
            "need >= 3"
        )
    chance, max_value = _bounds(target, meta, chance, max_value)
    if split.kind == "family" and split.family not in set(models["family"].astype(str)):
        fams = sorted(models["family"].dropna().astype(str).unique())
        raise UsageError(
            f"split: family {split.family!r} has no model with this task; choose from "
            f"{', '.join(fams)}"
        )
    s = split.apply(models, (models["raw_target"] - chance) / (max_value - chance))
    return BacktestCase(
        name=name or task,
        models=models,
        inputs=inputs,
        target=target,
        train=s.train,
        test=s.test,
        split=split.label,
        link=link,
        chance=chance,
        max_value=max_value,
        benchmarks=meta,
    )


def paper_case(
    analysis: PaperAnalysis | str,
    raw: dict[str, pd.DataFrame] | None = None,
    check_sizes: bool = True,
) -> BacktestCase:
    """The case of one of the paper's analyses (a key of :data:`~.presets.ANALYSES`, or a
    :class:`~.presets.PaperAnalysis` of one's own), with its exact settings.

    ``raw`` are the tables of :func:`~.presets.read_raw_tables` (default: the curated ones).  With
    ``check_sizes`` a train/test size that differs from the paper's raises
    :class:`~obscale_bayes.errors.DataError`.
    """
    a = get_analysis(analysis) if isinstance(analysis, str) else analysis
    raw = read_raw_tables() if raw is None else raw
    case = build_case(
        paper_table(a, raw), a.target, a.inputs, a.split_spec, families=a.families, link=a.link,
        chance=a.chance, max_value=a.max_value, name=a.key,
    )  # fmt: skip
    n_tr, n_te = int(case.train.sum()), int(case.test.sum())
    if check_sizes and (n_tr, n_te) != (a.n_train, a.n_test):
        raise DataError(
            f"{a.key}: train/test sizes {n_tr}/{n_te} differ from the paper's "
            f"{a.n_train}/{a.n_test}"
        )
    return case


def preset_cases(preset: str, analyses: Sequence[str] | None = None) -> list[BacktestCase]:
    """The cases of a preset: ``"paper"`` (the nine analyses, or those keyed in ``analyses``)
    or a generic preset of :data:`~.presets.PRESETS` (``"bbh"``)."""
    if preset == "paper":
        keys = list(analyses) if analyses else [a.key for a in ANALYSES]
        for k in keys:  # every unknown key before any table is read
            get_analysis(k)
        raw = read_raw_tables()
        return [paper_case(k, raw) for k in keys]
    if preset not in PRESETS:
        raise UsageError(
            f"preset: unknown preset {preset!r}; choose from paper, {', '.join(PRESETS)}"
        )
    if analyses:
        raise UsageError(f"analysis: only with the paper preset, not {preset!r}; drop it")
    p = PRESETS[preset]
    data = load_for(p["tasks"], p["inputs"])
    return [
        build_case(data, t, p["inputs"], p["split"], families=p["families"]) for t in p["tasks"]
    ]
