r"""Posterior checks of a fit: convergence by parameter group, posterior predictive checks, PIT.

Every check here is of the model's *likelihood* for each observed (model, benchmark) cell
:math:`i`, on the model's internal scale (scores rescaled to [0, 1] by the metric range):

.. math::

    y_i \mid \text{draw } s \sim \mathcal{D}\big(p_i^{(s)},\ \mathrm{sd}_i^{(s)}\big), \qquad
    p_i = g_j + (1 - g_j)\,\mathrm{sigmoid}(\alpha_j + \lambda_j\cdot\theta_m)

with :math:`\mathcal{D}` normal (or Student-t with the spec's :math:`\nu`) and ``sd`` from
:func:`~obscale_bayes.model.equations.noise_sd_np` (sampling noise + misfit).  Replicated scores are
*not* clipped to [0, 1]: the likelihood the model was fitted with is not censored, so clipping
would make the checks test a different model from the one whose log-likelihood LOO uses.

* **PIT** of cell :math:`i`: :math:`\Pr(y^{rep}_i \le y_i \mid y) = \frac1S\sum_s
  F_{\mathcal D}\big((y_i - p_i^{(s)})/\mathrm{sd}_i^{(s)}\big)` (the predictive CDF, computed
  exactly per draw rather than by counting replicates).  It uses each cell twice (fit and
  check), so even a correct model gives PIT values bunched towards 0.5.
* **LOO-PIT** (:func:`arviz.loo_pit`): the same with the posterior reweighted by PSIS to leave
  cell :math:`i` out; uniform on [0, 1] for a calibrated model.  The Kolmogorov-Smirnov
  distance to the uniform summarises it.

The replicated scores, the pointwise log-likelihood (via :func:`pymc.compute_log_likelihood`
on the model rebuilt with :func:`~obscale_bayes.model.build.model_for_fit`) and the observed scores are
assembled once per fit into an ArviZ-ready ``DataTree`` (:func:`predictive_tree`) and cached.
"""

from __future__ import annotations

import warnings
import weakref
from typing import TYPE_CHECKING

import arviz as az
import numpy as np
import pandas as pd
import xarray as xr
from numpy.typing import ArrayLike
from scipy import stats

from obscale_bayes.errors import UsageError
from obscale_bayes.fit.diagnostics import (
    BFMI_MIN,
    ESS_MIN,
    RHAT_MAX,
    compute_diagnostics,
    gate_summary,
    gate_vars,
)
from obscale_bayes.model.build import model_for_fit
from obscale_bayes.model.equations import expected_score_np, noise_sd_np, observation_dist

if TYPE_CHECKING:  # pragma: no cover
    from obscale_bayes.fit.fitted import CapabilityModel

__all__ = [
    "cell_params",
    "convergence_summary",
    "loo_pit_values",
    "pit_values",
    "posterior_predictive",
    "ppc_summary",
    "predictive_tree",
    "uniformity_ks",
]

# predictive trees per fit, keyed by (thin, seed); weak so a dropped fit frees its arrays
_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


# ---------------------------------------------------------------- convergence
def convergence_summary(fit: CapabilityModel) -> pd.DataFrame:
    """Convergence diagnostics per parameter group, plus one row for the sampler.

    Parameters
    ----------
    fit : CapabilityModel

    Returns
    -------
    pandas.DataFrame
        One row per parameter group of :data:`~obscale_bayes.fit.diagnostics.GATE_VARS` present in
        the posterior (``group, n, max_rhat, min_ess_bulk, min_ess_tail, passed``; ``passed``
        is R-hat <= 1.01 and bulk ESS >= 400) and a last row ``group = "sampler"`` with
        ``divergences`` and ``min_bfmi`` (passed: none, and E-BFMI >= 0.3 in every chain).
        ``attrs["gate_passed"]`` and ``attrs["failures"]`` hold the verdict of the gate of
        :mod:`obscale_bayes.fit.diagnostics` (the same thresholds; it passes iff every row does).
    """
    post = fit.idata["posterior"].dataset
    names = gate_vars(post)
    summ = gate_summary(fit.idata)
    group = pd.Series([str(i).split("[", 1)[0] for i in summ.index], index=summ.index)
    rows = []
    for name in names:
        s = summ[group == name]
        if s.empty:
            continue
        rows.append(
            {
                "group": name,
                "n": len(s),
                "max_rhat": float(s["r_hat"].max()),
                "min_ess_bulk": float(s["ess_bulk"].min()),
                "min_ess_tail": float(s["ess_tail"].min()),
            }
        )
    out = pd.DataFrame(rows)
    out["passed"] = (out["max_rhat"] <= RHAT_MAX) & (out["min_ess_bulk"] >= ESS_MIN)
    # the gate from the same summary: divergences and E-BFMI as the gate counts them
    diag = compute_diagnostics(fit.idata, summary=summ)
    sampler = {
        "group": "sampler",
        "n": int(post.sizes["chain"] * post.sizes["draw"]),
        "divergences": diag.divergences,
        "min_bfmi": diag.min_bfmi,
        "passed": diag.divergences == 0 and diag.min_bfmi >= BFMI_MIN,
    }
    out = pd.concat([out, pd.DataFrame([sampler])], ignore_index=True)
    out["divergences"] = out["divergences"].astype("Int64")
    out.attrs["gate_passed"] = bool(diag.passed)
    out.attrs["failures"] = diag.failures()
    return out


# ---------------------------------------------------------------- predictive distribution
def _thinned(fit: CapabilityModel, thin: int | None) -> xr.Dataset:
    post = fit.idata["posterior"].dataset
    if thin is None or int(thin) <= 1:
        return post
    return post.isel(draw=slice(None, None, int(thin)))


def cell_params(
    fit: CapabilityModel,
    post: xr.Dataset,
    om: np.ndarray | None = None,
    ob: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Expected score ``p`` and noise sd of cells, each ``(chain, draw, cell)``.

    Cell ``i`` is model ``om[i]`` on benchmark ``ob[i]`` (indices into the fit's
    ``inputs.model_ids`` / ``benchmark_ids``); default: the fit's observed cells.  ``post`` is
    the fit's posterior (or part of it) with dims ``chain, draw``.
    """
    inp = fit.inputs
    om = inp.obs_model if om is None else np.asarray(om, dtype=int)
    ob = inp.obs_bench if ob is None else np.asarray(ob, dtype=int)
    cap = post["capability"].transpose("chain", "draw", "model", "factor").to_numpy()
    lam = post["loading"].transpose("chain", "draw", "benchmark", "factor").to_numpy()

    def per_bench(name: str) -> np.ndarray:
        if name not in post:  # fits made before logit_misfit existed
            return np.zeros(cap.shape[:2] + (len(ob),))
        return post[name].transpose("chain", "draw", "benchmark").to_numpy()[:, :, ob]

    floor = per_bench("floor")
    alpha = per_bench("intercept")
    if "family_offset" in post:  # each cell's family offset (structure.family_offsets)
        off = post["family_offset"].transpose("chain", "draw", "family", "benchmark").to_numpy()
        alpha = alpha + off[:, :, inp.family_idx[om], ob]
    if "benchmark_slope" in post:  # c_j x_m (structure.benchmark_slopes; x latent where unknown)
        c = post["benchmark_slope"].transpose("chain", "draw", "benchmark").to_numpy()
        x = post["compute_axis"].transpose("chain", "draw", "model").to_numpy()
        alpha = alpha + c[:, :, ob] * x[:, :, om]
    p = expected_score_np(cap[:, :, om], alpha, lam[:, :, ob], floor, inp.bounded[ob])
    sd = noise_sd_np(p, inp.inv_n[ob], per_bench("misfit"), floor, per_bench("logit_misfit"))
    return p, sd


def _obs_coords(fit: CapabilityModel) -> dict:
    obs = fit.idata["observed_data"].dataset
    return {
        "obs": obs["obs"].to_numpy(),
        "obs_model": ("obs", obs["obs_model"].to_numpy().astype(str)),
        "obs_benchmark": ("obs", obs["obs_benchmark"].to_numpy().astype(str)),
    }


def predictive_tree(
    fit: CapabilityModel, *, thin: int | None = None, seed: int = 0, log_likelihood: bool = True
) -> xr.DataTree:
    """ArviZ-ready tree of the fit: posterior, replicated and observed scores, log-likelihood.

    Parameters
    ----------
    fit : CapabilityModel
    thin : int, optional
        Keep every ``thin``-th draw of each chain (saves memory on long fits).
    seed : int
        Seed of the replicated-score noise.
    log_likelihood : bool
        Add the ``log_likelihood`` group (``pm.compute_log_likelihood`` on the rebuilt model).

    Returns
    -------
    xarray.DataTree
        Groups ``posterior`` (thinned), ``posterior_predictive`` and ``log_likelihood``
        (variable ``score`` with dims ``chain, draw, obs``; coords ``obs_model``,
        ``obs_benchmark``), ``observed_data``.  Cached per (fit, thin, seed).
    """
    key = (None if thin is None or int(thin) <= 1 else int(thin), int(seed))
    cache = _CACHE.setdefault(fit, {})
    tree = cache.get(key)
    if tree is not None and (not log_likelihood or "log_likelihood" in tree.children):
        return tree
    post = _thinned(fit, key[0])
    p, sd = cell_params(fit, post)
    rng = np.random.default_rng(seed)
    eps = observation_dist(fit.spec.structure).rvs(size=p.shape, random_state=rng)
    dims = ("chain", "draw", "obs")
    coords = {"chain": post["chain"].to_numpy(), "draw": post["draw"].to_numpy()}
    coords.update(_obs_coords(fit))
    rep = xr.Dataset({"score": (dims, p + sd * eps)}, coords=coords)
    groups = {
        "posterior": post,
        "posterior_predictive": rep,
        "observed_data": fit.idata["observed_data"].dataset,
        # the parameters of each cell's predictive distribution, for exact PIT values
        "cell_params": xr.Dataset({"mu": (dims, p), "sd": (dims, sd)}, coords=coords),
    }
    if log_likelihood:
        groups["log_likelihood"] = _log_likelihood(fit, post).assign_coords(_obs_coords(fit))
    tree = xr.DataTree.from_dict(groups)
    cache[key] = tree
    return tree


def _log_likelihood(fit: CapabilityModel, post: xr.Dataset) -> xr.Dataset:
    """Pointwise log-likelihood of ``score`` from the PyMC model rebuilt for the fit."""
    import pymc as pm

    model = model_for_fit(fit)
    names = {"score"} | {v.name for v in model.free_RVs}
    if "score" not in {v.name for v in model.observed_RVs}:  # pragma: no cover - model contract
        raise UsageError("the model has no observed variable 'score'; cannot compute LOO")
    keep = [v for v in post.data_vars if v in names]
    tree = xr.DataTree.from_dict({"posterior": post[keep]})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        ll = pm.compute_log_likelihood(
            tree, var_names=["score"], model=model, extend_inferencedata=False, progressbar=False
        )
    if isinstance(ll, xr.DataTree):  # pragma: no cover - older PyMC returns the tree
        ll = ll["log_likelihood"].to_dataset()
    return ll[["score"]]


def posterior_predictive(
    fit: CapabilityModel, *, thin: int | None = None, seed: int = 0
) -> xr.DataArray:
    """Replicated scores of every observed cell, ``(sample, obs)``, on the [0, 1] scale.

    Coordinates ``obs_model`` and ``obs_benchmark`` label the cells; the observed values are
    ``fit.idata["observed_data"]["score"]``.
    """
    tree = predictive_tree(fit, thin=thin, seed=seed, log_likelihood=False)
    rep = tree["posterior_predictive"].dataset["score"]
    rep = rep.stack(sample=("chain", "draw")).transpose("sample", "obs")
    rep = rep.drop_vars(["sample", "chain", "draw"])
    return rep.assign_coords(sample=np.arange(rep.sizes["sample"])).rename("score_rep")


# ---------------------------------------------------------------- PIT
def pit_values(fit: CapabilityModel, *, thin: int | None = None) -> xr.DataArray:
    r"""Posterior predictive PIT of each observed cell, ``(obs,)``.

    :math:`\mathrm{PIT}_i = \frac1S\sum_s F\big((y_i - p_i^{(s)})/\mathrm{sd}_i^{(s)}\big)`, the
    predictive CDF at the observed score (exact per draw, no replicate counting).
    """
    tree = predictive_tree(fit, thin=thin, log_likelihood=False)
    cp = tree["cell_params"].dataset
    y = fit.idata["observed_data"].dataset["score"].to_numpy()
    z = (y - cp["mu"].to_numpy()) / cp["sd"].to_numpy()
    pit = observation_dist(fit.spec.structure).cdf(z).mean(axis=(0, 1))
    return xr.DataArray(pit, dims="obs", coords=_obs_coords(fit), name="pit")


def loo_pit_values(fit: CapabilityModel, *, thin: int | None = None) -> xr.DataArray:
    """LOO-PIT of each observed cell (:func:`arviz.loo_pit`), ``(obs,)``."""
    tree = predictive_tree(fit, thin=thin)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # Pareto k warnings: reported by loo
        out = az.loo_pit(tree, var_names=["score"])
    da = out["score"] if isinstance(out, xr.Dataset | xr.DataTree) else out
    da = xr.DataArray(np.asarray(da).reshape(-1), dims="obs", coords=_obs_coords(fit))
    return da.rename("loo_pit")


def uniformity_ks(u: ArrayLike) -> tuple[float, float]:
    """Kolmogorov-Smirnov distance of values in [0, 1] to the uniform, and its p-value."""
    u = np.asarray(u, dtype=float).ravel()
    u = u[np.isfinite(u)]
    if u.size == 0:
        return float("nan"), float("nan")
    res = stats.kstest(u, "uniform")
    return float(res.statistic), float(res.pvalue)


# ---------------------------------------------------------------- per-benchmark table
def ppc_summary(
    fit: CapabilityModel, *, ci: float = 0.9, thin: int | None = None, loo: bool = True
) -> pd.DataFrame:
    """Posterior predictive check of every benchmark, one row each.

    Columns: ``benchmark, n`` (observed cells), ``obs_mean, rep_mean, p_mean`` (observed mean,
    mean of the replicated means, posterior predictive p-value ``Pr(mean(y_rep) >= mean(y))``),
    ``obs_sd, rep_sd, p_sd`` (the same for the standard deviation across models),
    ``coverage`` (share of observed cells inside their central ``ci`` predictive interval),
    ``pit_ks`` (KS distance of the cells' PIT to the uniform) and, with ``loo``,
    ``loo_pit_ks, loo_pit_p`` (KS distance and p-value of the LOO-PIT).  Values on the
    [0, 1] scale.
    """
    if not 0.0 < ci < 1.0:
        raise UsageError(f"ci must be in (0, 1), got {ci}")
    tree = predictive_tree(fit, thin=thin, log_likelihood=loo)
    rep = tree["posterior_predictive"].dataset["score"]
    rep = rep.stack(sample=("chain", "draw")).transpose("sample", "obs").to_numpy()
    y = fit.idata["observed_data"].dataset["score"].to_numpy()
    bench = np.asarray(fit.idata["observed_data"].dataset["obs_benchmark"].to_numpy(), dtype=str)
    lo, hi = np.quantile(rep, [(1 - ci) / 2, (1 + ci) / 2], axis=0)
    inside = (y >= lo) & (y <= hi)
    pit = pit_values(fit, thin=thin).to_numpy()
    lpit = loo_pit_values(fit, thin=thin).to_numpy() if loo else None
    rows = []
    for b in fit.inputs.benchmark_ids:
        sel = bench == b
        if not sel.any():
            continue
        r, yb = rep[:, sel], y[sel]
        ddof = 1 if sel.sum() > 1 else 0
        rm, rs = r.mean(axis=1), r.std(axis=1, ddof=ddof)
        row = {
            "benchmark": b,
            "n": int(sel.sum()),
            "obs_mean": float(yb.mean()),
            "rep_mean": float(rm.mean()),
            "p_mean": float(np.mean(rm >= yb.mean())),
            "obs_sd": float(yb.std(ddof=ddof)),
            "rep_sd": float(rs.mean()),
            "p_sd": float(np.mean(rs >= yb.std(ddof=ddof))),
            "coverage": float(inside[sel].mean()),
            "pit_ks": uniformity_ks(pit[sel])[0],
        }
        if lpit is not None:
            row["loo_pit_ks"], row["loo_pit_p"] = uniformity_ks(lpit[sel])
        rows.append(row)
    out = pd.DataFrame(rows)
    out.attrs["ci"] = ci
    return out
