r"""What to evaluate next: rank evaluations by the expected reduction of a forecast's variance.

The candidates and targets are score cells (a model of the fit, or a new model of a family at
some FLOPs, on a benchmark) and the criterion is computed from their joint posterior predictive
draws (:func:`~obscale_bayes.forecast.joint.joint_draws`), correlated through the shared
capabilities and benchmark parameters.

Expected variance reduction (Gaussian / linear approximation)
--------------------------------------------------------------
For target cells :math:`T` and a candidate :math:`c`, with :math:`\Sigma` the covariance of the
joint draws,

.. math::

    \Delta_c = \sum_{t \in T} \mathrm{Var}(y_t) - \mathrm{E}\,\mathrm{Var}(y_t \mid y_c)
        \approx \sum_{t\in T} \frac{\Sigma_{tc}^2}{\Sigma_{cc}}
        = \sum_t \mathrm{Var}(y_t)\,\rho_{tc}^2 ,

exact when the draws are jointly Gaussian (a linear-Gaussian model), an approximation otherwise
(sigmoid links, floors, clipping).  For one candidate it is a lower bound on the exact expected
reduction :math:`\mathrm{Var}(\mathrm{E}[y_t \mid y_c])`: the best linear predictor of
:math:`y_t` from :math:`y_c` cannot beat the conditional mean.  A batch is chosen greedily: after picking :math:`c` the
covariance is conditioned on it by the Schur complement
:math:`\Sigma \leftarrow \Sigma - \Sigma_{\cdot c}\Sigma_{c\cdot}/\Sigma_{cc}`, which again is exact
only for Gaussians.  The greedy choice needs no refit; it ignores the values the evaluations will
return (the design is fixed before they are run).  :func:`reweighted_variance_reduction` checks
the approximation without it: it reweights the draws by the likelihood of hypothetical outcomes
(importance sampling from the posterior), which is exact up to Monte Carlo error.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from obscale_bayes.errors import UsageError
from obscale_bayes.forecast.joint import Cell, as_cells, joint_draws

__all__ = [
    "greedy_schur",
    "rank_evaluations",
    "reweighted_reduction",
    "reweighted_variance_reduction",
    "select_batch",
]


def _observed_cells(fit) -> set[tuple[str, str]]:
    od = fit.idata["observed_data"].dataset
    models, benches = map(str, od["obs_model"].values), map(str, od["obs_benchmark"].values)
    return set(zip(models, benches, strict=True))


def _default_candidates(fit, targets: list[Cell]) -> list[Cell]:
    """Every unobserved cell of a model of the fit, on the fit's and the targets' benchmarks."""
    seen = _observed_cells(fit)
    tset = {(t.model, t.benchmark) for t in targets}
    benches = list(fit.posterior.benchmark_ids)
    benches += [t.benchmark for t in targets if t.benchmark not in benches]
    benches = list(dict.fromkeys(benches))
    return [
        Cell(benchmark=b, model=m)
        for m in fit.inputs.model_ids
        for b in benches
        if (m, b) not in seen and (m, b) not in tset
    ]


def _setup(fit, target, candidates, seed, max_draws):
    targets = as_cells(target, "target")
    cands = (
        _default_candidates(fit, targets)
        if candidates is None
        else as_cells(list(candidates), "candidates")
    )
    # An observed cell is not a candidate: re-running the same evaluation returns the same score.
    seen = _observed_cells(fit)
    cands = [c for c in cands if c not in set(targets) and (c.model, c.benchmark) not in seen]
    if not cands:
        raise UsageError("candidates: no candidate cell left (all are targets or observed)")
    jd = joint_draws(fit, targets + cands, seed=seed, max_draws=max_draws)
    cov = np.cov(jd.metric(), rowvar=False)
    return targets, cands, jd, np.atleast_2d(cov)


def _cell_columns(c: Cell, fit) -> dict:
    fam = c.family
    if not c.is_new:
        fam = fit.data.models.set_index("model").loc[c.model, "family"]
    return {"model": c.label, "family": fam, "flops": c.flops, "benchmark": c.benchmark,
            "new_model": c.is_new}  # fmt: skip


def rank_evaluations(
    fit,
    target: Cell | tuple | Sequence[Cell | tuple],
    candidates: Iterable[Cell | tuple] | None = None,
    *,
    seed: int = 0,
    max_draws: int | None = 2000,
) -> pd.DataFrame:
    """Rank single evaluations by how much they would reduce the target's predictive variance.

    Parameters
    ----------
    fit : CapabilityModel
    target : cell or list of cells
        The forecast(s) to tighten; with several, the criterion is the sum of their variances.
    candidates : iterable of cells, optional
        Default: every unobserved cell of the fit's models on the fit's (and the targets')
        benchmarks, targets excluded.
    seed, max_draws : see :func:`joint_draws`.

    Returns
    -------
    pandas.DataFrame
        One row per candidate, best first: ``rank, model, family, flops, benchmark, new_model,
        candidate_sd, corr`` (correlation with the target; with several target cells, that of
        their sum), ``variance_reduction`` (metric units squared), ``fraction_removed``
        (of the target's total predictive variance) and ``target_sd_after``.
    """
    targets, cands, jd, cov = _setup(fit, target, candidates, seed, max_draws)
    nt = len(targets)
    t = np.arange(nt)
    total = float(np.trace(cov[:nt, :nt]))
    sum_t = jd.metric()[:, :nt].sum(axis=1)
    rows = []
    for k, c in enumerate(cands):
        i = nt + k
        var_c = cov[i, i]
        red = float((cov[t, i] ** 2).sum() / var_c) if var_c > 1e-14 else 0.0
        ci = jd.metric()[:, i]
        corr = float(np.corrcoef(sum_t, ci)[0, 1]) if ci.std() > 0 else 0.0
        rows.append({**_cell_columns(c, fit), "candidate_sd": float(np.sqrt(var_c)),
                     "corr": corr, "variance_reduction": red,
                     "fraction_removed": red / total if total > 0 else 0.0,
                     "target_sd_after": float(np.sqrt(max(total - red, 0.0)))})  # fmt: skip
    df = pd.DataFrame(rows).sort_values("variance_reduction", ascending=False, kind="stable")
    df.insert(0, "rank", np.arange(1, len(df) + 1))
    df.attrs["target_variance"] = total
    df.attrs["targets"] = [(c.label, c.benchmark) for c in targets]
    return df.reset_index(drop=True)


def select_batch(
    fit,
    target: Cell | tuple | Sequence[Cell | tuple],
    budget: int,
    candidates: Iterable[Cell | tuple] | None = None,
    *,
    seed: int = 0,
    max_draws: int | None = 2000,
) -> pd.DataFrame:
    """Greedy batch of ``budget`` evaluations for the largest expected variance reduction.

    Each step conditions the draws' covariance on the cells already chosen (Schur complement,
    Gaussian approximation; see the module docstring) and picks the cell that removes most of
    the remaining target variance.

    Returns
    -------
    pandas.DataFrame
        One row per pick, in order: ``step, model, family, flops, benchmark, new_model, gain``
        (variance removed by this pick), ``cumulative_reduction``, ``fraction_removed``
        (cumulative) and ``target_sd_after``.
    """
    if int(budget) < 1:
        raise UsageError(f"budget: give a positive number of evaluations, got {budget}")
    targets, cands, _, cov = _setup(fit, target, candidates, seed, max_draws)
    nt = len(targets)
    total = float(np.trace(cov[:nt, :nt]))
    picks = greedy_schur(cov, range(nt), range(nt, nt + len(cands)), int(budget))
    rows = []
    for step, (i, gain, left) in enumerate(picks, 1):
        rows.append({"step": step, **_cell_columns(cands[i - nt], fit), "gain": gain,
                     "cumulative_reduction": total - left,
                     "fraction_removed": (total - left) / total if total > 0 else 0.0,
                     "target_sd_after": float(np.sqrt(max(left, 0.0)))})  # fmt: skip
    df = pd.DataFrame(rows)
    df.attrs["target_variance"] = total
    return df


def reweighted_variance_reduction(
    fit,
    target: Cell | tuple | Sequence[Cell | tuple],
    candidates: Iterable[Cell | tuple],
    *,
    n_outcomes: int = 200,
    seed: int = 0,
    max_draws: int | None = 2000,
) -> pd.DataFrame:
    r"""Check the Gaussian approximation by importance reweighting of the posterior draws.

    For each candidate, hypothetical outcomes :math:`y^*` are taken from the candidate's own
    predictive draws; each outcome reweights the draws by its likelihood
    :math:`w_s \propto N(y^*; p^{(s)}_c, \mathrm{sd}^{(s)}_c)` (the draw that produced the outcome
    left out) and the target's weighted variance is averaged over outcomes:
    :math:`\Delta_c = \mathrm{Var}(T) - \mathrm{E}_{y^*}\mathrm{Var}_w(T)`.  No Gaussian assumption;
    it degrades when the weights collapse (a very precise candidate), see ``min_ess``.

    Returns
    -------
    pandas.DataFrame
        ``model, benchmark, gaussian, reweighted, mean_ess, min_ess`` per candidate
        (reductions of the target's total variance, metric units squared).
    """
    targets, cands, jd, cov = _setup(fit, target, list(candidates), seed, max_draws)
    nt = len(targets)
    tm = jd.metric()[:, :nt]
    total = float(np.trace(cov[:nt, :nt]))
    rng = np.random.default_rng(seed + 1)
    rows = []
    for k, c in enumerate(cands):
        i = nt + k
        red, mean_ess, min_ess = reweighted_reduction(
            tm, jd.y[:, i], jd.p[:, i], jd.sd[:, i], n_outcomes, rng
        )
        gauss = float((cov[:nt, i] ** 2).sum() / cov[i, i]) if cov[i, i] > 1e-14 else 0.0
        rows.append({"model": c.label, "benchmark": c.benchmark, "gaussian": gauss,
                     "reweighted": red, "mean_ess": mean_ess, "min_ess": min_ess})  # fmt: skip
    df = pd.DataFrame(rows)
    df.attrs["target_variance"] = total
    return df


def reweighted_reduction(
    tm: np.ndarray,
    y: np.ndarray,
    p: np.ndarray,
    sd: np.ndarray,
    n_outcomes: int,
    rng: np.random.Generator,
) -> tuple[float, float, float]:
    """``sum Var(T) - E_{y*} sum Var_w(T)`` by likelihood reweighting; with mean and min ESS.

    ``tm`` (S, n_targets) target draws; ``y, p, sd`` (S,) the candidate's predictive draw,
    expected score and noise sd per draw (outcomes ``y*`` are taken from ``y``).
    """
    n_s = tm.shape[0]
    total = float(tm.var(axis=0).sum())
    outs = rng.choice(n_s, size=min(int(n_outcomes), n_s), replace=False)
    post_var, ess = [], []
    for o in outs:
        logw = -0.5 * ((y[o] - p) / sd) ** 2 - np.log(sd)
        logw[o] = -np.inf  # the draw that produced the outcome would weigh itself
        w = np.exp(logw - logw.max())
        w /= w.sum()
        mu = w @ tm
        post_var.append(float((w @ (tm - mu) ** 2).sum()))
        ess.append(1.0 / float((w**2).sum()))
    return total - float(np.mean(post_var)), float(np.mean(ess)), float(np.min(ess))


def greedy_schur(
    cov: np.ndarray, target: Sequence[int], candidates: Sequence[int], budget: int
) -> list[tuple[int, float, float]]:
    """Greedy batch: repeatedly pick the candidate with the largest variance reduction.

    Parameters
    ----------
    cov : ndarray (n, n)
        Joint covariance of all cells.
    target, candidates : index sequences into ``cov``.
    budget : int
        Number of candidates to pick.

    Returns
    -------
    list of (candidate index, reduction of ``sum Var(target)`` by this pick, remaining
    ``sum Var(target)`` after it), in the order picked.
    """
    c = np.array(cov, dtype=float, copy=True)
    t = np.asarray(target, dtype=int)
    left = [int(i) for i in candidates]
    out = []
    for _ in range(min(int(budget), len(left))):
        d = np.array([c[i, i] for i in left])
        num = np.array([(c[t, i] ** 2).sum() for i in left])
        gain = np.where(d > 1e-14, num / np.where(d > 1e-14, d, 1.0), 0.0)
        k = int(np.argmax(gain))
        i = left.pop(k)
        if c[i, i] > 1e-14:
            c = c - np.outer(c[:, i], c[i, :]) / c[i, i]
        out.append((i, float(gain[k]), float(np.trace(c[np.ix_(t, t)]))))
    return out
