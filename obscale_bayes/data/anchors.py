r"""Anchors chosen for a table that lacks a spec's anchor benchmarks.

Each capability of the model is pinned to one *anchor* benchmark (its loading row is a unit
vector, its intercept 0).  The shipped specs anchor on MMLU, HellaSwag and HumanEval; a table
without them (e.g. the Open LLM Leaderboard v2 tasks) gets anchors chosen from the benchmarks
it has, by this rule:

1. the spec's anchors that have scores are kept, in their slots;
2. candidates for the empty slots are benchmarks with a fixed chance floor ``g`` (a fitted
   floor makes the anchor's location move with the floor) and scores for at least half of the
   models (all scored benchmarks when none qualifies);
3. on each candidate's own anchor scale,
   :math:`z_{mj} = \mathrm{logit}(\mathrm{clip}((y_{mj} - g_j)/(1 - g_j), 0.01, 0.99))`, its
   *spread* is the standard deviation of :math:`z` over models times the share of models
   scored times the benchmark's *reliability*
   :math:`r_j = \max(0, 1 - \overline{u(1-u)}/n_j \,/\, \mathrm{var}(u))`, :math:`u` the scores
   as fractions of the metric range and :math:`n_j` its item count (:math:`r_j = 1` when the
   item count is unknown): the share
   of the spread across models that is not item-sampling noise.  A benchmark on which the
   models differ, measured on many of them, not near its chance floor only by noise (the clip
   above stretches noise around the floor: GPQA's base-model scores sit at chance +- noise);
4. slots are filled greedily: the candidate with the largest spread x (1 - the largest
   absolute correlation of its :math:`z` with an anchor already chosen, over the models scored
   on both), so that anchors measure different things; ties go to the benchmark listed first.

The rule uses the training table only (no forecast target), is deterministic, and its choice is
stored in the fit through the spec it returns (``spec.anchors``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from obscale_bayes.data.tables import BenchmarkData
from obscale_bayes.errors import DataError

__all__ = ["choose_anchors"]


def _scales(
    data: BenchmarkData,
) -> tuple[dict[str, np.ndarray], dict[str, bool], dict[str, float]]:
    """Per benchmark: the anchor scale ``z`` of every model (NaN where unscored), whether its
    floor is fixed, and its reliability (1 - mean binomial sampling variance / variance of the
    scores as fractions of the metric range, clipped to [0, 1]; 1 where the item count is
    unknown)."""
    w = data.wide()
    meta = data.benchmarks.set_index("benchmark")
    z, fixed, rel = {}, {}, {}
    for b in w.columns:
        lo, hi, g, n = (float(meta.loc[b, c]) for c in ("metric_min", "metric_max", "floor",
                                                         "n_items"))  # fmt: skip
        fixed[b] = bool(np.isfinite(g))
        g01 = (g - lo) / (hi - lo) if fixed[b] else 0.0
        frac = (w[b].to_numpy(float) - lo) / (hi - lo)
        u = np.clip((frac - g01) / (1.0 - g01), 0.01, 0.99)
        z[b] = np.log(u / (1.0 - u))
        f = frac[np.isfinite(frac)]
        var = float(np.var(f)) if f.size > 1 else 0.0
        if not np.isfinite(n) or n <= 0:
            rel[b] = 1.0
        elif var <= 0:
            rel[b] = 0.0
        else:
            rel[b] = float(np.clip(1.0 - np.mean(f * (1.0 - f)) / n / var, 0.0, 1.0))
    return z, fixed, rel


def choose_anchors(
    data: BenchmarkData, k: int, keep: Sequence[str] = ()
) -> tuple[list[str], list[str]]:
    """Anchors for ``data`` by the rule of this module.

    Parameters
    ----------
    data : BenchmarkData
        The training table.
    k : int
        Number of capabilities (anchors).
    keep : sequence of str
        The spec's anchors, by slot; those with scores are kept in their slots.

    Returns
    -------
    (anchors, chosen)
        The ``k`` anchors by slot, and which of them the rule chose (not kept).
    """
    z, fixed, rel = _scales(data)
    scored = [b for b in data.benchmark_ids if b in z and np.isfinite(z[b]).any()]
    if len(scored) <= k:
        raise DataError(
            f"{data.source}: {len(scored)} benchmark(s) with scores cannot anchor {k} "
            "capabilities; lower n_factors"
        )
    slots: list[str | None] = [a if a in scored else None for a in list(keep)[:k]]
    slots += [None] * (k - len(slots))
    n_models = len(data.model_ids)
    share = {b: np.isfinite(z[b]).sum() / n_models for b in scored}
    cands = [b for b in scored if fixed[b] and share[b] >= 0.5 and b not in slots]
    if len(cands) < slots.count(None):
        cands = [b for b in scored if b not in slots]
    spread = {b: float(np.nanstd(z[b])) * share[b] * rel[b] for b in cands}
    chosen = []
    for i, s in enumerate(slots):
        if s is not None:
            continue
        best, best_v = None, -np.inf
        for b in cands:
            if b in slots:
                continue
            corr = 0.0
            for a in (x for x in slots if x is not None):
                ok = np.isfinite(z[a]) & np.isfinite(z[b])
                if ok.sum() >= 3 and np.std(z[a][ok]) > 0 and np.std(z[b][ok]) > 0:
                    corr = max(corr, abs(float(np.corrcoef(z[a][ok], z[b][ok])[0, 1])))
            v = spread[b] * (1.0 - corr)
            if v > best_v:
                best, best_v = b, v
        slots[i] = best
        chosen.append(best)
    return [str(s) for s in slots], chosen
