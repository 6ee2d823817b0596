r"""Sampling one downstream (target) module by MCMC: :class:`TargetFit` and :func:`fit_target`.

:func:`fit_target` samples one target module (:func:`~obscale_bayes.model.downstream.build_target_model`)
with nutpie and checks the convergence gate on its free parameters (R-hat <= 1.01, bulk ESS >= 400,
no divergences, E-BFMI >= 0.3).  A fit that fails the gate is rerun with a longer warm-up,
``target_accept = 0.99`` and three times the draws, then once more with six times the draws (a
rule fixed in advance, applied to every fit alike, judged on the fit's own diagnostics).  One
nutpie graph is compiled per (link, noise) and reused through ``with_data`` for every fold,
ridge scale and target of a process.

:class:`TargetFit` holds the draws and computes, in NumPy, the expected target, the noise sd and
the log densities (:meth:`TargetFit.log_likelihood`, :meth:`TargetFit.log_score`) from
:func:`~obscale_bayes.model.equations.target_score_np` /
:func:`~obscale_bayes.model.equations.target_sd_np` (the twins of the graph's equations).
The module of fits and its selection rule are :mod:`obscale_bayes.fit.downstream` and
:mod:`obscale_bayes.fit.downstream_select`.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, replace

import arviz as az
import numpy as np
import xarray as xr
from scipy import stats

from obscale_bayes.errors import UsageError
from obscale_bayes.fit.diagnostics import Diagnostics, bfmi
from obscale_bayes.fit.sampling import RETRY_TARGET_ACCEPT
from obscale_bayes.model.downstream import (
    TargetPriors,
    build_target_model,
    check_choice,
    free_names,
    observed_target,
)
from obscale_bayes.model.equations import target_score_np, target_sd_np
from obscale_bayes.progress import get_logger

__all__ = ["RETRY_DRAWS", "TargetFit", "fit_target"]

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
