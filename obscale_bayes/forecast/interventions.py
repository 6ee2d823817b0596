r"""Post-training interventions: the forecast effect of chain-of-thought, self-consistency, ...

An intervention (:mod:`obscale_bayes.forecast.intervention_pairs`) is a pair of task variants
that both enter the fit as outputs of the same capabilities: a *treated* variant (e.g. GSM8K with 8-shot chain-of-thought) and a *control*
variant (GSM8K plain 5-shot).  Its effect for a model with capabilities :math:`\theta` is the
difference of the two expected scores, computed for every posterior draw :math:`s`:

.. math::

    \Delta^{(s)}(\theta) = p^{(s)}_T(\theta) - p^{(s)}_C(\theta), \qquad
    p^{(s)}_j(\theta) = g^{(s)}_j + (1 - g^{(s)}_j)\,
        \mathrm{sigmoid}(\alpha^{(s)}_j + \lambda^{(s)}_j \cdot \theta)

Both variants see the *same* capability draw, so what is shared between them (how strong the
model is) cancels in the difference and only what differs (the two loadings, intercepts and
floors) is left: the band is the posterior uncertainty of the effect itself.
``new_evaluation=True`` instead differences two fresh evaluations, each with its benchmark's
sampling noise and misfit (the spread of an effect *measured* on one model).

Two x-axes are offered:

* **compute** (:func:`effect_vs_compute`): a model of a given family (a family the fit has not
  seen draws from the population) trained with FLOPs :math:`F`, capabilities
  :math:`\theta = a_f + b_f x` plus, by default, the model's own residual
  :math:`e \sim N(0, \sigma^e)` (a new model is not the family average).  Each row also reports
  the general-capability coordinate of that model: its median expected score on the first
  factor's anchor benchmark (MMLU in the default spec).
* **capability** (:func:`effect_vs_capability`): a grid of general capability, expressed as the
  expected score on the first factor's anchor (:math:`\theta_1` is that anchor's logit above its
  floor, so the two are one-to-one), with the other capabilities at their conditional mean given
  :math:`\theta_1`.  The conditional mean is the least-squares line of :math:`\theta_k` on
  :math:`\theta_1` across the fitted models, per posterior draw -- "a typical model at this
  general capability".  ``spread=True`` adds the scatter about that line (the effect for a
  randomly chosen model at that capability, rather than for the typical one).

Everything is a function of the posterior draws (NumPy); nothing is refitted.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from obscale_bayes.errors import UsageError
from obscale_bayes.forecast.conditional import forecast_from_scores, new_model_x
from obscale_bayes.forecast.intervention_pairs import Intervention, get_intervention
from obscale_bayes.model.draws import PosteriorArrays, compute_axis_draws, family_terms
from obscale_bayes.model.equations import (
    compute_axis_np,
    compute_shift_np,
    floored_sigmoid_np,
    logit_np,
)
from obscale_bayes.validation import check_ci, check_flops

if TYPE_CHECKING:  # pragma: no cover
    from obscale_bayes.fit.fitted import CapabilityModel

__all__ = [
    "capability_draws",
    "effect_from_scores",
    "effect_vs_capability",
    "effect_vs_compute",
    "summarize_effect",
]


def _pair_scores(
    pa: PosteriorArrays,
    theta: np.ndarray,
    iv: Intervention,
    rng: np.random.Generator | None,
    offset: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Treated and control scores (S, ...) in metric units: expected, or fresh evaluations."""
    p, y = pa.scores(theta, rng, offset)
    v = pa.to_metric(y if rng is not None else p)
    j_t, j_c = pa.benchmark_ids.index(iv.treated), pa.benchmark_ids.index(iv.control)
    return v[..., j_t], v[..., j_c]


def summarize_effect(effect: np.ndarray, ci: float = 0.9) -> pd.DataFrame:
    """Posterior summary of effect draws ``(n_draws, n_points)`` per point.

    Columns ``mean, median, lower, upper, p_positive`` (``lower``/``upper``: the central ``ci``
    interval; ``p_positive``: the share of draws above 0).
    """
    ci = check_ci(ci)
    d = np.asarray(effect, dtype=float)
    if d.ndim != 2 or d.shape[0] < 2:
        raise UsageError("summarize_effect: effect draws must be (n_draws >= 2, n_points)")
    lo, med, hi = np.quantile(d, [(1 - ci) / 2, 0.5, (1 + ci) / 2], axis=0)
    return pd.DataFrame(
        {
            "mean": d.mean(axis=0),
            "median": med,
            "lower": lo,
            "upper": hi,
            "p_positive": (d > 0).mean(axis=0),
        }  # fmt: skip
    )


def _table(
    pa: PosteriorArrays,
    theta: np.ndarray,
    iv: Intervention,
    ci: float,
    rng: np.random.Generator,
    new_evaluation: bool,
    offset: np.ndarray | None = None,
) -> pd.DataFrame:
    t, c = _pair_scores(pa, theta, iv, rng if new_evaluation else None, offset)
    out = summarize_effect(t - c, ci)
    out["control"] = np.median(c, axis=0)
    out["treated"] = np.median(t, axis=0)
    return out


def _general_score(pa: PosteriorArrays, theta1: np.ndarray, factor: int) -> np.ndarray:
    """Expected score on factor ``factor``'s anchor (metric units) for its logit ``theta1``."""
    j = _anchor_index(pa, factor)
    g = pa.floor[:, j].reshape((-1,) + (1,) * (theta1.ndim - 1))
    # an anchor's loading row is the unit vector and its intercept 0: eta is theta1 itself
    p = floored_sigmoid_np(theta1, g)
    return pa.metric_min[j] + p * (pa.metric_max[j] - pa.metric_min[j])


def _anchor_index(pa: PosteriorArrays, factor: int) -> int:
    # The factor ids are the anchors' benchmark ids (see obscale_bayes.model.build).
    return pa.benchmark_ids.index(pa.factor_ids[factor])


def _pa(fit: CapabilityModel | PosteriorArrays) -> PosteriorArrays:
    return fit if isinstance(fit, PosteriorArrays) else fit.posterior


def effect_vs_compute(
    fit: CapabilityModel | PosteriorArrays,
    intervention: str | Intervention | tuple[str, str],
    family: str,
    flops: Sequence[float] | np.ndarray,
    *,
    ci: float = 0.9,
    residual: bool = True,
    new_evaluation: bool = False,
    seed: int = 0,
) -> pd.DataFrame:
    """The intervention's effect along a family's compute path.

    Parameters
    ----------
    fit : CapabilityModel or PosteriorArrays
        A fit whose outputs include both variants.
    intervention : str, Intervention or (treated, control)
        A name from :data:`~obscale_bayes.forecast.intervention_pairs.INTERVENTIONS` or the two
        benchmark ids.
    family : str
        A fitted family, or a new name (its efficiency and slope are drawn from the population).
    flops : sequence of float
        Training FLOPs (absolute, e.g. ``1e24``).
    ci : float
        Central interval probability of ``lower``/``upper``.
    residual : bool
        Include the new model's own capability residual (``True``: a new model of the family;
        ``False``: the family's mean model).
    new_evaluation : bool
        Difference fresh evaluations (sampling noise + misfit of both benchmarks) instead of
        expected scores.
    seed : int
        Seed of the population, residual and noise draws.

    Returns
    -------
    pandas.DataFrame
        One row per FLOPs value: ``intervention, family, flops, log10_flops, capability`` (the
        median expected score on the first factor's anchor), ``mean, median, lower, upper,
        p_positive`` (of the effect), ``control, treated`` (median scores of each variant),
        ``ci``.
    """
    pa = _pa(fit)
    iv = get_intervention(intervention, pa.benchmark_ids)
    ci = check_ci(ci)
    f = np.array([check_flops(v) for v in np.atleast_1d(np.asarray(flops, dtype=float))])
    if f.size == 0:
        raise UsageError("effect_vs_compute: give at least one FLOPs value")
    rng = np.random.default_rng(seed)
    a, b = family_terms(pa, str(family), rng)  # (S, K): one family draw shared along the path
    x = compute_axis_np(f, pa.x0)
    theta = a[:, None, :] + b[:, None, :] * x[None, :, None]  # (S, N, K)
    if residual:
        theta = theta + pa.residual_sd[:, None, :] * rng.standard_normal(theta.shape)
    offset = pa.offsets_at(pa.offset_of(str(family), rng), x)  # (S, N, J) or None
    out = _table(pa, theta, iv, ci, rng, new_evaluation, offset)
    general = np.median(_general_score(pa, theta[..., 0], 0), axis=0)
    head = pd.DataFrame(
        {
            "intervention": iv.name,
            "family": str(family),
            "flops": f,
            "log10_flops": np.log10(f),
            "capability": general,
        }  # fmt: skip
    )
    return pd.concat([head, out], axis=1).assign(ci=ci)


def capability_draws(fit: CapabilityModel) -> np.ndarray:
    """The fitted models' capability draws ``(S, M, K)``, in the sample order of ``fit.posterior``."""
    post = fit.idata["posterior"].dataset["capability"].stack(sample=("chain", "draw"))
    return post.transpose("sample", "model", "factor").to_numpy()


def _conditional_line(cap: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per draw, the least-squares line of theta_k on theta_1 across models.

    Returns intercepts and slopes ``(S, K)`` (1 and 0 for factor 1 itself) and the residual sd
    ``(S, K)`` about the line.
    """
    t1 = cap[:, :, :1]  # (S, M, 1)
    d1 = t1 - t1.mean(axis=1, keepdims=True)
    dk = cap - cap.mean(axis=1, keepdims=True)
    slope = (d1 * dk).sum(axis=1) / (d1**2).sum(axis=1)  # (S, K)
    inter = cap.mean(axis=1) - slope * t1.mean(axis=1)
    resid = dk - slope[:, None, :] * d1
    n = cap.shape[1]
    sd = np.sqrt((resid**2).sum(axis=1) / max(n - 2, 1))
    return inter, slope, sd


def effect_vs_capability(
    fit: CapabilityModel,
    intervention: str | Intervention | tuple[str, str],
    grid: Sequence[float] | np.ndarray | None = None,
    *,
    ci: float = 0.9,
    spread: bool = False,
    new_evaluation: bool = False,
    seed: int = 0,
    capability: np.ndarray | None = None,
    pa: PosteriorArrays | None = None,
) -> pd.DataFrame:
    """The intervention's effect as a function of general capability.

    Parameters
    ----------
    fit : CapabilityModel
        A fit whose outputs include both variants (``None`` allowed when ``capability`` and
        ``pa`` are given).
    intervention : str, Intervention or (treated, control)
    grid : sequence of float, optional
        Expected scores on the first factor's anchor benchmark (metric units, e.g. MMLU
        accuracy), strictly between its floor and its maximum.  Default: 12 points from the
        5th to the 99th percentile of the fitted models' expected anchor scores, widened to
        0.95 of the range (to show the extrapolation).
    ci : float
        Central interval probability.
    spread : bool
        Add the scatter of the other capabilities about their conditional mean.
    new_evaluation : bool
        Difference fresh evaluations instead of expected scores.
    seed : int
        Seed of the spread and noise draws.
    capability, pa : optional
        Capability draws ``(S, M, K)`` and posterior arrays to use instead of ``fit``'s.

    Returns
    -------
    pandas.DataFrame
        One row per grid point: ``intervention, capability`` (the grid value), ``anchor`` (its
        benchmark), ``theta`` (median logit on that anchor), ``mean, median, lower, upper,
        p_positive, control, treated, ci``.
    """
    pa = pa if pa is not None else fit.posterior
    cap = capability if capability is not None else capability_draws(fit)
    iv = get_intervention(intervention, pa.benchmark_ids)
    ci = check_ci(ci)
    if cap.shape[0] != pa.n_samples or cap.shape[2] != len(pa.factor_ids):
        raise UsageError("effect_vs_capability: capability draws do not match the posterior")
    j = _anchor_index(pa, 0)
    lo_m, hi_m = pa.metric_min[j], pa.metric_max[j]
    floor = lo_m + pa.floor[:, j] * (hi_m - lo_m)  # (S,)
    if grid is None:
        seen = np.median(_general_score(pa, cap[..., 0], 0), axis=0)
        top = max(np.quantile(seen, 0.99), lo_m + 0.95 * (hi_m - lo_m))
        grid = np.linspace(np.quantile(seen, 0.05), top, 12)
    v = np.atleast_1d(np.asarray(grid, dtype=float))
    if v.size == 0 or not np.isfinite(v).all():
        raise UsageError("effect_vs_capability: the grid must be finite numbers")
    if (v <= floor.max()).any() or (v >= hi_m).any():
        raise UsageError(
            f"effect_vs_capability: grid values must lie strictly between the floor of "
            f"{pa.factor_ids[0]} ({floor.max():.3g}) and its maximum ({hi_m:.3g})"
        )
    p01 = (v[None, :] - lo_m) / (hi_m - lo_m)
    g01 = pa.floor[:, j][:, None]
    theta1 = logit_np((p01 - g01) / (1.0 - g01))  # (S, N)
    k = cap.shape[2]
    x_fit = None
    if pa.benchmark_slope is not None:
        # benchmark slopes: the compute axis x joins the other coordinates on theta_1's line
        x_fit = compute_axis_draws(fit.idata) if fit is not None else None
        if x_fit is None or x_fit.shape != cap.shape[:2]:
            raise UsageError("effect_vs_capability: the spec has benchmark slopes; give the fit")
        cap = np.concatenate([cap, x_fit[..., None]], axis=2)
    inter, slope, sd = _conditional_line(cap)
    theta = inter[:, None, :] + slope[:, None, :] * theta1[..., None]  # (S, N, K [+ 1])
    theta[..., 0] = theta1
    rng = np.random.default_rng(seed)
    if spread:
        theta[..., 1:] += sd[:, None, 1:] * rng.standard_normal(theta[..., 1:].shape)
    offset = None
    if x_fit is not None:
        offset = compute_shift_np(pa.benchmark_slope[:, None, :], theta[..., k])  # (S, N, J)
        theta = theta[..., :k]
    out = _table(pa, theta, iv, ci, rng, new_evaluation, offset)
    head = pd.DataFrame(
        {
            "intervention": iv.name,
            "capability": v,
            "anchor": pa.factor_ids[0],
            "theta": np.median(theta1, axis=0),
        }  # fmt: skip
    )
    return pd.concat([head, out], axis=1).assign(ci=ci)


def effect_from_scores(
    fit: CapabilityModel,
    new,
    intervention: str | Intervention | tuple[str, str],
    *,
    ci: float = 0.9,
    new_evaluation: bool = True,
    observed: pd.Series | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """The effect for new models known by some of their scores (e.g. their standard benchmarks).

    Each model's capabilities are conditioned on its given scores
    (:meth:`~obscale_bayes.fit.CapabilityModel.forecast_from_scores`); the effect is then
    differenced per draw as in :func:`effect_vs_compute`.  ``new_evaluation=True`` (default)
    compares with an effect *measured* on that model (two noisy evaluations).

    Parameters
    ----------
    new : BenchmarkData
        The models and their given scores (not the two variants: those are what is forecast).
    observed : pandas.Series, optional
        Measured effects indexed by model; adds ``observed`` and ``covered`` columns.

    Returns
    -------
    pandas.DataFrame
        ``intervention, model, family, mean, median, lower, upper, p_positive, control,
        treated, ci`` (+ ``observed, covered``).
    """
    pa = fit.posterior
    iv = get_intervention(intervention, pa.benchmark_ids)
    ci = check_ci(ci)
    given = set(new.scores["benchmark"]) & set(iv.benchmarks)
    if given:
        raise UsageError(
            f"effect_from_scores: the new models' scores include {sorted(given)[0]!r}; "
            "drop the two variants, they are what is forecast"
        )
    fc = forecast_from_scores(fit, new, ci=ci, seed=seed)
    theta = fc.capability.transpose("sample", "model", "factor").to_numpy()
    rng = np.random.default_rng(seed + 1)
    models = [str(m) for m in fc.capability["model"].values]
    fam = new.models.set_index("model")["family"]
    offset = pa.offsets_of([fam.get(m) for m in models], rng)
    if pa.benchmark_slope is not None:  # c_j x per model (a prior draw of x where unknown)
        rows = new.models.set_index("model")
        xs = [new_model_x(fit, float(rows.at[m, "flops_1e21"]), float(rows.at[m, "params_b"]))
              for m in models]  # fmt: skip
        shift = np.stack([compute_shift_np(pa.benchmark_slope, mx + sx * rng.standard_normal(
            pa.n_samples)) for mx, sx in xs], axis=1)  # fmt: skip
        offset = shift if offset is None else offset + shift
    out = _table(pa, theta, iv, ci, rng, new_evaluation, offset)
    out.insert(0, "family", [fam.get(m) for m in models])
    out.insert(0, "model", models)
    out.insert(0, "intervention", iv.name)
    out["ci"] = ci
    if observed is not None:
        obs = observed.reindex(models).to_numpy(dtype=float)
        out["observed"] = obs
        covered = (out["lower"] <= obs) & (obs <= out["upper"])
        out["covered"] = np.where(np.isfinite(obs), covered.astype(float), np.nan)
    return out
