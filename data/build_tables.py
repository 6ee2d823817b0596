"""Build the project's curated benchmark tables from the upstream ObsScaling CSV files.

Run from the repository root::

    .venv/bin/python data/build_tables.py

It reads ``../shared/data/obscaling/*.csv`` (relative to the repository root; override with
``--src``), applies the documented corrections, checks the result and writes

* ``data/models.csv``      one row per model id (base and instruct),
* ``data/scores.csv``      one row per non-missing score cell (long format),
* ``data/benchmarks.csv``  one row per benchmark (chance floor, item count, metric range),

The tables themselves live in the package (``obscale_bayes/data/shipped/``, the only copy, so
that an installed package finds them); the ``data/*.csv`` names are links to them.
Every decision taken here is explained in ``data/README.md``.  The script is deterministic: a
rebuild from the same upstream files gives byte-identical tables.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SRC = REPO.parent / "shared" / "data" / "obscaling"
OUT_DIRS = (REPO / "obscale_bayes" / "data" / "shipped",)

BASE = "base_llm_benchmark_eval.csv"
SUB10B = "base_llm_benchmark_eval_sub_10b.csv"
EMERGENT = "base_llm_emergent_capability_eval.csv"
POST = "base_llm_post_training_eval.csv"
INSTRUCT = "instruct_llm_benchmark_eval.csv"
AGENT = "instruct_llm_agent_eval.csv"
LEADERBOARD_V2 = "base_llm_leaderboard_v2_eval.csv"
EPOCH_SRC = REPO.parent / "shared" / "data" / "epoch" / "model_versions.csv"

META_COLS = {
    "Model": "model",
    "Model Family": "family",
    "Model Size (B)": "params_b",
    "Pretraining Data Size (T)": "tokens_t",
    "FLOPs (1E21)": "flops_1e21",
}

# --------------------------------------------------------------------------------------------
# Benchmark metadata
# --------------------------------------------------------------------------------------------
# id: (display_name, upstream column name(s) joined by ';', floor, n_items, description)
STANDARD = {
    "mmlu": ("MMLU", "MMLU", 0.25, 14042, "MMLU, 57 subjects, 4-way multiple choice, accuracy"),
    "arc_c": (
        "ARC-C",
        "ARC-C",
        0.25,
        1172,
        "ARC-Challenge, multiple choice (mostly 4-way), acc_norm",
    ),
    "hellaswag": (
        "HellaSwag",
        "HellaSwag",
        0.25,
        10042,
        "HellaSwag, 4-way multiple choice, acc_norm",
    ),
    "winogrande": (
        "Winogrande",
        "Winograd;Winogrande",
        0.5,
        1267,
        "Winogrande, 2-way, accuracy (base table column 'Winograd')",
    ),
    "truthfulqa": (
        "TruthfulQA",
        "TruthfulQA",
        math.nan,
        817,
        "TruthfulQA MC2 (normalised probability on true answers); no fixed chance "
        "level, floor left blank so the model fits it",
    ),
    "gsm8k": ("GSM8K", "GSM8K", 0.0, 1319, "GSM8K, 5-shot exact match, free-form answer"),
    "xwinograd": (
        "XWinograd",
        "XWinograd",
        0.5,
        4449,
        "XWinograd, 2-way, 6 languages (en 2325, fr 83, jp 959, pt 263, ru 315, zh 504 "
        "items); the score is the unweighted mean of the 6 language accuracies, so its "
        "sampling noise equals that of about 1601 items",
    ),
    "humaneval": ("HumanEval", "HumanEval", 0.0, 164, "HumanEval, code, pass@1"),
}
# Open LLM Leaderboard v2 tasks, raw scores (chance not subtracted).  Item counts are those the
# scores are multiples of (checked in main: every score * n_items is a whole number).
# id: (display_name, upstream column(s), floor, n_items, description)
LEADERBOARD_V2_META = {
    "bbh": (
        "BBH",
        "leaderboard_bbh;BBH Raw",
        math.nan,
        5761,
        "BIG-Bench Hard, leaderboard subset: 24 subtasks, multiple choice with 2-7 options, "
        "acc_norm; chance 0.14-0.5 by subtask (about 0.3 overall, not one number), so the "
        "floor is left blank and fitted",
    ),
    "gpqa": (
        "GPQA",
        "leaderboard_gpqa;GPQA Raw",
        0.25,
        1192,
        "GPQA main + diamond + extended, 4-way multiple choice, acc_norm",
    ),
    "ifeval": (
        "IFEval",
        "leaderboard_ifeval;IFEval Raw",
        0.0,
        834,
        "IFEval, verifiable instructions, strict accuracy at the instruction level (834 "
        "instructions in 541 prompts: every score is a multiple of 1/834)",
    ),
    "math_lvl5": (
        "MATH Lvl 5",
        "leaderboard_math_hard;MATH Lvl 5 Raw",
        0.0,
        1324,
        "MATH level 5 (hardest level), free-form answer, exact match",
    ),
    "mmlu_pro": (
        "MMLU-Pro",
        "leaderboard_mmlu_pro;MMLU-PRO Raw",
        0.1,
        12032,
        "MMLU-Pro, 10-way multiple choice, accuracy",
    ),
    "musr": (
        "MuSR",
        "leaderboard_musr;MUSR Raw",
        math.nan,
        756,
        "MuSR, multistep soft reasoning, 3 subtasks with 2-5 options, acc_norm; chance about "
        "0.35 overall but not one number, so the floor is left blank and fitted",
    ),
}
INSTRUCT_ONLY = {
    "arena_elo": (
        "Arena Elo",
        "Arena-Elo",
        math.nan,
        math.nan,
        "Chatbot Arena Elo, min-max rescaled to [0, 1] upstream over these 27 models "
        "(0 and 1 are the lowest and highest rated models by construction); no chance "
        "level, floor left blank",
    ),
    "mt_bench": (
        "MT-Bench",
        "MTBench",
        0.1,
        math.nan,
        "MT-Bench (GPT-4 judge, 1-10 scale) divided by 10 upstream; floor 0.1 is the "
        "lowest possible rating; not a count of correct items",
    ),
}
EMERGENT_META = {
    "parsinlu_qa_2_acc": (
        "Persian QA (ParsiNLU), 2-shot",
        0.25,
        1050,
        "BIG-bench parsinlu_qa, 4-way multiple choice, accuracy",
    ),
    "word_unscrambling_2_exact_match": (
        "Word unscrambling, 2-shot",
        0.0,
        2000,
        "BIG-bench word_unscrambling, exact match",
    ),
    "ipa_transliterate_2_exact_match": (
        "IPA transliteration (exact match), 2-shot",
        0.0,
        1003,
        "BIG-bench ipa_transliterate, exact match",
    ),
    "ipa_transliterate_2_bleu": (
        "IPA transliteration (BLEU), 2-shot",
        0.0,
        math.nan,
        "BIG-bench ipa_transliterate, corpus BLEU on a 0-100 scale; "
        "not a proportion of items, so n_items is blank",
    ),
    "arithmetic_3ds_2_acc": (
        "3-digit subtraction, 2-shot",
        0.0,
        2000,
        "BIG-bench arithmetic, 3-digit subtraction, free-form accuracy",
    ),
    "arithmetic_3da_2_acc": (
        "3-digit addition, 2-shot",
        0.0,
        2000,
        "BIG-bench arithmetic, 3-digit addition, free-form accuracy",
    ),
    "arithmetic_2dm_2_acc": (
        "2-digit multiplication, 2-shot",
        0.0,
        2000,
        "BIG-bench arithmetic, 2-digit multiplication, free-form accuracy",
    ),
    "arithmetic_2da_2_acc": (
        "2-digit addition, 2-shot",
        0.0,
        2000,
        "BIG-bench arithmetic, 2-digit addition, free-form accuracy",
    ),
}
# BBH: chance level (k-way multiple choice -> 1/k; free-form -> 0).  These are exactly the
# levels upstream used for its ",norm" columns (norm = (acc - c) / (1 - c)); main() re-derives
# them from the data and stops if they disagree.
BBH_CHANCE = {
    "boolean_expressions": 1 / 2,
    "causal_judgement": 1 / 2,
    "date_understanding": 1 / 6,
    "disambiguation_qa": 1 / 3,
    "dyck_languages": 0.0,
    "formal_fallacies": 1 / 2,
    "geometric_shapes": 1 / 9,
    "hyperbaton": 1 / 2,
    "logical_deduction_five_objects": 1 / 5,
    "logical_deduction_seven_objects": 1 / 7,
    "logical_deduction_three_objects": 1 / 3,
    "movie_recommendation": 1 / 5,
    "multistep_arithmetic_two": 0.0,
    "navigate": 1 / 2,
    "object_counting": 0.0,
    "penguins_in_a_table": 1 / 5,
    "reasoning_about_colored_objects": 1 / 18,
    "ruin_names": 1 / 4,
    "salient_translation_error_detection": 1 / 6,
    "snarks": 1 / 2,
    "sports_understanding": 1 / 2,
    "temporal_sequences": 1 / 4,
    "tracking_shuffled_objects_five_objects": 1 / 5,
    "tracking_shuffled_objects_seven_objects": 1 / 7,
    "tracking_shuffled_objects_three_objects": 1 / 3,
    "web_of_lies": 1 / 2,
    "word_sorting": 0.0,
}
BBH_ITEMS = {t: 250 for t in BBH_CHANCE} | {
    "causal_judgement": 187,
    "penguins_in_a_table": 146,
    "snarks": 178,
}
GSM8K_POST_ITEMS = 500  # every post-training GSM8K score is a multiple of 1/500 (see README)

AGENT_ABENCH = {
    "OA": "overall score (weighted average of per-task scores normalised by the mean over "
    "models); not a percentage, range taken as 0-10 (max observed 4.01)",
    "Code_OS": "operating system",
    "Code_DB": "database",
    "Code_KG": "knowledge graph",
    "Game_DCG": "digital card game",
    "Game_LTP": "lateral thinking puzzles",
    "Game_HH": "house-holding (ALFWorld)",
    "Web_WS": "web shopping",
    "Web_WB": "web browsing",
}
AGENT_ABOARD_ENV = {
    "Embodied AI_ALF": "AlfWorld",
    "Embodied AI_SW": "ScienceWorld",
    "Embodied AI_BA": "BabyAI",
    "Game_JC": "Jericho",
    "Game_PL": "PDDL",
    "Web_WS": "WebShop",
    "Web_WA": "WebArena",
    "Tool_TQ": "Tool-Query",
    "Tool_TO": "Tool-Operation",
    "Avg": "average over the 9 environments",
}

POST_RE = re.compile(
    r"^(?P<task>gsm8k_cot_self_consistency|gsm8k_cot_zeroshot|gsm8k_cot|gsm8k|bbh_cot_fewshot|"
    r"bbh_fewshot)_(?P<sub>.*?)_?(?P<shots>\d+)_exact_match,(?P<filter>[^,]+)(?P<norm>,norm)?$"
)


def fail(msg: str) -> None:
    """Stop the build with a message (a failed consistency check)."""
    sys.exit(f"build_tables.py: {msg}")


def read(src: Path, name: str) -> pd.DataFrame:
    """Read an upstream CSV with the model id as a plain string."""
    return pd.read_csv(src / name, dtype={"Model": str, "Model Family": str})


def post_column_kept(col: str, values: pd.Series) -> tuple[bool, str]:
    """Decide whether a post-training column is a true accuracy (kept) or not (dropped)."""
    m = POST_RE.match(col)
    if m is None:
        fail(f"unrecognised post-training column {col!r}")
    if m["norm"]:
        return False, "norm"
    if m["task"] == "bbh_fewshot" and m["filter"] == "strict-match":
        return False, "bbh_fewshot_strict"
    v = values.dropna()
    if (v < 0).any() or (v > 1).any():
        fail(f"post-training column {col!r} holds values outside [0, 1]")
    return True, ""


def post_meta(col: str) -> tuple[str, float, float, str]:
    """Display name, floor, n_items and description of a kept post-training column."""
    m = POST_RE.match(col)
    assert m is not None
    task, sub, shots, flt = m["task"], m["sub"], m["shots"], m["filter"]
    if task.startswith("gsm8k"):
        kind = {
            "gsm8k": "plain",
            "gsm8k_cot": "chain-of-thought",
            "gsm8k_cot_zeroshot": "chain-of-thought",
            "gsm8k_cot_self_consistency": "chain-of-thought + self-consistency (5 samples)",
        }[task]
        name = f"GSM8K {shots}-shot {kind}, {flt}"
        desc = (
            f"GSM8K {kind}, {shots}-shot, exact match with the '{flt}' answer filter; "
            f"scored on {GSM8K_POST_ITEMS} test items"
        )
        return name, 0.0, float(GSM8K_POST_ITEMS), desc
    cot = task == "bbh_cot_fewshot"
    style = "chain-of-thought" if cot else "direct answer"
    if sub == "overall":
        floor = float(np.mean(list(BBH_CHANCE.values())))
        n = float(sum(BBH_ITEMS.values()))
        name = f"BBH overall {shots}-shot {style}, {flt}"
        desc = (
            f"BIG-Bench Hard, unweighted mean over the 27 tasks, {shots}-shot {style}, "
            f"generative exact match ('{flt}'); floor = mean of the task chance levels; "
            f"n_items = total items"
        )
        return name, floor, n, desc
    if sub not in BBH_CHANCE:
        fail(f"unknown BBH task {sub!r}")
    name = f"BBH {sub} {shots}-shot {style}, {flt}"
    c = BBH_CHANCE[sub]
    chance = "free-form answer" if c == 0 else f"{round(1 / c)}-way multiple choice"
    desc = (
        f"BIG-Bench Hard {sub} ({chance}), {shots}-shot {style}, generative exact match "
        f"('{flt}'); generative scoring can fall below the chance level"
    )
    return name, c, float(BBH_ITEMS[sub]), desc


def agent_meta(col: str) -> tuple[str, float, float, str]:
    """Display name, metric_min, metric_max and description of an agent column."""
    if col.startswith("ABench-"):
        key = col.removeprefix("ABench-")
        desc = f"AgentBench {AGENT_ABENCH[key]}"
        hi = 10.0 if key == "OA" else 100.0
        return f"AgentBench {key}", 0.0, hi, desc + ("" if key == "OA" else ", 0-100")
    key, metric = col.removeprefix("ABoard-").rsplit("_", 1)
    what = {"PR": "progress rate", "SR": "success rate"}[metric]
    return (
        f"AgentBoard {key} {metric}",
        0.0,
        100.0,
        f"AgentBoard {AGENT_ABOARD_ENV[key]}, {what} in percent (0-100)",
    )


def bench_row(bid, display, group, floor, n, lo, hi, unit, upstream, desc) -> dict:
    return dict(
        benchmark=bid,
        display_name=display,
        group=group,
        floor=floor,
        n_items=n,
        metric_min=lo,
        metric_max=hi,
        unit=unit,
        upstream_column=upstream,
        description=desc,
    )


def six_nd_report(models: pd.DataFrame) -> list[str]:
    """Rows whose FLOPs differ from 6 * params * tokens by more than 10%."""
    out = []
    ok = models[["params_b", "tokens_t", "flops_1e21"]].notna().all(axis=1)
    for _, r in models[ok].iterrows():
        c = 6.0 * r.params_b * r.tokens_t
        if abs(r.flops_1e21 / c - 1.0) > 0.10:
            out.append(f"{r.model}: FLOPs {r.flops_1e21} vs 6ND {c:.4g}")
    return out


def release_dates(models: pd.DataFrame, epoch: Path) -> pd.DataFrame:
    """``release_date`` and ``release_date_source`` of each model from Epoch AI's model versions.

    A model matches an Epoch row whose ``id`` equals the model's name after the organisation
    (case-insensitive); failing that, the same with a trailing ``-hf`` dropped (Hugging Face
    conversions of the same weights).  A model with no match gets the date of its family's
    matched members only when they all share one date (one release), marked ``inferred from
    <member>``; otherwise it stays blank.  No date is made up.
    """
    e = pd.read_csv(epoch, encoding="utf-8-sig", dtype=str, keep_default_na=False)
    e = e[e["Version release date"] != ""]
    by_id: dict[str, set[str]] = {}
    for i, d in zip(e["id"], e["Version release date"], strict=True):
        by_id.setdefault(i.strip().lower(), set()).add(d.strip())
    dates, srcs = [], []
    for m in models.model:
        name = m.split("/")[-1].lower()
        got = by_id.get(name) or (by_id.get(name[:-3]) if name.endswith("-hf") else None)
        if got and len(got) == 1:
            dates.append(next(iter(got)))
            srcs.append("epoch")
        else:
            dates.append("")
            srcs.append("")
    out = models[["model", "family", "params_b"]].assign(
        release_date=dates, release_date_source=srcs
    )
    for _, g in out.groupby("family", sort=False):
        known = g[g.release_date != ""]
        # one release: at least two matched members, one date; and the size lies inside theirs
        # (families staged their releases by size: GPT-2, Qwen-72B, BLOOM's small models)
        if len(known) < 2 or known.release_date.nunique() != 1:
            continue
        first = known.sort_values("model").iloc[0]
        lo, hi = known.params_b.min(), known.params_b.max()
        blank = g.index[(g.release_date == "") & g.params_b.between(lo, hi)]
        out.loc[blank, "release_date"] = first.release_date
        out.loc[blank, "release_date_source"] = f"inferred from {first.model}"
    for d in out.release_date[out.release_date != ""]:
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", d):
            fail(f"Epoch release date {d!r} is not YYYY-MM-DD")
    return out[["release_date", "release_date_source"]]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--src", type=Path, default=DEFAULT_SRC, help="upstream CSV folder")
    ap.add_argument(
        "--epoch", type=Path, default=EPOCH_SRC, help="Epoch AI model_versions.csv (dates)"
    )
    ap.add_argument(
        "--out",
        type=Path,
        help="write only to this folder (default: obscale_bayes/data/shipped/)",
    )
    args = ap.parse_args(argv)
    src: Path = args.src
    out_dirs = (args.out,) if args.out else OUT_DIRS

    base = read(src, BASE).rename(columns=META_COLS)
    sub = read(src, SUB10B).rename(columns=META_COLS)
    emer = read(src, EMERGENT).rename(columns={"Model": "model"})
    post = read(src, POST).rename(columns={"Model": "model"})
    inst = read(src, INSTRUCT).rename(columns=META_COLS)
    agent = read(src, AGENT).rename(columns={"Model": "model"})
    v2 = read(src, LEADERBOARD_V2).rename(columns={"Model": "model"})

    # ---- sub_10b must be an exact subset of the base table (it is not used otherwise) -------
    if not set(sub.model) <= set(base.model):
        fail("sub_10b has models not in the base table")
    b_idx = base.set_index("model").loc[sub.model]
    s_idx = sub.set_index("model")
    num = s_idx.select_dtypes("number").columns
    if not np.allclose(b_idx[num], s_idx[num], rtol=0, atol=1e-12, equal_nan=True):
        fail("sub_10b values differ from the base table")
    if not (b_idx["family"] == s_idx["family"]).all():
        fail("sub_10b families differ from the base table")

    # ---- duplicate ids -------------------------------------------------------------------
    for name, df in (
        (BASE, base),
        (EMERGENT, emer),
        (POST, post),
        (INSTRUCT, inst),
        (AGENT, agent),
        (LEADERBOARD_V2, v2),
    ):
        d = df.model[df.model.duplicated()]
        if len(d):
            fail(f"{name}: duplicate model ids {list(d)}")
    lower = pd.Series([m.lower() for m in list(base.model) + list(inst.model)])
    if lower.duplicated().any():
        fail(f"model ids that differ only in case: {list(lower[lower.duplicated()])}")
    for name, df in ((EMERGENT, emer), (POST, post), (LEADERBOARD_V2, v2)):
        if not set(df.model) <= set(base.model):
            fail(f"{name}: models missing from the base table")
    if set(agent.model) != set(inst.model):
        fail("agent and instruct tables list different models")

    # ---- corrections ---------------------------------------------------------------------
    base["flops_source"] = np.where(base.flops_1e21.notna(), "reported", "")
    corrections = {
        # tokens 627 T is 627 B tokens written in the T column; FLOPs followed from it
        "cerebras/btlm-3b-8k-base": {"tokens_t": (627.0, 0.627), "flops_1e21": (11286.0, 11.286)},
        # a 7B model listed with 13.0 B parameters; FLOPs = 6 * 7 * 1.0
        "openlm-research/open_llama_7b_v2": {"params_b": (13.0, 7.0), "flops_1e21": (78.0, 42.0)},
    }
    for model, fixes in corrections.items():
        i = base.index[base.model == model]
        if len(i) != 1:
            fail(f"correction target {model} not found once")
        for col, (old, new) in fixes.items():
            if not math.isclose(base.loc[i[0], col], old):
                fail(f"{model}.{col} is {base.loc[i[0], col]}, expected {old}; review the fix")
            base.loc[i[0], col] = new
        base.loc[i[0], "flops_source"] = "corrected"
    base_models = base[["model", "family", "params_b", "tokens_t", "flops_1e21", "flops_source"]]
    bad = six_nd_report(base_models)
    if bad:
        fail("FLOPs inconsistent with 6ND after corrections: " + "; ".join(bad))

    # ---- models table --------------------------------------------------------------------
    def sources(model: str, pairs) -> str:
        return ";".join(n for n, df in pairs if model in set(df.model))

    bm = base_models.copy()
    bm.insert(2, "kind", "base")
    bm["source_table"] = [
        sources(m, ((BASE, base), (EMERGENT, emer), (POST, post), (LEADERBOARD_V2, v2)))
        for m in bm.model
    ]
    im = inst[["model", "family", "params_b", "tokens_t", "flops_1e21"]].copy()
    im.insert(2, "kind", "instruct")
    im["flops_source"] = np.where(im.flops_1e21.notna(), "reported", "")
    im["source_table"] = [sources(m, ((INSTRUCT, inst), (AGENT, agent))) for m in im.model]
    if six_nd_report(im):
        fail("instruct FLOPs inconsistent with 6ND: " + "; ".join(six_nd_report(im)))
    models = pd.concat([bm, im], ignore_index=True)
    if models.model.duplicated().any():
        fail("a model id appears in both the base and the instruct tables")
    if models.family.isna().any():
        fail("models without a family")
    models = pd.concat([models, release_dates(models, args.epoch)], axis=1)

    # ---- benchmarks + scores -------------------------------------------------------------
    brows: list[dict] = []
    slist: list[pd.DataFrame] = []

    def add_scores(df: pd.DataFrame, colmap: dict[str, str], table: str) -> None:
        long = (
            df[["model", *colmap]]
            .rename(columns=colmap)
            .melt(id_vars="model", var_name="benchmark", value_name="value")
        )
        long = long[long.value.notna()].copy()
        long["source_table"] = table
        slist.append(long)

    for bid, (disp, up, floor, n, desc) in STANDARD.items():
        brows.append(bench_row(bid, disp, "standard", floor, n, 0.0, 1.0, "fraction", up, desc))
    for bid, (disp, up, floor, n, desc) in INSTRUCT_ONLY.items():
        brows.append(bench_row(bid, disp, "instruct", floor, n, 0.0, 1.0, "fraction", up, desc))
    base_map = {
        "MMLU": "mmlu",
        "ARC-C": "arc_c",
        "HellaSwag": "hellaswag",
        "Winograd": "winogrande",
        "TruthfulQA": "truthfulqa",
        "GSM8K": "gsm8k",
        "XWinograd": "xwinograd",
        "HumanEval": "humaneval",
    }
    add_scores(base, base_map, BASE)
    inst_map = {
        "Arena-Elo": "arena_elo",
        "MTBench": "mt_bench",
        "MMLU": "mmlu",
        "ARC-C": "arc_c",
        "HellaSwag": "hellaswag",
        "Winogrande": "winogrande",
        "TruthfulQA": "truthfulqa",
        "GSM8K": "gsm8k",
        "HumanEval": "humaneval",
    }
    if set(inst.columns) - set(inst_map) - set(META_COLS.values()):
        fail("unmapped instruct columns")
    add_scores(inst, inst_map, INSTRUCT)

    if set(emer.columns[1:]) != set(EMERGENT_META):
        fail("emergent columns changed upstream")
    for bid, (disp, floor, n, desc) in EMERGENT_META.items():
        bleu = bid.endswith("_bleu")
        brows.append(
            bench_row(
                bid,
                disp,
                "emergent",
                floor,
                n,
                0.0,
                100.0 if bleu else 1.0,
                "bleu" if bleu else "fraction",
                bid,
                desc,
            )
        )
    add_scores(emer, {c: c for c in EMERGENT_META}, EMERGENT)

    dropped: dict[str, list[str]] = {"norm": [], "bbh_fewshot_strict": []}
    kept = []
    for col in post.columns[1:]:
        ok, why = post_column_kept(col, post[col])
        if ok:
            kept.append(col)
        else:
            dropped[why].append(col)
    # verify the BBH chance levels against upstream's own normalisation
    for t, c in BBH_CHANCE.items():
        raw = post[f"bbh_fewshot_{t}_3_exact_match,flexible-extract"]
        nrm = post[f"bbh_fewshot_{t}_3_exact_match,flexible-extract,norm"]
        implied = ((raw - nrm) / (1.0 - nrm)).dropna()
        if not np.allclose(implied, c, atol=1e-6):
            fail(f"BBH {t}: chance {c} disagrees with upstream normalisation {implied.median()}")
    for col in kept:
        disp, floor, n, desc = post_meta(col)
        brows.append(
            bench_row(col, disp, "post_training", floor, n, 0.0, 1.0, "fraction", col, desc)
        )
    add_scores(post, {c: c for c in kept}, POST)

    v2_map = {up.split(";")[0]: bid for bid, (_, up, *_r) in LEADERBOARD_V2_META.items()}
    if set(v2.columns[1:]) != set(v2_map):
        fail("leaderboard v2 columns changed upstream")
    for up, bid in v2_map.items():
        disp, ups, floor, n, desc = LEADERBOARD_V2_META[bid]
        k = v2[up].dropna().to_numpy() * n
        if not np.allclose(k, np.round(k), rtol=0, atol=1e-6):
            fail(f"{up}: scores are not multiples of 1/{n}; review n_items")
        brows.append(
            bench_row(bid, disp, "leaderboard_v2", floor, n, 0.0, 1.0, "fraction", ups, desc)
        )
    add_scores(v2, v2_map, LEADERBOARD_V2)

    for col in agent.columns[1:]:
        disp, lo, hi, desc = agent_meta(col)
        brows.append(bench_row(col, disp, "agent", 0.0, math.nan, lo, hi, "score", col, desc))
    add_scores(agent, {c: c for c in agent.columns[1:]}, AGENT)

    benchmarks = pd.DataFrame(brows)
    benchmarks["n_items"] = benchmarks["n_items"].astype("Int64")  # whole numbers, blank = unknown
    scores = pd.concat(slist, ignore_index=True)
    if benchmarks.benchmark.duplicated().any():
        fail("duplicate benchmark ids")
    # canonical order: models in table order, benchmarks in benchmarks.csv order
    mpos = {m: i for i, m in enumerate(models.model)}
    bpos = {b: i for i, b in enumerate(benchmarks.benchmark)}
    scores = scores.assign(_m=scores.model.map(mpos), _b=scores.benchmark.map(bpos))
    if scores[["_m", "_b"]].isna().any().any():
        fail("scores reference unknown models or benchmarks")
    scores = scores.sort_values(["_m", "_b"]).drop(columns=["_m", "_b"]).reset_index(drop=True)

    # ---- checks --------------------------------------------------------------------------
    if scores.duplicated(["model", "benchmark"]).any():
        fail("duplicate (model, benchmark) pairs")
    rng = benchmarks.set_index("benchmark").loc[scores.benchmark, ["metric_min", "metric_max"]]
    out = (scores.value.to_numpy() < rng.metric_min.to_numpy()) | (
        scores.value.to_numpy() > rng.metric_max.to_numpy()
    )
    if out.any():
        fail(f"scores outside their metric range:\n{scores[out]}")
    if not np.isfinite(scores.value).all():
        fail("non-finite scores")
    unused = set(benchmarks.benchmark) - set(scores.benchmark)
    if unused:
        fail(f"benchmarks without scores: {unused}")

    for d in out_dirs:
        d.mkdir(parents=True, exist_ok=True)
        for name, df in (("models", models), ("scores", scores), ("benchmarks", benchmarks)):
            tmp = d / f".{name}.csv.tmp"
            df.to_csv(tmp, index=False, lineterminator="\n")
            tmp.replace(d / f"{name}.csv")

    # ---- summary -------------------------------------------------------------------------
    nb = models.kind.eq("base")
    print(
        f"models: {len(models)} ({nb.sum()} base, {(~nb).sum()} instruct); "
        f"families: {models[nb].family.nunique()} base, {models[~nb].family.nunique()} instruct"
    )
    print(
        f"base models with unknown FLOPs: {models[nb].flops_1e21.isna().sum()}; "
        f"corrected: {', '.join(corrections)}"
    )
    print(f"benchmarks: {len(benchmarks)} " + str(benchmarks.group.value_counts().to_dict()))
    print(f"scores: {len(scores)} " + str(scores.source_table.value_counts().to_dict()))
    print(
        f"post-training columns kept {len(kept)}, dropped ,norm {len(dropped['norm'])}, "
        f"dropped bbh_fewshot strict-match {len(dropped['bbh_fewshot_strict'])}"
    )
    rd = models[nb].release_date_source
    print(
        f"release dates of base models: {(rd == 'epoch').sum()} from Epoch AI, "
        f"{rd.str.startswith('inferred').sum()} inferred from a family member, "
        f"{(rd == '').sum()} blank"
    )
    print(f"sub_10b: {len(sub)} rows, exact subset of the base table (not used)")
    print("wrote " + ", ".join(str(d) for d in out_dirs))


if __name__ == "__main__":
    main()
