r"""The downstream (target) module of a table: its fits, and the fixed rule that weighs them.

:func:`fit_target_module` is what a user (and the backtests) call: from the training models'
input scores and target it fits the coordinates map
(:class:`~obscale_bayes.model.coordinates.PrincipalAxes`), then weighs every candidate
(noise model x ridge scale) by **stacking of blocked K-fold predictive densities on the training
models** (:mod:`obscale_bayes.fit.downstream_select`, where the rule is written down).  This is
computed from training data only: the forecast is the stacking mixture of the kept candidates'
predictive draws (:mod:`obscale_bayes.forecast.downstream`), never a per-analysis choice made on
held-out results.  Each candidate is one sampled fit (:func:`fit_target`, :class:`TargetFit`:
:mod:`obscale_bayes.fit.downstream_sample`, re-exported here, with the convergence gate, its
retry and the compiled-graph cache).  :func:`fit_cut` is the cut fit of a table: the capability
module on the inputs, the target module apart.

No capability fit is touched here: the cut (see :mod:`obscale_bayes.model.downstream`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from obscale_bayes.errors import UsageError
from obscale_bayes.fit.diagnostics import Diagnostics
from obscale_bayes.fit.downstream_sample import TargetFit, fit_target
from obscale_bayes.fit.downstream_select import (
    FOLD_DRAWS,
    N_FOLDS,
    blocked_folds,
    kfold_predictive,
    stack_by,
)
from obscale_bayes.model.coordinates import N_AXES, PrincipalAxes, to_score_scale
from obscale_bayes.model.downstream import NOISE_MODELS, RIDGE_SCALES, TargetPriors, check_choice
from obscale_bayes.progress import get_logger

if TYPE_CHECKING:  # pragma: no cover
    from obscale_bayes.data.tables import BenchmarkData
    from obscale_bayes.fit.fitted import CapabilityModel
    from obscale_bayes.spec.spec import ModelSpec

__all__ = [
    "SCORES",
    "TargetFit",
    "TargetModule",
    "fit_cut",
    "fit_target",
    "candidate_name",
    "fit_target_module",
]

log = get_logger(__name__)

#: Scores of the selection rule's stacking (:mod:`~obscale_bayes.fit.downstream_select`):
#: blocked K-fold log predictive density (of every model, or of the top two blocks' models
#: only), or CRPS of the stacked mixture.
SCORES = ("lpd", "crps", "lpd_top")


@dataclass
class TargetModule:
    """A fitted downstream module: the coordinates map, one fit per noise model, their weights.

    Attributes
    ----------
    axes : PrincipalAxes
        Fitted on the training models' input scores ([0, 1] scale).
    link : str
    fits : dict of str to TargetFit
        One per kept candidate (:func:`candidate_name`: noise model and ridge scale).
    weights : dict of str to float
        Stacking weights (sum 1) of the kept candidates.
    compare : pandas.DataFrame or None
        Every candidate's noise, ridge, blocked K-fold elpd and weight (the rule's table).
    z_train : ndarray (n, K)
    """

    axes: PrincipalAxes
    link: str
    fits: dict[str, TargetFit]
    weights: dict[str, float]
    compare: pd.DataFrame | None = None
    z_train: np.ndarray = field(default_factory=lambda: np.zeros((0, N_AXES)))

    @property
    def max_rhat(self) -> float:
        return max(f.diagnostics.max_rhat for f in self.fits.values())

    @property
    def divergences(self) -> int:
        return sum(f.diagnostics.divergences for f in self.fits.values())

    @property
    def min_ess_bulk(self) -> float:
        return min(f.diagnostics.min_ess_bulk for f in self.fits.values())

    @property
    def passed(self) -> bool:
        return all(f.diagnostics.passed for f in self.fits.values())

    @property
    def diagnostics(self) -> Diagnostics:
        """The worst of the candidates' diagnostics (divergences and sampling time summed)."""
        ds = [f.diagnostics for f in self.fits.values()]
        worst = sorted((w for d in ds for w in d.worst), key=lambda w: w["ess_bulk"])[:4]
        return Diagnostics(
            max_rhat=max(d.max_rhat for d in ds),
            min_ess_bulk=min(d.min_ess_bulk for d in ds),
            min_ess_tail=min(d.min_ess_tail for d in ds),
            divergences=sum(d.divergences for d in ds),
            n_draws=ds[0].n_draws,
            n_chains=ds[0].n_chains,
            min_bfmi=min(d.min_bfmi for d in ds),
            sampling_seconds=sum(d.sampling_seconds for d in ds),
            worst=worst,
        )


def candidate_name(noise: str, ridge: float) -> str:
    """Label of a candidate of the selection rule, e.g. ``"hetero@1"``."""
    return f"{noise}@{float(ridge):g}"


def fit_target_module(
    scores: pd.DataFrame,
    y: np.ndarray | pd.Series,
    link: str = "sigmoid",
    noise: str | tuple[str, ...] = NOISE_MODELS,
    *,
    ridge: float | tuple[float, ...] = RIDGE_SCALES,
    n_axes: int = N_AXES,
    n_folds: int = N_FOLDS,
    priors: TargetPriors | None = None,
    score: str = "lpd",
    **sample_kw,
) -> TargetModule:
    """Fit the coordinates and the target module on training models, by the rule of
    :mod:`~obscale_bayes.fit.downstream_select` (blocked K-fold stacking of the candidates).

    Parameters
    ----------
    scores : pandas.DataFrame
        Training models x input benchmarks on the [0, 1] score scale
        (:func:`~obscale_bayes.model.coordinates.to_score_scale`), NaN = missing.
    y : array or pandas.Series
        Their target on its transformed scale (same order).
    link : {"sigmoid", "floored_sigmoid"}
    noise : str or tuple of str
        Noise model candidates (default: all of :data:`NOISE_MODELS`).
    ridge : float or tuple of float
        Ridge scale candidates (prior sd of the weights; default :data:`RIDGE_SCALES`).
        A single noise model and a single ridge scale skip the K-fold step.
    n_axes : int
        Coordinates kept (default 3, fixed in advance).
    n_folds : int
        Blocks of the K-fold step.
    score : {"lpd", "crps", "lpd_top"}
        What the stacking weighs the same fold fits by (:data:`SCORES`): the log predictive
        density, the CRPS of the mixture, or the log predictive density of the models of the
        top two blocks only (:func:`~obscale_bayes.fit.downstream_select.stack_by`).
    **sample_kw
        ``draws, tune, chains, seed, target_accept, cores`` of :func:`fit_target`.
    """
    y = np.asarray(y, dtype=float)
    if len(y) != len(scores):
        raise UsageError(f"y: {len(y)} targets for {len(scores)} training models")
    noises = (noise,) if isinstance(noise, str) else tuple(noise)
    ridges = (ridge,) if np.isscalar(ridge) else tuple(ridge)
    if not noises or not ridges:
        raise UsageError("noise: give at least one noise model and one ridge scale")
    for n in noises:
        check_choice(link, n)
    if score not in SCORES:
        raise UsageError(f"score: unknown stacking score {score!r}; use one of {', '.join(SCORES)}")
    axes = PrincipalAxes(n_axes).fit(scores)
    z = axes.transform(scores)
    cands = {candidate_name(n, r): (n, float(r)) for n in noises for r in ridges}
    table = pd.DataFrame([{"candidate": c, "noise": n, "ridge": r} for c, (n, r) in cands.items()])
    table = table.set_index("candidate")
    if len(cands) == 1:
        table["elpd_kfold"], table["weight"] = np.nan, 1.0
    else:
        fold_kw = dict(sample_kw)
        fold_kw["draws"] = min(int(sample_kw.get("draws", 1000)), FOLD_DRAWS)
        fold_kw["tune"] = min(int(sample_kw.get("tune", 1000)), FOLD_DRAWS)
        folds = blocked_folds(z[:, 0], n_folds)
        seed = int(sample_kw.get("seed", 0))
        pred = {
            c: kfold_predictive(lambda zt, yt, n=n, r=r: fit_target(
                zt, yt, link, n, priors=priors, weight_sd=r, retry=False, **fold_kw),
                z, y, folds, seed)
            for c, (n, r) in cands.items()
        }  # fmt: skip
        lpd = pd.DataFrame({c: lp for c, (lp, _) in pred.items()})
        draws = {c: d for c, (_, d) in pred.items()}
        table["elpd_kfold"] = lpd.sum(axis=0)
        table["weight"] = stack_by(score, lpd, draws, y, folds)
    kept = table.index[table["weight"] > 0]
    fits = {c: fit_target(z, y, link, cands[c][0], priors=priors, weight_sd=cands[c][1],
                          **sample_kw) for c in kept}  # fmt: skip
    weights = {c: float(table.loc[c, "weight"]) for c in kept}
    log.info("target module (%s): K-fold stacking (%s) weights %s", link, score,
             {c: round(w, 2) for c, w in weights.items()})  # fmt: skip
    return TargetModule(axes, link, fits, weights, table, z)


def fit_cut(
    data: BenchmarkData,
    target: str,
    inputs: list[str] | None = None,
    spec: ModelSpec | str | None = None,
    link: str = "floored_sigmoid",
    **sample_kw,
) -> tuple[CapabilityModel, TargetModule]:
    """The modular (cut) fit of a table: capability module on the inputs, target module apart.

    The capability module (:meth:`CapabilityModel.fit`) sees only the ``inputs`` (default: every
    benchmark but ``target``), so its posterior is the same with or without the target in
    ``data``; the target module is fitted on the models that have ``target`` and an input score,
    on the [0, 1] score scale of the metadata's metric range.  ``sample_kw`` go to both fits.
    """
    from obscale_bayes.fit.fitted import CapabilityModel

    if target not in data.benchmark_ids:
        raise UsageError(f"target: {target!r} is not a benchmark of the table")
    inputs = [b for b in data.benchmark_ids if b != target] if inputs is None else list(inputs)
    if target in inputs:
        raise UsageError(f"inputs: the target {target!r} is also an input; drop it from inputs")
    cap = CapabilityModel.fit(data.subset(benchmarks=inputs), spec, **sample_kw)
    s01 = to_score_scale(data.wide()[inputs + [target]], data.benchmarks)
    rows = s01[target].notna() & s01[inputs].notna().any(axis=1)
    sample_kw.pop("progress", None)
    module = fit_target_module(s01.loc[rows, inputs], s01.loc[rows, target], link, **sample_kw)
    return cap, module
