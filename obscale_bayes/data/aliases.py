"""Names people use: leaderboard column names of benchmarks and of compute columns.

A user's table is read with the headers of whatever exported it: the Open LLM Leaderboard v1
(``ARC``, ``HellaSwag``, ``MMLU``, ``TruthfulQA``, ``Winogrande``, ``GSM8K``), v2 (``IFEval``,
``BBH``, ``MATH Lvl 5``, ``GPQA``, ``MUSR``, ``MMLU-PRO`` and their ``... Raw`` twins), the
lm-evaluation-harness task names (``arc_challenge``, ``leaderboard_bbh``, ...) or the ObsScaling
tables.  :data:`BENCHMARK_ALIASES` maps those spellings to the package's benchmark ids (on top of
the ids, display names and ``upstream_column`` of ``benchmarks.csv``); :data:`COMPUTE_COLUMNS`
maps compute-column spellings to the canonical model columns, each with its unit, and
:func:`did_you_mean` suggests a close known name for an unknown header.

Units matter and are never guessed: the Open LLM Leaderboard shows v2 scores on a 0-100,
chance-normalised scale (its ``... Raw`` columns are raw fractions); the reader refuses percent
columns (divide by 100) and warns about chance-normalised ones (:mod:`obscale_bayes.data.scales`).
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence

from obscale_bayes.data.csvfile import CsvTable, header_key
from obscale_bayes.errors import UsageError
from obscale_bayes.progress import get_logger

log = get_logger(__name__)

__all__ = ["BENCHMARK_ALIASES", "COMPUTE_COLUMNS", "choose_columns", "did_you_mean", "unit_of"]

#: Header spelling (compared case- and whitespace-insensitively) -> benchmark id.
BENCHMARK_ALIASES: dict[str, str] = {
    # Open LLM Leaderboard v1 and lm-evaluation-harness names
    "arc": "arc_c",
    "arc_challenge": "arc_c",
    "arc-challenge": "arc_c",
    "arc challenge": "arc_c",
    "hellaswag": "hellaswag",
    "mmlu": "mmlu",
    "hendrycks_test": "mmlu",
    "truthfulqa": "truthfulqa",
    "truthfulqa_mc2": "truthfulqa",
    "truthfulqa mc2": "truthfulqa",
    "winogrande": "winogrande",
    "winograd": "winogrande",
    "gsm8k": "gsm8k",
    "gsm-8k": "gsm8k",
    "xwinograd": "xwinograd",
    "humaneval": "humaneval",
    "human_eval": "humaneval",
    "openai_humaneval": "humaneval",
    # Open LLM Leaderboard v2 (display columns, raw columns, harness task names)
    "ifeval": "ifeval",
    "ifeval raw": "ifeval",
    "leaderboard_ifeval": "ifeval",
    "bbh": "bbh",
    "bbh raw": "bbh",
    "leaderboard_bbh": "bbh",
    "big-bench hard": "bbh",
    "math lvl 5": "math_lvl5",
    "math lvl 5 raw": "math_lvl5",
    "math level 5": "math_lvl5",
    "math_hard": "math_lvl5",
    "leaderboard_math_hard": "math_lvl5",
    "gpqa": "gpqa",
    "gpqa raw": "gpqa",
    "leaderboard_gpqa": "gpqa",
    "musr": "musr",
    "musr raw": "musr",
    "leaderboard_musr": "musr",
    "mmlu-pro": "mmlu_pro",
    "mmlu pro": "mmlu_pro",
    "mmlu-pro raw": "mmlu_pro",
    "mmlu_pro": "mmlu_pro",
    "leaderboard_mmlu_pro": "mmlu_pro",
}

#: Header spelling -> (canonical model column, unit of the values, factor to the canonical unit).
#: ``flops`` is *absolute* training FLOPs (divided by 1e21 on reading); ``flops_1e21`` is not.
COMPUTE_COLUMNS: dict[str, tuple[str, str, float]] = {
    "params_b": ("params_b", "billions of parameters", 1.0),
    "model size (b)": ("params_b", "billions of parameters", 1.0),
    "size": ("params_b", "billions of parameters", 1.0),
    "#params (b)": ("params_b", "billions of parameters", 1.0),
    "params (b)": ("params_b", "billions of parameters", 1.0),
    "size (b)": ("params_b", "billions of parameters", 1.0),
    "tokens_t": ("tokens_t", "trillions of training tokens", 1.0),
    "pretraining data size (t)": ("tokens_t", "trillions of training tokens", 1.0),
    "tokens": ("tokens_t", "trillions of training tokens", 1.0),
    "tokens (t)": ("tokens_t", "trillions of training tokens", 1.0),
    "flops_1e21": ("flops_1e21", "units of 1e21 FLOPs", 1.0),
    "flops (1e21)": ("flops_1e21", "units of 1e21 FLOPs", 1.0),
    "flops": ("flops_1e21", "absolute training FLOPs", 1e-21),
    "training flops": ("flops_1e21", "absolute training FLOPs", 1e-21),
    "training compute (flop)": ("flops_1e21", "absolute training FLOPs", 1e-21),
}


def unit_of(header: str) -> tuple[str, str, float] | None:
    """(canonical column, unit, factor) of a compute header, or ``None``."""
    return COMPUTE_COLUMNS.get(header_key(header))


def did_you_mean(name: str, known: list[str]) -> str:
    """``" (did you mean 'mmlu_pro'?)"`` for the closest known name, or ``""``."""
    key = header_key(name)
    close = difflib.get_close_matches(key, [header_key(k) for k in known], n=1, cutoff=0.75)
    if not close:
        return ""
    orig = next(k for k in known if header_key(k) == close[0])
    return f" (did you mean '{orig}'?)"


def choose_columns(
    t: CsvTable,
    cols: list[str],
    look: dict[str, str],
    known: dict[str, dict],
    model_cols: set[str],
    columns: Sequence[str] | None,
    ignore_columns: Sequence[str] | None,
) -> list[tuple[int, str]]:
    """The wide table's benchmark columns (index, id): every unknown one named in one message."""
    for opt, names in (("columns", columns), ("ignore_columns", ignore_columns)):
        if isinstance(names, str):
            raise UsageError(f"{opt}: give a list of column names, not a string")
    heads = {header_key(h) for h in t.header}

    def resolve(names, opt):
        keys = {header_key(n) for n in names or ()}
        stray = [n for n in names or () if header_key(n) not in heads
                 and look.get(header_key(n)) not in {look.get(c) for c in cols}]  # fmt: skip
        if stray:
            raise UsageError(f"{opt}: {stray} name no column of {t.name}; columns: {t.header}")
        return keys | {look[k] for k in keys if k in look}

    use = resolve(columns, "columns") if columns else None
    skip = resolve(ignore_columns, "ignore_columns")
    bcols: list[tuple[int, str]] = []
    unknown, left_out = [], []
    for i, c in enumerate(cols):
        if c in model_cols:
            continue
        bid = look.get(c)
        chosen = (use is None or c in use or bid in use) and c not in skip and bid not in skip
        if not chosen:
            left_out.append(t.header[i])
            continue
        if bid is None or bid not in known:
            near = did_you_mean(t.header[i], sorted(known) + list(look))
            unknown.append(f"column '{t.header[i]}'{near}")
            continue
        if bid in [b for _, b in bcols]:
            raise t.error(1, t.header[i], f"a second column for benchmark '{bid}'; keep one")
        bcols.append((i, bid))
    if unknown:
        raise t.error(
            1,
            None,
            f"unknown benchmark {', '.join(unknown)}; describe "
            "them in a metadata file given as extra_benchmarks (columns benchmark, floor, "
            "metric_min, metric_max, n_items) or leave them out with ignore_columns",
        )
    if left_out:
        log.info("%s: columns left out: %s", t.name, ", ".join(left_out))
    if not bcols:
        raise t.error(1, None, "no benchmark column left; choose some with columns=")
    return bcols
