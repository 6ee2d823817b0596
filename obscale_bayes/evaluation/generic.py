"""User-chosen backtests: any task, any capability inputs, any split (and the BBH preset).

``obscale-bayes backtest --task TASK --inputs A,B,... --split SPEC`` builds one
:class:`~obscale_bayes.backtest.BacktestCase` per task and scores every method on it with
:func:`~obscale_bayes.backtest.run_case`, exactly as the paper preset does.

Tasks are benchmark ids of the table (``benchmarks.csv`` or the user's ``--data`` file) or the
short aliases of :func:`task_aliases`: the paper analyses' keys (``gsm8k_plain``, ``gsm8k_cot``,
``gsm8k_cot_sc5``, ``word_unscramble``, ...), and for BBH ``bbh_overall_direct``,
``bbh_overall_cot`` and ``bbh_<subtask>_direct`` / ``bbh_<subtask>_cot`` (flexible-extract).

Split syntax (:func:`parse_split`)::

    cutoff:84[:unknown=test|drop]   train = FLOPs <= 84e21 (unknown FLOPs go to test by default)
    top:0.1                         test = the top int(0.1 n) models by the target
    family:NAME[:k=1]               leave one family out, keeping its k smallest models in train
    random:0.2[:seed=0]             a random 20% of the models in test

The target is scored on the benchmark's metric range rescaled to [0, 1]
(``(y - metric_min) / (metric_max - metric_min)``); baselines use a sigmoid with a fitted floor.
"""

from __future__ import annotations

import difflib
import re
import sys
import time
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd

from obscale_bayes.data.tables import STANDARD_BENCHMARKS, BenchmarkData, load_benchmark_metadata
from obscale_bayes.errors import UsageError
from obscale_bayes.evaluation import splits
from obscale_bayes.evaluation.backtest import METHODS, BacktestCase, run_case
from obscale_bayes.evaluation.presets import ANALYSES, DEFAULT_FAMILIES
from obscale_bayes.spec.spec import ModelSpec

__all__ = [
    "PRESETS",
    "SplitSpec",
    "generic_case",
    "parse_inputs",
    "parse_methods",
    "parse_split",
    "resolve_task",
    "run_generic",
    "run_preset",
    "task_aliases",
]

SPLIT_FORMS = (
    "cutoff:FLOPS_1E21[:unknown=test|drop], top:FRAC, family:NAME[:k=K], random:FRAC[:seed=S]"
)
_BBH = re.compile(r"^bbh_(cot_)?fewshot_(.+)_3_exact_match,flexible-extract$")


@lru_cache(maxsize=1)
def task_aliases() -> dict[str, str]:
    """Short task names -> benchmark ids of the shipped tables."""
    out = {a.key: a.target for a in ANALYSES}
    out["gsm8k_cot_sc5"] = "gsm8k_cot_self_consistency_8_exact_match,maj@5-flexible-extract"
    for b in load_benchmark_metadata()["benchmark"]:
        m = _BBH.match(b)
        if m:
            out[f"bbh_{m.group(2)}_{'cot' if m.group(1) else 'direct'}"] = b
    return out


def _bbh_subtasks() -> list[str]:
    subs = {k[4:].rsplit("_", 1)[0] for k in task_aliases() if k.startswith("bbh_")}
    return sorted(subs - {"overall"})


def resolve_task(name: str, known: list[str] | None = None) -> str:
    """The benchmark id of a task name (an alias or an id of ``known``; default: shipped ids)."""
    known = list(load_benchmark_metadata()["benchmark"]) if known is None else list(known)
    name = str(name).strip()
    if name in known:
        return name
    alias = task_aliases().get(name)
    if alias is not None and alias in known:
        return alias
    close = difflib.get_close_matches(name, list(task_aliases()) + known, n=3, cutoff=0.6)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    paper = ", ".join(a.key for a in ANALYSES)
    raise UsageError(
        f"--task: unknown task {name!r}{hint}; give a benchmark id of the table or an alias: "
        f"{paper}, bbh_overall_direct, bbh_overall_cot, bbh_<subtask>_direct|cot with subtask "
        f"in {', '.join(_bbh_subtasks())}"
    )


def parse_inputs(text: str | None, known: list[str] | None = None) -> tuple[str, ...]:
    """Comma-separated capability inputs (default: the 8 standard benchmarks); task aliases
    stand for ids that hold commas."""
    if text is None:
        return tuple(STANDARD_BENCHMARKS)
    known = list(load_benchmark_metadata()["benchmark"]) if known is None else list(known)
    items = [t.strip() for t in str(text).split(",")]
    # ids holding commas (post-training columns) enter by their alias, e.g. gsm8k_plain
    items = [task_aliases().get(t, t) if t not in known else t for t in items]
    if not items or any(not t for t in items):
        raise UsageError(
            f"--inputs: {text!r} has an empty name; give ids like mmlu,arc_c,hellaswag"
        )
    bad = [t for t in items if t not in known]
    if bad:
        choices = [b for b in STANDARD_BENCHMARKS if b in known] or known[:10]
        raise UsageError(
            f"--inputs: unknown benchmark {bad[0]!r}; choose from {', '.join(choices)} "
            "(or any benchmark id of the table)"
        )
    if len(set(items)) != len(items):
        raise UsageError(f"--inputs: {text!r} names a benchmark twice; give each once")
    return tuple(items)


def parse_methods(text: str | None) -> tuple[str, ...]:
    """Comma-separated methods from :data:`~obscale_bayes.backtest.METHODS` (default: all)."""
    if text is None:
        return METHODS
    items = [t.strip() for t in str(text).split(",") if t.strip()]
    bad = [t for t in items if t not in METHODS]
    if bad or not items:
        raise UsageError(
            f"--methods: unknown method {bad[0] if bad else text!r}; choose from "
            f"{', '.join(METHODS)} (comma-separated)"
        )
    return tuple(dict.fromkeys(items))


@dataclass(frozen=True)
class SplitSpec:
    """A parsed ``--split``: ``kind`` in cutoff/top/family/random and its settings."""

    kind: str
    value: float = float("nan")
    family: str = ""
    k: int = 1
    seed: int = 0
    unknown: str = "test"

    @property
    def label(self) -> str:
        """Short text for tables (``flops<=84e21``, ``top10%``, ``family=X,k=1``, ...)."""
        if self.kind == "cutoff":
            tail = "" if self.unknown == "test" else ",unknown dropped"
            return f"flops<={self.value:g}e21{tail}"
        if self.kind == "top":
            return f"top{self.value * 100:g}%"
        if self.kind == "family":
            return f"family={self.family},k={self.k}"
        return f"random{self.value * 100:g}%,seed={self.seed}"

    def apply(self, models: pd.DataFrame, target: pd.Series) -> splits.Split:
        """The train/test masks over ``models`` (``target``: the transformed target)."""
        if self.kind == "cutoff":
            return splits.flops_cutoff(models, self.value, unknown=self.unknown)
        if self.kind == "top":
            return splits.top_fraction(target, self.value)
        if self.kind == "family":
            return splits.leave_family_out(models, self.family, self.k)
        return splits.random_split(models, self.value, self.seed)


def _bad_split(text: str) -> UsageError:
    return UsageError(f"--split: cannot read {text!r}; expected one of {SPLIT_FORMS}")


def _number(text: str, whole: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise _bad_split(whole) from None
    if not np.isfinite(v):
        raise _bad_split(whole)
    return v


def _options(parts: list[str], allowed: dict[str, type], whole: str) -> dict:
    out = {}
    for p in parts:
        key, eq, val = p.partition("=")
        if not eq or key not in allowed or key in out:
            raise _bad_split(whole)
        if allowed[key] is int:
            try:
                out[key] = int(val)
            except ValueError:
                raise _bad_split(whole) from None
        else:
            out[key] = val
    return out


def parse_split(text: str) -> SplitSpec:
    """Parse a ``--split`` value (see the module docstring); one-line errors."""
    t = str(text).strip()
    kind, _, rest = t.partition(":")
    if kind not in ("cutoff", "top", "family", "random") or not rest:
        raise _bad_split(t)
    if kind == "family":
        # family names may hold ':' -- only a trailing ':k=N' is an option
        m = re.match(r"^(.*?)(?::k=([^:]*))?$", rest)
        name, k = m.group(1).strip(), m.group(2)
        if not name:
            raise _bad_split(t)
        try:
            kv = 1 if k is None else int(k)
        except ValueError:
            raise _bad_split(t) from None
        if kv < 0:
            raise UsageError(f"--split: k must be a non-negative integer in {t!r}")
        return SplitSpec("family", family=name, k=kv)
    head, *opts = rest.split(":")
    v = _number(head, t)
    if kind == "cutoff":
        o = _options(opts, {"unknown": str}, t)
        unknown = o.get("unknown", "test")
        if v <= 0 or unknown not in ("test", "drop"):
            raise UsageError(
                f"--split: {t!r}: the cutoff (units of 1e21 FLOPs) must be positive and "
                "unknown= must be test or drop"
            )
        return SplitSpec("cutoff", value=v, unknown=unknown)
    if not 0.0 < v < 1.0:
        raise UsageError(f"--split: {t!r}: the fraction must lie strictly between 0 and 1")
    if kind == "top":
        _options(opts, {}, t)
        return SplitSpec("top", value=v)
    o = _options(opts, {"seed": int}, t)
    return SplitSpec("random", value=v, seed=o.get("seed", 0))


def _table(data: BenchmarkData, inputs: tuple[str, ...], target: str, families) -> pd.DataFrame:
    meta = ["family", "params_b", "tokens_t", "flops_1e21"]
    w = data.wide()
    models = data.models.set_index("model")[meta].join(w[list(inputs)], how="left")
    models["raw_target"] = w[target]
    if families is not None:
        models = models[models["family"].isin(families)]
    models = models[models["raw_target"].notna() & models[list(inputs)].notna().any(axis=1)]
    models.index.name = "model"
    return models


def generic_case(
    task: str,
    inputs: tuple[str, ...],
    split: SplitSpec,
    data: BenchmarkData,
    families: tuple[str, ...] | None = None,
    name: str | None = None,
) -> BacktestCase:
    """One :class:`~obscale_bayes.backtest.BacktestCase` for a task of ``data``.

    Models without the target, or without any input score, are dropped (as in the paper);
    ``families`` restricts the model set.
    """
    target = resolve_task(task, data.benchmark_ids)
    if target in inputs:
        raise UsageError(f"--inputs: the task {target!r} is also an input; drop it from --inputs")
    models = _table(data, inputs, target, families)
    if len(models) < 3:
        raise UsageError(f"--task {task}: only {len(models)} model(s) have this task; need >= 3")
    meta = data.benchmarks.set_index("benchmark").loc[target]
    lo, hi = float(meta["metric_min"]), float(meta["metric_max"])
    y01 = (models["raw_target"] - lo) / (hi - lo)
    if split.kind == "family" and split.family not in set(models["family"].astype(str)):
        fams = sorted(models["family"].dropna().astype(str).unique())
        raise UsageError(
            f"--split: family {split.family!r} has no model with this task; choose from "
            f"{', '.join(fams)}"
        )
    s = split.apply(models, y01)
    return BacktestCase(
        name=name or task,
        models=models,
        inputs=tuple(inputs),
        target=target,
        train=s.train,
        test=s.test,
        split=split.label,
        link="floored_sigmoid",
        chance=lo,
        max_value=hi,
        benchmarks=data.benchmarks,
    )


def load_for(tasks: list[str], inputs: tuple[str, ...], path: str | None = None) -> BenchmarkData:
    """The table a generic backtest runs on: the user's CSV, or the shipped tables restricted to
    the inputs and tasks (instruct models when every task is an agent/instruct benchmark)."""
    from obscale_bayes.data.tables import load_shipped

    if path is not None:
        from obscale_bayes.data.reader import read_table

        return read_table(path)
    ids = [resolve_task(t) for t in tasks]
    meta = load_benchmark_metadata()
    groups = meta.set_index("benchmark").loc[ids, "group"]
    kind = "instruct" if groups.isin(["agent", "instruct"]).all() else "base"
    return load_shipped(benchmarks=list(dict.fromkeys(list(inputs) + ids)), kind=kind)


def run_generic(
    tasks: list[str],
    inputs: tuple[str, ...],
    split: SplitSpec,
    data: BenchmarkData,
    *,
    methods: tuple[str, ...] = METHODS,
    families: tuple[str, ...] | None = None,
    spec: ModelSpec | None = None,
    draws: int = 1000,
    tune: int = 1000,
    chains: int = 4,
    seed: int = 0,
    progress: bool = True,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Score ``methods`` on one case per task; (summary, cells) as
    :func:`~obscale_bayes.backtest.run_case`, stacked over tasks."""
    cases = [generic_case(t, inputs, split, data, families) for t in tasks]  # validate all first
    summaries, cells = [], []
    for i, case in enumerate(cases, 1):
        t0 = time.perf_counter()
        s, c = run_case(case, spec, methods, draws=draws, tune=tune, chains=chains, seed=seed)
        summaries.append(s)
        cells.append(c)
        if progress:
            print(f"[{i}/{len(cases)}] {case.name}: {int(case.train.sum())} train / "
                  f"{int(case.test.sum())} test ({time.perf_counter() - t0:.0f} s)",
                  file=sys.stderr)  # fmt: skip
    return pd.concat(summaries, ignore_index=True), pd.concat(cells, ignore_index=True)


#: Generic presets: tasks, inputs, split and model set.
PRESETS: dict[str, dict] = {
    "bbh": {
        "tasks": ["bbh_overall_direct", "bbh_overall_cot"],
        "inputs": tuple(STANDARD_BENCHMARKS),
        "split": "cutoff:84",
        "families": DEFAULT_FAMILIES,
    },
}


def run_preset(name: str, **kwargs) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Run a generic preset of :data:`PRESETS` (keyword arguments go to :func:`run_generic`)."""
    if name not in PRESETS:
        raise UsageError(
            f"--preset: unknown preset {name!r}; choose from paper, {', '.join(PRESETS)}"
        )
    p = PRESETS[name]
    data = load_for(p["tasks"], p["inputs"])
    return run_generic(p["tasks"], p["inputs"], parse_split(p["split"]), data,
                       families=p["families"], **kwargs)  # fmt: skip
