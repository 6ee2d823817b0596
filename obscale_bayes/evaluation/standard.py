r"""The standard-benchmark backtests (``backtest --preset standard``): three protocols, five methods.

On the shipped base table (128 base models x the 8 standard benchmarks), every method is scored on
the same cells (model x benchmark), on the score scale ``(y - metric_min) / (metric_max -
metric_min)`` (a fraction in [0, 1] for the 8 accuracies):

``compute_cutoff``
    train = the models with *known* FLOPs :math:`\le 84\cdot10^{21}` (inclusive, as the paper),
    test = the models with known FLOPs above it; every standard benchmark of every test model is
    forecast from family + FLOPs only.  Models with unknown FLOPs are in neither set.
``family_k1``
    the families with >= 3 models of known FLOPs are dealt into 5 folds (a seeded permutation of
    the sorted family names, dealt round-robin); in each fold the held-out families keep their
    smallest model (by FLOPs) in training and their larger models are forecast from family +
    FLOPs; every other model with known FLOPs trains.  Unknown-FLOPs models are in neither set.
    One Bayesian fit per fold.
``fill_half``
    the ``compute_cutoff`` test models with MMLU, ARC-C, HellaSwag, Winogrande given and the other
    four blank, and the reverse (two sub-protocols, each benchmark blank in exactly one); the
    training set and the Bayesian fit are ``compute_cutoff``'s.  A cell is scored when its truth
    is observed and the model has at least one given score.

Methods: ``bayes`` (the package's default model: :func:`~obscale_bayes.forecast.compute.forecast_compute`
for the compute protocols, :func:`~obscale_bayes.forecast.conditional.forecast_from_scores`, which
also uses the family and FLOPs, for ``fill_half``), ``family_flops`` and ``flops_only`` (compute
protocols; per benchmark, floored sigmoid, floor fitted in ``[0, chance floor +``
:data:`FLOOR_MARGIN` ``]`` -- the rule was fixed before any held-out number was seen),
``least_squares`` and ``paper_pca3`` (``fill_half``; :mod:`.standard_methods`).

Each training set is one :class:`StandardCase`, run by the one run loop,
:func:`~obscale_bayes.evaluation.backtest.run_backtests` (the case supplies its fit data, the
worker's post-processing and its scored cell tables); :func:`run_standard` runs the protocols and
pools the cells per protocol and method, and per benchmark (:func:`pool_standard`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np
import pandas as pd

from obscale_bayes.data.tables import BenchmarkData, load_shipped
from obscale_bayes.errors import UsageError
from obscale_bayes.evaluation import metrics
from obscale_bayes.evaluation.backtest import RECORD_COLUMNS, run_backtests
from obscale_bayes.evaluation.splits import flops_cutoff
from obscale_bayes.evaluation.standard_methods import (
    bayes_post,
    compute_baseline,
    fill_baseline,
)
from obscale_bayes.spec.spec import ModelSpec, load_spec
from obscale_bayes.validation import parse_choices

__all__ = [
    "CUTOFF_1E21",
    "FIRST_HALF",
    "FLOOR_MARGIN",
    "PROTOCOLS",
    "STANDARD_BENCHMARKS",
    "STANDARD_METHODS",
    "STANDARD_RECORD_COLUMNS",
    "StandardCase",
    "Task",
    "family_folds",
    "parse_protocols",
    "pool_standard",
    "run_standard",
    "standard_cases",
]

STANDARD_BENCHMARKS = ("mmlu", "arc_c", "hellaswag", "winogrande", "truthfulqa", "gsm8k",
                       "xwinograd", "humaneval")  # fmt: skip
FIRST_HALF = STANDARD_BENCHMARKS[:4]
"""Given in the first ``fill_half`` sub-protocol, blank in the second."""
PROTOCOLS = ("compute_cutoff", "family_k1", "fill_half")
STANDARD_METHODS = ("bayes", "family_flops", "flops_only", "least_squares", "paper_pca3")
COMPUTE_METHODS = ("bayes", "family_flops", "flops_only")
FILL_METHODS = ("bayes", "least_squares", "paper_pca3")
CUTOFF_1E21 = 84.0
N_FOLDS = 5
MIN_FAMILY_MODELS = 3
FLOOR_MARGIN = 0.05
"""The FLOPs baselines' floor is fitted in ``[0, chance floor + FLOOR_MARGIN]`` (fixed a priori)."""
STANDARD_RECORD_COLUMNS = RECORD_COLUMNS + ["protocol", "benchmark", "n", "max_rhat", "min_ess_bulk",
                                            "divergences"]  # fmt: skip
"""Fields of the preset's records: the paper preset's, the protocol and benchmark (``all`` =
pooled), the number of cells pooled and the Bayesian fits' diagnostics."""


@dataclass(frozen=True)
class Task:
    """One scored set of cells of a case.

    Attributes
    ----------
    protocol : str
        One of :data:`PROTOCOLS`.
    label : str
        ``protocol`` for the compute protocols, ``fill_half:given=A,B,C,D`` for a sub-protocol.
    test : tuple of str
        Test model ids.
    given : tuple of str
        Benchmarks whose scores the methods see (empty: compute only).
    blank : tuple of str
        Benchmarks forecast and scored.
    """

    protocol: str
    label: str
    test: tuple[str, ...]
    given: tuple[str, ...]
    blank: tuple[str, ...]

    @property
    def methods(self) -> tuple[str, ...]:
        """The methods that apply to this task."""
        return FILL_METHODS if self.given else COMPUTE_METHODS


@dataclass(frozen=True)
class StandardCase:
    """One training set and the tasks scored on it; run by
    :func:`~obscale_bayes.evaluation.backtest.run_backtests` like any case.

    Attributes
    ----------
    name : str
        Unique label (``compute_cutoff``, ``family_k1/fold2``).
    table : BenchmarkData
        The whole table (training and test models).
    train, test : pandas.Series of bool
        Masks over ``table.models["model"]`` (test = union of the tasks' test models).
    tasks : tuple of Task
        What is scored.
    split : str
        Label of the split.
    floor_margin : float
        Upper bound of the FLOPs baselines' floor above each benchmark's chance floor.
    """

    name: str
    table: BenchmarkData
    train: pd.Series
    test: pd.Series
    tasks: tuple[Task, ...]
    split: str
    floor_margin: float = FLOOR_MARGIN
    methods: tuple[str, ...] = STANDARD_METHODS

    @property
    def train_ids(self) -> list[str]:
        """Training model ids, in table order."""
        return list(self.train.index[self.train])

    def fit_data(self) -> BenchmarkData:
        """The Bayesian model's training table: the training models' scores."""
        return self.table.subset(models=self.train_ids)

    def cells(self, task: Task) -> pd.DataFrame:
        """Scored cells of ``task``: ``model, benchmark, y`` (score scale), observed truth only,
        and for a fill-in task only models with at least one given score."""
        w = _score_scale(self.table).loc[list(task.test)]
        if task.given:
            w = w[w[list(task.given)].notna().any(axis=1)]
        long = w[list(task.blank)].stack().dropna().rename("y").reset_index()
        long.columns = ["model", "benchmark", "y"]
        order = {b: i for i, b in enumerate(task.blank)}
        return long.sort_values(["model", "benchmark"], key=lambda s: s.map(order) if
                                s.name == "benchmark" else s, kind="stable",
                                ignore_index=True)  # fmt: skip

    def post(self, seed: int):
        """Worker-side post-processing of the fit: the Bayesian draws of every task's cells."""
        return partial(bayes_post, case=self, seed=seed)

    def score(self, method: str, value: dict | None = None) -> list[tuple[str, pd.DataFrame]]:
        """Per-cell score tables ``[(task label, table)]`` of ``method`` (``value``: the worker's
        :func:`~.standard_methods.bayes_post` result for ``bayes``); tasks it does not apply to
        are left out.  Tables have the metrics' columns plus ``model, benchmark, protocol, task``.
        """
        out = []
        for task in self.tasks:
            if method not in task.methods:
                continue
            cells = self.cells(task)
            truth = cells["y"].to_numpy()
            if method == "bayes":
                table = metrics.score_draws(truth, value[task.label])
            elif task.given:
                table = metrics.score_points(truth, fill_baseline(self, task, cells, method))
            else:
                table = metrics.score_points(truth, compute_baseline(self, cells, method))
            table = table.assign(model=cells["model"].to_numpy(),
                                 benchmark=cells["benchmark"].to_numpy(),
                                 protocol=task.protocol, task=task.label)  # fmt: skip
            out.append((task.label, table))
        return out


def _score_scale(table: BenchmarkData) -> pd.DataFrame:
    """The wide table on the score scale ``(y - metric_min) / (metric_max - metric_min)``."""
    b = table.benchmarks.set_index("benchmark")
    w = table.wide()
    return (w - b["metric_min"]) / (b["metric_max"] - b["metric_min"])


def _flops(table: BenchmarkData) -> pd.Series:
    return pd.to_numeric(table.models.set_index("model")["flops_1e21"], errors="coerce")


def family_folds(
    models: pd.DataFrame, n_folds: int = N_FOLDS, seed: int = 0, min_models: int = MIN_FAMILY_MODELS
) -> list[list[str]]:
    """Families with ``>= min_models`` models of known FLOPs, dealt into ``n_folds`` folds.

    The sorted family names are permuted with ``numpy.random.default_rng(seed)`` and dealt
    round-robin, so the folds partition the eligible families and differ in size by at most one.
    """
    m = models.set_index("model") if "model" in models.columns else models
    known = m[pd.to_numeric(m["flops_1e21"], errors="coerce").notna() & m["family"].notna()]
    counts = known.groupby(known["family"].astype(str)).size()
    fams = sorted(counts.index[counts >= min_models])
    if len(fams) < n_folds:
        raise UsageError(
            f"n_folds: only {len(fams)} families have >= {min_models} models with known FLOPs; "
            f"need at least n_folds={n_folds}"
        )
    perm = np.random.default_rng(seed).permutation(len(fams))
    return [sorted(fams[i] for i in perm[k::n_folds]) for k in range(n_folds)]


def _compute_task(protocol: str, test: Sequence[str], benchmarks: Sequence[str]) -> Task:
    return Task(protocol, protocol, tuple(test), (), tuple(benchmarks))


def _cutoff_masks(table: BenchmarkData, cutoff_1e21: float) -> tuple[pd.Series, pd.Series]:
    m = table.models.set_index("model")
    s = flops_cutoff(m, cutoff_1e21, unknown="drop")
    return s.train, s.test


def standard_cases(
    table: BenchmarkData | None = None,
    protocols: str | Sequence[str] | None = None,
    *,
    cutoff_1e21: float = CUTOFF_1E21,
    n_folds: int = N_FOLDS,
    fold_seed: int = 0,
    floor_margin: float = FLOOR_MARGIN,
) -> list[StandardCase]:
    """The cases of the standard preset (one per Bayesian fit).

    ``compute_cutoff`` and ``fill_half`` share the case ``compute_cutoff`` (one fit);
    ``family_k1`` gives one case per fold (``family_k1/fold0`` ...).

    Parameters
    ----------
    table : BenchmarkData, optional
        Scores (default: the shipped base table, 8 standard benchmarks).
    protocols : str or sequence of str, optional
        From :data:`PROTOCOLS` (comma-separated text or a sequence; None = all).
    cutoff_1e21 : float
        FLOPs cutoff in units of 1e21 (inclusive on the training side).
    n_folds, fold_seed : int
        Family folds of ``family_k1`` (:func:`family_folds`).
    floor_margin : float
        :data:`FLOOR_MARGIN`.
    """
    protocols = parse_protocols(protocols)
    table = load_shipped() if table is None else table
    bench = [b for b in STANDARD_BENCHMARKS if b in table.benchmark_ids] or table.benchmark_ids
    cases = []
    if {"compute_cutoff", "fill_half"} & set(protocols):
        train, test = _cutoff_masks(table, cutoff_1e21)
        test_ids = list(test.index[test])
        tasks = []
        if "compute_cutoff" in protocols:
            tasks.append(_compute_task("compute_cutoff", test_ids, bench))
        if "fill_half" in protocols:
            first = [b for b in bench if b in FIRST_HALF]
            second = [b for b in bench if b not in FIRST_HALF]
            if not first or not second:
                raise UsageError("protocols: fill_half needs benchmarks on both sides of the split")
            for given, blank in ((first, second), (second, first)):
                tasks.append(Task("fill_half", f"fill_half:given={','.join(given)}",
                                  tuple(test_ids), tuple(given), tuple(blank)))  # fmt: skip
        cases.append(StandardCase("compute_cutoff", table, train, test, tuple(tasks),
                                  f"flops<={cutoff_1e21:g}e21 (known FLOPs)", floor_margin))  # fmt: skip
    if "family_k1" in protocols:
        flops = _flops(table)
        fam = table.models.set_index("model")["family"]
        known = flops.notna()
        for k, held in enumerate(family_folds(table.models, n_folds, fold_seed)):
            out = fam.isin(held) & known
            smallest = flops[out].groupby(fam[out]).idxmin()  # first of ties, table order
            test = out & ~flops.index.isin(list(smallest))
            train = known & ~test
            task = _compute_task("family_k1", list(test.index[test]), bench)
            cases.append(StandardCase(f"family_k1/fold{k}", table, train, test, (task,),
                                      f"families {','.join(held)} (k=1)", floor_margin))  # fmt: skip
    return cases


def parse_protocols(protocols: str | Sequence[str] | None) -> tuple[str, ...]:
    """Protocols from :data:`PROTOCOLS`, comma-separated text or a sequence (None = all)."""
    return parse_choices(protocols, PROTOCOLS, "protocols", "protocol")


def run_standard(
    protocols: str | Sequence[str] | None = None,
    spec: ModelSpec | str | None = None,
    methods: str | Sequence[str] | None = None,
    *,
    table: BenchmarkData | None = None,
    draws: int = 1000,
    tune: int = 1000,
    chains: int = 4,
    seed: int = 0,
    executor=None,
    max_workers: int | None = None,
    progress: bool = True,
    store=None,
    inference: str = "nuts",
    iterations: int | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Run the standard preset and pool it.

    Parameters
    ----------
    protocols : str or sequence of str, optional
        From :data:`PROTOCOLS` (None = all).
    spec : ModelSpec or str, optional
        The Bayesian model (None = the package's default model).
    methods : str or sequence of str, optional
        From :data:`STANDARD_METHODS` (None = all).
    table : BenchmarkData, optional
        Scores (default: the shipped base table).
    draws, tune, chains, seed, executor, max_workers, progress, store
        As :func:`~obscale_bayes.evaluation.backtest.run_backtests` (``store``: the job store
        folder that finished fits are kept in and resumed from).
    inference : {"nuts", "advi"}
        Inference of the Bayesian fits (``"advi"``: the approximate mode, for comparing it with
        NUTS on the same cells); ``iterations`` its optimisation steps (None: the default).

    Returns
    -------
    (records, cells) : pandas.DataFrame
        :func:`pool_standard`'s rows (columns :data:`STANDARD_RECORD_COLUMNS`), and one row per
        (case, task, method, cell).
    """
    cases = standard_cases(table, protocols)
    spec = spec if isinstance(spec, ModelSpec) else load_spec(spec)
    methods = STANDARD_METHODS if methods is None else methods
    summary, cells = run_backtests(cases, spec, methods, draws=draws, tune=tune, chains=chains,
                                   seed=seed, executor=executor, max_workers=max_workers,
                                   progress=progress, store=store,
                                   inference=inference, iterations=iterations)  # fmt: skip
    return pool_standard(summary, cells), cells


def pool_standard(summary: pd.DataFrame, cells: pd.DataFrame) -> pd.DataFrame:
    """Pool the per-cell scores per (protocol, method) and per (protocol, method, benchmark).

    ``summary`` are :func:`run_backtests`' per-case rows (for the Bayesian fits' ``max_rhat``
    -- the largest over the protocol's fits --, ``min_ess_bulk`` -- the smallest -- and
    ``divergences`` -- their sum); ``n_train`` of
    a protocol with several fits is their mean, rounded.  Pooled rows have ``benchmark = "all"``
    and ``task = "all"``; per-benchmark rows name the task (sub-protocol) the benchmark is blank in.
    """
    rows = []
    for (protocol, method), g in cells.groupby(["protocol", "method"], sort=False):
        s = summary[(summary["method"] == method) & summary["task"].isin(set(g["task"]))]
        s = s[s["analysis"].isin(set(g["analysis"]))]
        diag = {"max_rhat": np.nan, "min_ess_bulk": np.nan, "divergences": np.nan}
        if method == "bayes" and len(s):
            per_fit = s.drop_duplicates("analysis")
            diag = {"max_rhat": float(per_fit["max_rhat"].max()),
                    "min_ess_bulk": float(per_fit["min_ess_bulk"].min()),
                    "divergences": int(per_fit["divergences"].sum())}  # fmt: skip
        n_train = int(round(s.drop_duplicates("analysis")["n_train"].mean()))
        splits = list(dict.fromkeys(s["split"]))
        split = splits[0] if len(splits) == 1 else f"{len(splits)} family folds, k=1"
        if protocol == "fill_half":
            split += "; half the benchmarks given, half blank, and the reverse"
        groups = [("all", "all", g)]
        groups += [(str(gg["task"].iloc[0]), b, gg) for b, gg in g.groupby("benchmark", sort=False)]
        for task, bench, part in groups:
            pooled = metrics.summarize(part).iloc[0].to_dict()
            pooled["n"] = int(pooled["n"])
            rows.append({"analysis": protocol, "task": task, "method": method, "split": split,
                         "n_train": n_train, "n_test": int(part["model"].nunique()), **pooled,
                         "protocol": protocol, "benchmark": bench, **diag})  # fmt: skip
    return pd.DataFrame(rows)[STANDARD_RECORD_COLUMNS]
