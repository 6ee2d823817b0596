"""The spec with anchors for a given table: the rule the command line and the notebooks share.

A shipped spec's anchors (MMLU, HellaSwag, HumanEval for the default) are kept when the table
has scores on all of them; otherwise :func:`obscale_bayes.data.anchors.choose_anchors` picks
anchors from the benchmarks present (rule in docs/data.md), and the choice is logged.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from obscale_bayes.data.anchors import choose_anchors
from obscale_bayes.data.tables import BenchmarkData
from obscale_bayes.errors import UsageError
from obscale_bayes.progress import get_logger
from obscale_bayes.spec.spec import ModelSpec, models_dir

__all__ = ["spec_for_table"]

log = get_logger(__name__)


def spec_for_table(
    spec: ModelSpec,
    data: BenchmarkData,
    anchors: Sequence[str] | None = None,
    *,
    hint: str = "anchors=",
) -> ModelSpec:
    """The spec with anchors for this table.

    ``anchors`` (one benchmark id per capability) when given; else the spec's when the table has
    scores on all of them; else, for a shipped spec, those of
    :func:`~obscale_bayes.data.anchors.choose_anchors` (logged).  A user's spec file keeps its
    anchors (a missing one is its error).  Non-centred factors follow their slot.  ``hint`` names
    the option in the messages (the CLI's ``--anchors``).
    """
    old = spec.anchors
    if anchors is not None:
        new = [str(a).strip() for a in anchors]
        if len(new) != spec.n_factors or not all(new):
            raise UsageError(
                f"anchors: give {spec.n_factors} benchmark ids separated by commas "
                f"(n_factors = {spec.n_factors}), got {','.join(new)!r}"
            )
        stray = [a for a in new if a not in set(data.scores["benchmark"])]
        if stray:
            raise UsageError(f"anchors: {stray} have no scores in the table; choose among "
                             f"{data.benchmark_ids}")  # fmt: skip
    else:
        scored = set(data.scores["benchmark"])
        shipped = Path(spec.source).resolve().parent == models_dir().resolve()
        if all(a in scored for a in old) or not shipped:
            return spec
        new, _ = choose_anchors(data, spec.n_factors, old)
        log.info(
            "anchors chosen for this table: %s (rule of docs/data.md; the spec's %s lacks %s); "
            "fix them with %s",
            ", ".join(new),
            spec.name,
            ", ".join(a for a in old if a not in scored),
            hint,
        )
    ncf = [new[i] for i, a in enumerate(old) if a in spec.structure["noncentered_factors"]]
    return spec.with_overrides(anchors=new, noncentered_factors=ncf)
