"""Backtest targets and inputs by name: task aliases, input lists, and the table they live in.

Tasks are benchmark ids of the table (``benchmarks.csv`` or the user's table) or the short
aliases of :func:`task_aliases`: the paper analyses' keys (``gsm8k_plain``, ``gsm8k_cot``,
``gsm8k_cot_sc5``, ``word_unscramble``, ...), and for BBH ``bbh_overall_direct``,
``bbh_overall_cot`` and ``bbh_<subtask>_direct`` / ``bbh_<subtask>_cot`` (flexible-extract).
Errors are one line and name the parameter (``task``, ``inputs``).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from functools import lru_cache

from obscale_bayes.data.tables import STANDARD_BENCHMARKS, BenchmarkData, load_benchmark_metadata
from obscale_bayes.errors import UsageError
from obscale_bayes.evaluation.presets import ANALYSES

__all__ = ["load_for", "parse_inputs", "resolve_task", "task_aliases"]

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


def _known(known: Sequence[str] | None) -> list[str]:
    return list(load_benchmark_metadata()["benchmark"]) if known is None else list(known)


def resolve_task(name: str, known: Sequence[str] | None = None) -> str:
    """The benchmark id of a task name (an alias or an id of ``known``; default: shipped ids)."""
    known = _known(known)
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
        f"task: unknown task {name!r}{hint}; give a benchmark id of the table or an alias: "
        f"{paper}, bbh_overall_direct, bbh_overall_cot, bbh_<subtask>_direct|cot with subtask "
        f"in {', '.join(_bbh_subtasks())}"
    )


def parse_inputs(
    inputs: str | Sequence[str] | None, known: Sequence[str] | None = None
) -> tuple[str, ...]:
    """Capability inputs: comma-separated text or a sequence of ids (None = the 8 standard
    benchmarks); in text, task aliases stand for ids that hold commas (e.g. ``gsm8k_plain``)."""
    if inputs is None:
        return tuple(STANDARD_BENCHMARKS)
    known = _known(known)
    if isinstance(inputs, str):
        items = [t.strip() for t in inputs.split(",")]
        items = [task_aliases().get(t, t) if t not in known else t for t in items]
    else:
        items = [str(t).strip() for t in inputs]
    if not items or any(not t for t in items):
        raise UsageError(
            f"inputs: {inputs!r} has an empty name; give ids like mmlu,arc_c,hellaswag"
        )
    bad = [t for t in items if t not in known]
    if bad:
        choices = [b for b in STANDARD_BENCHMARKS if b in known] or known[:10]
        raise UsageError(
            f"inputs: unknown benchmark {bad[0]!r}; choose from {', '.join(choices)} "
            "(or any benchmark id of the table)"
        )
    if len(set(items)) != len(items):
        raise UsageError(f"inputs: {inputs!r} names a benchmark twice; give each once")
    return tuple(items)


def load_for(
    tasks: Sequence[str], inputs: Sequence[str], path: str | None = None, **read_kwargs
) -> BenchmarkData:
    """The table a backtest of ``tasks`` runs on: the user's CSV at ``path`` (read with
    ``read_kwargs`` of :func:`~obscale_bayes.data.reader.read_table`, e.g. ``extra_benchmarks``),
    or the shipped tables restricted to the inputs and tasks (instruct models when every task
    is an agent/instruct benchmark)."""
    from obscale_bayes.data.tables import load_shipped

    if path is not None:
        from obscale_bayes.data.reader import read_table

        return read_table(path, **read_kwargs)
    ids = [resolve_task(t) for t in tasks]
    meta = load_benchmark_metadata()
    groups = meta.set_index("benchmark").loc[ids, "group"]
    kind = "instruct" if groups.isin(["agent", "instruct"]).all() else "base"
    return load_shipped(benchmarks=list(dict.fromkeys(list(inputs) + ids)), kind=kind)
