r"""Fitting the downstream (target) module by MCMC, and the fixed rule that picks its noise model.

:func:`fit_target` samples one target module (:func:`~obscale_bayes.model.downstream.build_target_model`)
with nutpie and checks the convergence gate on its free parameters (R-hat <= 1.01, bulk ESS >= 400,
no divergences, E-BFMI >= 0.3).  A fit that fails the gate is rerun with a longer warm-up,
``target_accept = 0.99`` and three times the draws, then once more with six times the draws (a
rule fixed in advance, applied to every fit alike, judged on the fit's own diagnostics).  One
nutpie graph is compiled per (link, noise) and reused through ``with_data`` for every fold,
ridge scale and target of a process.

:func:`fit_target_module` is what a user (and the backtests) call: from the training models'
input scores and target it fits the coordinates map
(:class:`~obscale_bayes.model.coordinates.PrincipalAxes`), then weighs every candidate
(noise model x ridge scale) by **stacking of blocked K-fold predictive densities on the training
models** (:mod:`obscale_bayes.fit.downstream_select`, where the rule is written down).  This is
computed from training data only: the forecast is the stacking mixture of the kept candidates'
predictive draws (:mod:`obscale_bayes.forecast.downstream`), never a per-analysis choice made on
held-out results.  The log densities are computed in NumPy from
:func:`~obscale_bayes.model.equations.target_score_np` /
:func:`~obscale_bayes.model.equations.target_sd_np` (the twins of the graph's equations).

No capability fit is touched here: the cut (see :mod:`obscale_bayes.model.downstream`).

Over 400 lines because the sampled fit, its log densities, the compiled-graph cache, the module
and the cut fit of a table belong together (the selection rule itself is in ``downstream_select``).
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import arviz as az
import numpy as np
import pandas as pd
import xarray as xr
from scipy import stats

from obscale_bayes.errors import UsageError
from obscale_bayes.fit.diagnostics import Diagnostics, bfmi
from obscale_bayes.fit.downstream_select import FOLD_DRAWS, N_FOLDS, blocked_folds, kfold_lpd, stack
from obscale_bayes.fit.sampling import RETRY_TARGET_ACCEPT
from obscale_bayes.model.coordinates import N_AXES, PrincipalAxes, to_score_scale
from obscale_bayes.model.downstream import (
    NOISE_MODELS,
    RIDGE_SCALES,
    TargetPriors,
    build_target_model,
    check_choice,
    free_names,
    observed_target,
)
from obscale_bayes.model.equations import target_score_np, target_sd_np
from obscale_bayes.progress import get_logger

if TYPE_CHECKING:  # pragma: no cover
    from obscale_bayes.data.tables import BenchmarkData
    from obscale_bayes.fit.fitted import CapabilityModel
    from obscale_bayes.spec.spec import ModelSpec

__all__ = [
    "TargetFit",
    "TargetModule",
    "fit_cut",
    "fit_target",
    "candidate_name",
    "fit_target_module",
]

log = get_logger(__name__)

#: The retry of a fit that fails the gate samples at RETRY_TARGET_ACCEPT (fit.sampling) and
#: its draws per chain, as a multiple of the first run's.  A target whose training models
#: all sit on the flat lower tail of the sigmoid (Persian QA, word unscramble) has a skewed
#: bias-weight posterior with a bulk ESS of ~18% of the draws; the gate asks for 400.
RETRY_DRAWS = 3


@dataclass
class TargetFit:
    """One sampled target module.

    Attributes
    ----------
    link, noise : str
    draws : dict of str to ndarray
        Posterior draws, chains stacked: ``bias, sigma, tau, floor`` ``(S,)`` and ``weight``
        ``(S, K)`` (``tau`` and ``floor`` are zeros where the model has none).
    diagnostics : Diagnostics
        Of the free parameters (:func:`~obscale_bayes.model.downstream.free_names`).
    tree : xarray.DataTree
        ``posterior``, ``sample_stats`` and ``log_likelihood`` (``y``: one per training model).
    retried : bool
        Whether the gate failed once and the fit was rerun with the retry settings.
    """

    link: str
    noise: str
    draws: dict[str, np.ndarray]
    diagnostics: Diagnostics
    tree: xr.DataTree
    retried: bool = False

    def subset(self, rows: np.ndarray) -> TargetFit:
        """The same fit with only the draws ``rows`` (diagnostics and tree kept)."""
        d = {k: v[rows] for k, v in self.draws.items()}
        return TargetFit(self.link, self.noise, d, self.diagnostics, self.tree, self.retried)

    def expected(self, z: np.ndarray) -> np.ndarray:
        """Expected target ``p`` ``(S, n)`` at coordinates ``z`` ``(n, K)`` (or ``(S, n, K)``)."""
        d = self.draws
        z = np.asarray(z, dtype=float)
        w = d["weight"][:, None, :]
        return target_score_np(z, d["bias"][:, None], w, d["floor"][:, None])

    def sd(self, p: np.ndarray) -> np.ndarray:
        """Noise sd ``(S, n)`` at expected scores ``p`` ``(S, n)``."""
        d = self.draws
        return target_sd_np(p, d["floor"][:, None], d["sigma"][:, None], d["tau"][:, None])

    def log_likelihood(self, z: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Pointwise log likelihood ``(S, n)`` of targets ``y`` at coordinates ``z`` (the fit's
        own likelihood: for ``censored`` the mass beyond 0 / 1 at the bounds)."""
        if self.noise == "censored":
            return self.log_score(z, y)
        p = self.expected(z)
        return stats.norm.logpdf(np.asarray(y, dtype=float)[None, :], p, self.sd(p))

    def log_score(self, z: np.ndarray, y: np.ndarray) -> np.ndarray:
        r"""Log predictive density ``(S, n)`` of ``y`` under the forecast *clipped to [0, 1]*.

        Every noise model's forecast is clipped to the score range (a target cannot leave it), so
        its predictive law has atoms at 0 and 1: a ``y <= 0`` scores
        :math:`\log\Phi(-p/\mathrm{sd})`, a ``y >= 1`` :math:`\log\Phi((p - 1)/\mathrm{sd})`,
        any other ``y`` the normal log density.  All candidates of the selection rule are
        scored on this one scale (the same dominating measure), whatever their likelihood.
        """
        p = self.expected(z)
        sd = self.sd(p)
        y = np.broadcast_to(np.asarray(y, dtype=float)[None, :], p.shape)
        out = stats.norm.logpdf(y, p, sd)
        lo, hi = y <= 0.0, y >= 1.0
        out[lo] = stats.norm.logcdf(-p[lo] / sd[lo])
        out[hi] = stats.norm.logcdf((p[hi] - 1.0) / sd[hi])
        return out


def _stack(post: xr.Dataset, name: str, k: int) -> np.ndarray:
    if name not in post:
        return np.zeros((post.sizes["chain"] * post.sizes["draw"],) + ((k,) if k else ()))
    a = post[name].to_numpy()
    return a.reshape((a.shape[0] * a.shape[1],) + a.shape[2:])


def _diagnostics(tree: xr.DataTree, names: list[str], seconds: float) -> Diagnostics:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        summ = az.summary(tree, var_names=names, kind="diagnostics")
    st = tree["sample_stats"].dataset
    post = tree["posterior"].dataset
    worst = summ.sort_values("ess_bulk").head(4)
    return Diagnostics(
        max_rhat=float(summ["r_hat"].max()),
        min_ess_bulk=float(summ["ess_bulk"].min()),
        min_ess_tail=float(summ["ess_tail"].min()),
        divergences=int(st["diverging"].sum()) if "diverging" in st else 0,
        n_draws=int(post.sizes["draw"]),
        n_chains=int(post.sizes["chain"]),
        min_bfmi=float(np.min(bfmi(st["energy"].to_numpy()))) if "energy" in st else float("nan"),
        sampling_seconds=float(seconds),
        worst=[{"parameter": str(i), "ess_bulk": round(float(r["ess_bulk"]), 1),
                "r_hat": round(float(r["r_hat"]), 4)} for i, r in worst.iterrows()],
    )  # fmt: skip


#: One compiled nutpie graph per (link, noise, K, fixed priors): every fold, ridge scale and
#: analysis of a process reuses it through ``with_data`` (compiling costs 10-20 s, sampling one
#: module well under one second).
_COMPILED: dict[tuple, object] = {}


def _compiled(link: str, noise: str, k: int, priors: TargetPriors):
    import nutpie

    key = (link, noise, k, replace(priors, weight_sd=1.0))
    if key not in _COMPILED:
        dummy = np.linspace(-1.0, 1.0, 4 * k).reshape(4, k)
        model = build_target_model(dummy, np.full(4, 0.1), link, noise, priors)
        _COMPILED[key] = nutpie.compile_pymc_model(model)
    return _COMPILED[key]


def _sample_once(compiled, draws, tune, chains, seed, target_accept, cores):
    import nutpie

    # Low-rank mass matrix: the bias and the first weight are strongly correlated when most
    # training models sit on the flat lower tail of the sigmoid (the diagonal adaptation gave a
    # bulk ESS of ~130 per 1000 draws there); the module has only a handful of parameters.
    return nutpie.sample(compiled, draws=draws, tune=tune, chains=chains, seed=seed, cores=cores,
                         target_accept=target_accept, progress_bar=False,
                         adaptation="low_rank")  # fmt: skip


def fit_target(
    z: np.ndarray,
    y: np.ndarray,
    link: str = "sigmoid",
    noise: str = "normal",
    *,
    draws: int = 1000,
    tune: int = 1000,
    chains: int = 4,
    seed: int = 0,
    target_accept: float = 0.95,
    cores: int | None = None,
    priors: TargetPriors | None = None,
    weight_sd: float | None = None,
    retry: bool = True,
) -> TargetFit:
    """Sample one target module on coordinates ``z`` (n, K) and targets ``y`` (n,).

    ``draws, tune, chains, seed`` as in :meth:`~obscale_bayes.fit.fitted.CapabilityModel.fit`;
    the same seed gives the same draws.  ``target_accept`` defaults high (0.95): the module is
    small, and a floor near 0 with a hetero noise that vanishes there has a narrow neck.
    ``weight_sd`` overrides ``priors.weight_sd`` (the ridge scale).  With ``retry`` a fit that
    fails the gate is rerun with ``target_accept`` 0.99, twice the warm-up and
    :data:`RETRY_DRAWS` times the draws, then once more with twice those draws.
    """
    check_choice(link, noise)
    for name, v in (("draws", draws), ("tune", tune), ("chains", chains)):
        if int(v) < 1:
            raise UsageError(f"{name}: must be >= 1, got {v}")
    pr = priors or TargetPriors()
    if weight_sd is not None:
        pr = replace(pr, weight_sd=float(weight_sd))
    z = np.asarray(z, dtype=float)
    y = np.asarray(y, dtype=float)
    build_target_model(z, y, link, noise, pr)  # checks the arguments (cheap, no compile)
    compiled = _compiled(link, noise, z.shape[1], pr).with_data(
        z=z, y_data=observed_target(y, noise), weight_sd=np.asarray(pr.weight_sd, dtype=float)
    )
    names = free_names(link, noise)
    cores = chains if cores is None else cores
    retried = False
    t0 = time.perf_counter()
    tree = _sample_once(compiled, draws, tune, chains, seed, target_accept, cores)
    diag = _diagnostics(tree, names, time.perf_counter() - t0)
    for attempt in (1, 2) if retry else ():
        if diag.passed:
            break
        log.info("target fit (%s, %s, ridge %g) failed the gate (%s); rerunning with "
                 "target_accept %.2f", link, noise, pr.weight_sd, "; ".join(diag.failures()),
                 RETRY_TARGET_ACCEPT)  # fmt: skip
        retried = True
        t0 = time.perf_counter()
        tree = _sample_once(compiled, attempt * RETRY_DRAWS * draws, 2 * tune, chains,
                            seed + attempt, RETRY_TARGET_ACCEPT, cores)  # fmt: skip
        diag = _diagnostics(tree, names, time.perf_counter() - t0)
    post = tree["posterior"].dataset
    k = post.sizes["axis"]
    d = {n: _stack(post, n, 0) for n in ("bias", "sigma", "tau")}
    d["floor"] = _stack(post, "floor_fitted", 0)
    d["weight"] = _stack(post, "weight", k)
    fit = TargetFit(link, noise, d, diag, xr.DataTree(), retried)
    ll = fit.log_likelihood(z, y).reshape(post.sizes["chain"], post.sizes["draw"], -1)
    ll_ds = xr.Dataset({"y": (("chain", "draw", "train_model"), ll)})
    fit.tree = xr.DataTree.from_dict({"posterior": post[[n for n in names]],
                                      "sample_stats": tree["sample_stats"].dataset,
                                      "log_likelihood": ll_ds})  # fmt: skip
    return fit


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
        lpd = pd.DataFrame({
            c: kfold_lpd(lambda zt, yt, n=n, r=r: fit_target(
                zt, yt, link, n, priors=priors, weight_sd=r, retry=False, **fold_kw), z, y, folds)
            for c, (n, r) in cands.items()
        })  # fmt: skip
        table["elpd_kfold"] = lpd.sum(axis=0)
        table["weight"] = stack(lpd)
    kept = table.index[table["weight"] > 0]
    fits = {c: fit_target(z, y, link, cands[c][0], priors=priors, weight_sd=cands[c][1],
                          **sample_kw) for c in kept}  # fmt: skip
    weights = {c: float(table.loc[c, "weight"]) for c in kept}
    log.info("target module (%s): K-fold stacking weights %s", link,
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
