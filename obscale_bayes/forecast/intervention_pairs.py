"""Post-training interventions as pairs of benchmarks, and their effects measured in a table.

An :class:`Intervention` is a *treated* and a *control* variant of one task (e.g. GSM8K with
8-shot chain-of-thought vs plain 5-shot), both benchmark ids of a fit.  :data:`INTERVENTIONS`
holds the pairs of the shipped tables, :func:`get_intervention` resolves a name or pair against
a fit's benchmarks, and :func:`observed_effect` lists the measured ``treated - control`` of
every model with both variants scored.  The forecast effects are in
:mod:`obscale_bayes.forecast.interventions`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from obscale_bayes.errors import UsageError

__all__ = ["INTERVENTIONS", "Intervention", "get_intervention", "observed_effect"]


@dataclass(frozen=True)
class Intervention:
    """A treated and a control variant of one task (benchmark ids of the fit)."""

    name: str
    treated: str
    control: str
    label: str = ""

    @property
    def benchmarks(self) -> list[str]:
        """``[control, treated]`` (the ids a fit must contain)."""
        return [self.control, self.treated]


_GSM_PLAIN = "gsm8k_5_exact_match,flexible-extract"
_GSM_COT = "gsm8k_cot_8_exact_match,flexible-extract"
_GSM_SC = "gsm8k_cot_self_consistency_8_exact_match,maj@5-flexible-extract"
_BBH_DIRECT = "bbh_fewshot_overall_3_exact_match,flexible-extract"
_BBH_COT = "bbh_cot_fewshot_overall_3_exact_match,flexible-extract"

#: The post-training interventions of the shipped tables (the paper's GSM8K columns, and BBH).
INTERVENTIONS: dict[str, Intervention] = {
    "gsm8k_cot": Intervention(
        "gsm8k_cot", _GSM_COT, _GSM_PLAIN, "GSM8K: 8-shot CoT minus plain 5-shot"
    ),
    "gsm8k_self_consistency": Intervention(
        "gsm8k_self_consistency", _GSM_SC, _GSM_COT, "GSM8K: CoT + SC maj@5 minus CoT"
    ),
    "gsm8k_cot_sc_vs_plain": Intervention(
        "gsm8k_cot_sc_vs_plain", _GSM_SC, _GSM_PLAIN, "GSM8K: CoT + SC maj@5 minus plain 5-shot"
    ),
    "bbh_cot": Intervention(
        "bbh_cot", _BBH_COT, _BBH_DIRECT, "BBH overall: 3-shot CoT minus 3-shot direct"
    ),
}


def get_intervention(
    intervention: str | Intervention | tuple[str, str], benchmark_ids: Sequence[str]
) -> Intervention:
    """Resolve a name from :data:`INTERVENTIONS`, an :class:`Intervention` or a
    ``(treated, control)`` pair, and check that the fit has both benchmarks."""
    if isinstance(intervention, str):
        if intervention not in INTERVENTIONS:
            raise UsageError(
                f"intervention: unknown name {intervention!r}; choose from "
                f"{', '.join(INTERVENTIONS)} or give a (treated, control) pair of benchmark ids"
            )
        iv = INTERVENTIONS[intervention]
    elif isinstance(intervention, Intervention):
        iv = intervention
    else:
        try:
            treated, control = intervention
        except (TypeError, ValueError):
            raise UsageError(
                "intervention: give a name, an Intervention or a (treated, control) pair"
            ) from None
        iv = Intervention(f"{treated} - {control}", str(treated), str(control))
    if iv.treated == iv.control:
        raise UsageError(f"intervention {iv.name!r}: treated and control are the same benchmark")
    missing = [b for b in iv.benchmarks if b not in benchmark_ids]
    if missing:
        raise UsageError(
            f"intervention {iv.name!r}: the fit has no benchmark {missing[0]!r}; fit on data "
            "that include both variants (e.g. load_shipped(benchmarks=[...]))"
        )
    return iv


def observed_effect(
    data, intervention: str | Intervention | tuple[str, str], anchor: str | None = "mmlu"
) -> pd.DataFrame:
    """Measured effects: models with both variants scored, ``treated - control``.

    Parameters
    ----------
    data : BenchmarkData
        A table holding both variants.
    anchor : str, optional
        Benchmark whose observed score becomes the ``capability`` column (the x of
        :func:`effect_vs_capability` in the default spec); skipped when absent.

    Returns
    -------
    pandas.DataFrame
        ``model, family, flops_1e21, flops, control, treated, effect`` (+ ``capability``), one
        row per model with both variants.
    """
    iv = get_intervention(intervention, data.benchmark_ids)
    w = data.wide()
    both = w[[iv.control, iv.treated]].dropna()
    m = data.models.set_index("model").loc[both.index, ["family", "flops_1e21"]]
    out = m.assign(flops=m["flops_1e21"] * 1e21, control=both[iv.control],
                   treated=both[iv.treated])  # fmt: skip
    out["effect"] = out["treated"] - out["control"]
    if anchor is not None and anchor in w.columns:
        out["capability"] = w.loc[both.index, anchor]
    return out.reset_index()
