"""The nine analyses of the paper's reference table, and the BBH preset, as data.

Each :class:`PaperAnalysis` records the exact settings behind one row of the brief's reference
table (inputs, target column and transform, split, link, model set, expected train/test sizes and
the paper's test MSEs); :func:`paper_table` gives the wide model table it is built from.
:func:`~obscale_bayes.evaluation.cases.paper_case` turns one into a backtest case (through the one
case builder, :func:`~obscale_bayes.evaluation.cases.build_case`).  :data:`PRESETS` holds the
generic presets (BBH).

The raw tables are read by :func:`read_raw_tables` -- the one place that knows the upstream CSV
layout (it is meant to be swapped for the project's own ``obscale_bayes.data.tables`` loader).  It maps
upstream column names to the standard benchmark ids ``mmlu, arc_c, hellaswag, winogrande,
truthfulqa, gsm8k, xwinograd, humaneval`` and applies one correction: the FLOPs of
``cerebras/btlm-3b-8k-base`` are 1000x too high upstream (11286 -> 11.286, units of 1e21).
(BTLM is not in the paper's 21 default families, so the correction does not change these nine
analyses; it matters for any cutoff split over the full table.)

Sizes: all match the brief except GSM8K plain 5-shot, 45/28 rather than 47/28: falcon-7b and
falcon-rw-1b (both <= 84e21, i.e. train) have no ``gsm8k_5_exact_match,flexible-extract`` score,
in the shared table and upstream alike, and the paper's code drops models with a missing target
before splitting (47/28 holds for the CoT and CoT + SC@5 targets).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from obscale_bayes.data.tables import STANDARD_BENCHMARKS
from obscale_bayes.errors import DataError, UsageError
from obscale_bayes.evaluation.splits import SplitSpec

__all__ = [
    "ANALYSES",
    "DEFAULT_FAMILIES",
    "PRESETS",
    "PaperAnalysis",
    "get_analysis",
    "paper_table",
    "read_raw_tables",
]

DEFAULT_FAMILIES: tuple[str, ...] = (
    "Llama", "Llama-2", "Llama-3", "Qwen", "Qwen1.5", "Mistral", "Mixtral", "Yi", "Gemma",
    "Falcon", "Phi", "Pythia", "BLOOM", "GPT-Neo/J", "OPT", "MPT", "XGLM", "CodeLlama",
    "StarCoder", "StarCoder2", "DeepSeek-Coder",
)  # fmt: skip
"""The paper's default 21 model families (77 models in the shared base table)."""

STANDARD = ("mmlu", "arc_c", "hellaswag", "winogrande", "truthfulqa", "gsm8k", "xwinograd",
            "humaneval")  # fmt: skip
NO_GSM8K = tuple(b for b in STANDARD if b != "gsm8k")
NO_XWINOGRAD = tuple(b for b in STANDARD if b != "xwinograd")

_RENAME = {
    "Model": "model", "Model Family": "family", "Model Size (B)": "params_b",
    "Pretraining Data Size (T)": "tokens_t", "FLOPs (1E21)": "flops_1e21", "MMLU": "mmlu",
    "ARC-C": "arc_c", "HellaSwag": "hellaswag", "Winograd": "winogrande",
    "Winogrande": "winogrande", "TruthfulQA": "truthfulqa", "GSM8K": "gsm8k",
    "XWinograd": "xwinograd", "HumanEval": "humaneval",
}  # fmt: skip
_FLOPS_FIXES = {"cerebras/btlm-3b-8k-base": 11.286}
_FILES = {
    "base": "base_llm_benchmark_eval.csv",
    "emergent": "base_llm_emergent_capability_eval.csv",
    "post_training": "base_llm_post_training_eval.csv",
    "instruct": "instruct_llm_benchmark_eval.csv",
    "agent": "instruct_llm_agent_eval.csv",
}
DEFAULT_RAW_DIR = Path(__file__).resolve().parents[3] / "shared" / "data" / "obscaling"
"""``../shared/data/obscaling`` relative to the repository root."""


def read_raw_tables(root: str | Path | None = None) -> dict[str, pd.DataFrame]:
    """Wide tables ``{"base", "emergent", "post_training", "instruct", "agent"}``.

    Built from the project's curated tables (``obscale_bayes.data.tables``, corrections applied) by
    default; ``root`` reads the upstream CSVs of that folder instead (used to check that the
    curated tables reproduce the upstream analyses).  Every table is indexed by model id;
    standard benchmarks and metadata use standard names (``family, params_b, tokens_t,
    flops_1e21`` and the benchmark ids); downstream columns keep their upstream names.
    """
    if root is None:
        return _curated_tables()
    root = Path(root)
    out = {}
    for key, name in _FILES.items():
        path = root / name
        if not path.exists():
            raise DataError(f"raw table not found: {path}")
        df = pd.read_csv(path).rename(columns=_RENAME).set_index("model")
        if "flops_1e21" in df:
            for model, flops in _FLOPS_FIXES.items():
                if model in df.index:
                    df.loc[model, "flops_1e21"] = flops
        out[key] = df
    return out


def _curated_tables() -> dict[str, pd.DataFrame]:
    from obscale_bayes.data.tables import load_shipped

    meta_cols = ["family", "params_b", "tokens_t", "flops_1e21"]
    out = {}
    for key, groups, kind in (
        ("base", ["standard"], "base"),
        ("emergent", ["emergent"], "base"),
        ("post_training", ["post_training"], "base"),
        ("instruct", ["standard", "instruct"], "instruct"),
        ("agent", ["agent"], "instruct"),
    ):
        d = load_shipped(groups=groups, kind=kind)
        wide = d.wide()
        if key in ("base", "instruct"):
            models = d.models.set_index("model")[meta_cols]
            wide = models.join(wide, how="left")
        else:
            wide = wide.dropna(how="all")
        wide.index.name = "model"
        out[key] = wide
    return out


@dataclass(frozen=True)
class PaperAnalysis:
    """Settings of one reference analysis.

    Attributes
    ----------
    key, name : identifier and human-readable name.
    inputs : input benchmark ids.
    table : table holding the target (``emergent``, ``post_training`` or ``agent``).
    target : target column.
    chance, max_value : target transform ``(y - chance) / (max_value - chance)``.
    model_set : ``"default_with_flops"``, ``"default"`` or ``"instruct"``.
    split : ``"flops_cutoff"`` (with ``cutoff_1e21``) or ``"top_fraction"`` (with ``frac``).
    link : ``"sigmoid"`` or ``"floored_sigmoid"``.
    n_train, n_test : expected sizes (asserted).
    ref_pc3, ref_flops : the paper's test MSE (PC-3 and FLOPs predictors; None = not given).
    """

    key: str
    name: str
    inputs: tuple[str, ...]
    table: str
    target: str
    model_set: str
    split: str
    link: str
    n_train: int
    n_test: int
    ref_pc3: float
    ref_flops: float | None = None
    chance: float = 0.0
    max_value: float = 1.0
    cutoff_1e21: float | None = None
    frac: float | None = None

    @property
    def split_spec(self) -> SplitSpec:
        """The split as a :class:`~obscale_bayes.evaluation.splits.SplitSpec` (unknown FLOPs
        go to test)."""
        if self.split == "flops_cutoff":
            return SplitSpec("cutoff", value=float(self.cutoff_1e21))
        return SplitSpec("top", value=float(self.frac))

    @property
    def families(self) -> tuple[str, ...] | None:
        """The model families kept: the paper's 21 defaults, or every instruct model (None)."""
        return None if self.model_set == "instruct" else DEFAULT_FAMILIES


def _emergent(key, name, target, inputs, cutoff, n_tr, n_te, pc3, fl, chance=0.0):
    return PaperAnalysis(key, name, inputs, "emergent", target, "default_with_flops",
                         "flops_cutoff", "sigmoid", n_tr, n_te, pc3, fl, chance=chance,
                         cutoff_1e21=cutoff)  # fmt: skip


def _gsm(key, name, target, pc3, fl, n_train=47):
    return PaperAnalysis(key, name, NO_GSM8K, "post_training", target, "default",
                         "flops_cutoff", "floored_sigmoid", n_train, 28, pc3, fl,
                         cutoff_1e21=84.0)  # fmt: skip


ANALYSES: tuple[PaperAnalysis, ...] = (
    _emergent("word_unscramble", "emergent: word unscramble",
              "word_unscrambling_2_exact_match", STANDARD, 84.0, 44, 19, 2.6e-3, 1.3e-2),
    _emergent("persian_qa", "emergent: Persian QA", "parsinlu_qa_2_acc", STANDARD, 84.0,
              40, 18, 2.3e-3, 9.5e-3, chance=0.25),
    _emergent("arith_3ds", "emergent: 3-digit subtraction", "arithmetic_3ds_2_acc", NO_GSM8K,
              22.0, 30, 33, 1.7e-2, 7.5e-2),
    _emergent("arith_2dm", "emergent: 2-digit multiplication", "arithmetic_2dm_2_acc",
              NO_GSM8K, 22.0, 30, 33, 1.2e-2, 1.1e-1),
    # 45, not 47: falcon-7b and falcon-rw-1b (train side) have no plain 5-shot score, in the
    # shared table and upstream alike; models with a missing target are dropped before splitting.
    _gsm("gsm8k_plain", "GSM8K, plain 5-shot", "gsm8k_5_exact_match,flexible-extract",
         6.9e-4, 3.7e-3, n_train=45),
    _gsm("gsm8k_cot", "GSM8K, chain-of-thought", "gsm8k_cot_8_exact_match,flexible-extract",
         4.7e-3, 3.7e-2),
    _gsm("gsm8k_cot_sc5", "GSM8K, CoT + self-consistency@5",
         "gsm8k_cot_self_consistency_8_exact_match,maj@5-flexible-extract", 5.6e-3, 3.8e-2),
    PaperAnalysis("agentbench", "agents: AgentBench", NO_XWINOGRAD, "agent", "ABench-OA",
                  "instruct", "top_fraction", "floored_sigmoid", 20, 2, 2.2e-4,
                  max_value=10.0, frac=0.1),
    PaperAnalysis("agentboard", "agents: AgentBoard", NO_XWINOGRAD, "agent", "ABoard-Avg_SR",
                  "instruct", "top_fraction", "floored_sigmoid", 10, 1, 3.6e-3,
                  max_value=100.0, frac=0.1),
)  # fmt: skip


def get_analysis(key: str) -> PaperAnalysis:
    """The analysis with this key."""
    for a in ANALYSES:
        if a.key == key:
            return a
    raise UsageError(
        f"analysis: unknown analysis {key!r}; choose from {', '.join(a.key for a in ANALYSES)}"
    )


def paper_table(analysis: PaperAnalysis, raw: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """The wide model table of one analysis, for :func:`~obscale_bayes.evaluation.cases.build_case`.

    Instruct models for the ``instruct`` model set, else the base models; ``default_with_flops``
    keeps only families whose every model has FLOPs (decided on the whole base table, before
    models without the target are dropped, as in the paper's code).  The target column comes
    from the analysis' table.
    """
    if analysis.model_set == "instruct":
        table = raw["instruct"].copy()
    else:
        table = raw["base"]
        if analysis.model_set == "default_with_flops":
            complete = table.groupby("family")["flops_1e21"].transform(lambda s: s.notna().all())
            table = table[complete.fillna(False).astype(bool)]
        table = table.copy()
    table[analysis.target] = raw[analysis.table][analysis.target]
    return table


#: Presets of generic backtests (beyond the paper's nine): tasks, inputs, split and model set.
PRESETS: dict[str, dict] = {
    "bbh": {
        "tasks": ["bbh_overall_direct", "bbh_overall_cot"],
        "inputs": tuple(STANDARD_BENCHMARKS),
        "split": "cutoff:84",
        "families": DEFAULT_FAMILIES,
    },
}
