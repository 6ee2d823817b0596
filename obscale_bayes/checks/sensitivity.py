r"""Prior sensitivity: power-scaling diagnostics, a sweep over spec variants, and a verdict.

Power-scaling (Kallioinen et al. 2024, *Stat Comput* 34:57) perturbs the posterior
:math:`p(\theta \mid y) \propto p(\theta)^{\alpha}\, p(y \mid \theta)` around
:math:`\alpha = 1` by Pareto-smoothed importance weighting of the existing draws, separately
for the prior and for the likelihood, and reports for every posterior quantity the derivative
of its cumulative Jensen-Shannon distance with respect to :math:`\log_2 \alpha`
(``arviz.psense``, run by :mod:`obscale_bayes.checks.psense`).  Following the paper:

- prior sensitivity >= 0.05 and likelihood sensitivity >= 0.05: *prior-data conflict*;
- prior sensitivity >= 0.05, likelihood sensitivity < 0.05: *strong prior / weak likelihood*;
- otherwise: *fine*.

Only the *top-level* priors, the ones a spec file sets (population means and spreads,
loadings, intercepts, misfits, fitted floors, latent FLOPs), are power-scaled: scaling the
hierarchical terms (family efficiencies given their population) would change the structure of
the model rather than the priors (the paper's advice for hierarchical models).  Forecasts enter
as derived posterior quantities: the predictive score draws of each (family, FLOPs) target and
benchmark, computed from the same posterior draws, so the same weights apply to them.

A *sweep* refits the model under other specs (:func:`run_sweep`, through
:func:`obscale_bayes.fit.runner.run_fits`, resumable with a job store) and reports how each forecast's median and 90% interval
move relative to the base spec, in units of the base interval's width
(:func:`sweep_table`).  :func:`verdict` combines both: a conclusion is *prior-driven* when its
prior power-scaling sensitivity is at least 0.05 or when a prior-only variant moves its median
by more than 0.5 base-interval widths; otherwise it is *robust*.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import xarray as xr

from obscale_bayes.checks.psense import (
    PSENSE_THRESHOLD,
    forecast_draws,
    log_density_tree,
    psense_table,
)
from obscale_bayes.errors import UsageError
from obscale_bayes.forecast.compute import forecast_compute
from obscale_bayes.forecast.targets import quickstart_targets

if TYPE_CHECKING:  # pragma: no cover
    from obscale_bayes.data.tables import BenchmarkData
    from obscale_bayes.fit.fitted import CapabilityModel
    from obscale_bayes.fit.jobstore import JobStore
    from obscale_bayes.spec.spec import ModelSpec

#: A prior-only variant that moves a median by more than this many base-interval widths.
SHIFT_THRESHOLD = 0.5
#: Posterior quantities reported by default: everything a spec's priors act on directly.
DEFAULT_PARAMETERS = (
    "efficiency_mean",
    "efficiency_sd",
    "slope_mean",
    "slope_sd",
    "residual_sd",
    "loading_free",
    "intercept_free",
    "misfit_free",
    "logit_misfit_free",
    "floor_fitted",
)
#: Free variables whose priors a spec sets (the top level that is power-scaled).
TOP_LEVEL_PRIORS = DEFAULT_PARAMETERS + ("x_latent",)


def default_targets(data: BenchmarkData) -> list[tuple[str, float]]:
    """The quick-start forecasts: Llama-2 and Pythia at 10x their largest model, a new family."""
    return quickstart_targets(data)


def power_scaling(
    fit: CapabilityModel,
    targets: Sequence[tuple[str, float]] | None = None,
    parameters: Sequence[str] = DEFAULT_PARAMETERS,
    threshold: float = PSENSE_THRESHOLD,
    seed: int = 0,
) -> pd.DataFrame:
    """Power-scaling sensitivity of a fit's parameters and forecasts.

    Parameters
    ----------
    fit : CapabilityModel
        A fitted model (e.g. ``CapabilityModel.load("runs/default.nc")``).
    targets : list of (family, flops), optional
        Forecasts to assess (default: :func:`default_targets`); ``[]`` for none.
    parameters : sequence of str
        Posterior variables to assess (those absent from this fit's spec are skipped).
    threshold : float
        Threshold of the diagnosis.
    seed : int
        Seed of the predictive draws.

    Returns
    -------
    pandas.DataFrame
        ``kind ("parameter"|"forecast"), variable, label, target, family, flops, benchmark,
        prior, likelihood, diagnosis``; forecast rows have a ``label`` "target | benchmark".
    """
    tree = log_density_tree(fit)
    post = tree["posterior"].dataset
    names = [p for p in parameters if p in post]
    targets = default_targets(fit.data) if targets is None else list(targets)
    if targets:
        post = post.assign(forecast=forecast_draws(fit, targets, seed=seed))
        tree["posterior"] = xr.DataTree(post)
        names.append("forecast")
    if not names:
        raise UsageError("power_scaling: none of the given parameters is in this fit")
    prior_vars = [v for v in TOP_LEVEL_PRIORS if v in tree["log_prior"].dataset]
    t = psense_table(tree, names, prior_vars, threshold)
    t.insert(0, "kind", np.where(t["variable"] == "forecast", "forecast", "parameter"))
    info = {f"{f} @ {float(x):.3g} FLOPs": (f, float(x)) for f, x in targets}
    is_fc = t["kind"] == "forecast"
    t["family"] = t["target"].map(lambda s: info.get(s, (None, None))[0]) if targets else None
    t["flops"] = t["target"].map(lambda s: info.get(s, (None, np.nan))[1]) if targets else np.nan
    if targets:
        t.loc[is_fc, "label"] = t.loc[is_fc, "target"] + " | " + t.loc[is_fc, "benchmark"]
    cols = ["kind", "variable", "label", "target", "family", "flops", "benchmark"]
    for c in cols:
        if c not in t:
            t[c] = None
    return t[cols + ["prior", "likelihood", "diagnosis"]]


# ---------------------------------------------------------------------------- sweep
def _sweep_summary(
    fit: CapabilityModel, targets: Sequence[tuple[str, float]], ci: float, seed: int
) -> pd.DataFrame:
    """Worker-side post-processing of a sweep fit: its forecast table only (small)."""
    return forecast_compute(fit, list(targets), ci=ci, seed=seed).table


def variant_kind(spec: ModelSpec, base: ModelSpec) -> str:
    """``"base"``, ``"prior"`` (same structure, other priors) or ``"structure"``."""
    if spec.structure == base.structure:
        return "base" if spec.priors == base.priors else "prior"
    return "structure"


def sweep_specs(
    variants: Iterable[str | ModelSpec] | None = None,
    prior_overrides: dict[str, dict[str, dict[str, Any]]] | None = None,
    base: ModelSpec | str = "default",
) -> dict[str, ModelSpec]:
    """The specs of a sweep, by name: ``variants`` (default: every spec in ``models/``) and
    ``base.with_overrides(priors=...)`` for each named entry of ``prior_overrides``."""
    from obscale_bayes.spec.spec import ModelSpec, available_specs, load_spec

    base = base if isinstance(base, ModelSpec) else load_spec(base)
    out: dict[str, ModelSpec] = {}
    for v in available_specs() if variants is None else variants:
        s = v if isinstance(v, ModelSpec) else load_spec(v)
        out[s.name] = s
    for name, pri in (prior_overrides or {}).items():
        if name in out:
            raise UsageError(f"prior override '{name}' has the name of a variant; rename it")
        out[name] = base.with_overrides(priors=pri)
    return out


def sweep_table(
    forecasts: dict[str, pd.DataFrame], base: str, kinds: dict[str, str] | None = None
) -> pd.DataFrame:
    r"""How each variant's forecasts move relative to the base variant's.

    For variant :math:`v`, target and benchmark, with base median :math:`m_0` and base
    interval :math:`[l_0, u_0]`:

    .. math::

        \mathrm{shift} = \frac{m_v - m_0}{u_0 - l_0}, \qquad
        \mathrm{width\_ratio} = \frac{u_v - l_v}{u_0 - l_0}

    Parameters
    ----------
    forecasts : dict of str to DataFrame
        Forecast tables (``model, family, flops, benchmark, median, lower, upper``) by variant.
    base : str
        Key of the base variant.
    kinds : dict, optional
        Kind of each variant (``"base"``, ``"prior"``, ``"structure"``).

    Returns
    -------
    pandas.DataFrame
        ``variant, kind, target, family, flops, benchmark, median, lower, upper, base_median,
        base_lower, base_upper, shift, width_ratio`` (base rows included: shift 0, ratio 1).
    """
    if base not in forecasts:
        raise UsageError(f"sweep_table: base variant '{base}' has no forecasts")
    key = ["model", "benchmark"]
    b = forecasts[base][key + ["median", "lower", "upper"]].rename(
        columns={"median": "base_median", "lower": "base_lower", "upper": "base_upper"}
    )
    parts = []
    for name, t in forecasts.items():
        m = t[key + ["family", "flops", "median", "lower", "upper"]].merge(b, on=key, how="inner")
        width = m["base_upper"] - m["base_lower"]
        # a degenerate base interval (all draws at a bound) has no scale to measure shifts by
        width = width.where(width > 0)
        m["shift"] = (m["median"] - m["base_median"]) / width
        m["width_ratio"] = (m["upper"] - m["lower"]) / width
        m.insert(0, "variant", name)
        m.insert(1, "kind", (kinds or {}).get(name, "base" if name == base else "variant"))
        parts.append(m)
    out = pd.concat(parts, ignore_index=True).rename(columns={"model": "target"})
    cols = ["variant", "kind", "target", "family", "flops", "benchmark", "median", "lower",
            "upper", "base_median", "base_lower", "base_upper", "shift", "width_ratio"]  # fmt: skip
    return out[cols]


def run_sweep(
    data: BenchmarkData,
    variants: Iterable[str | ModelSpec] | None = None,
    prior_overrides: dict[str, dict[str, dict[str, Any]]] | None = None,
    *,
    base: ModelSpec | str = "default",
    base_fit: CapabilityModel | None = None,
    targets: Sequence[tuple[str, float]] | None = None,
    ci: float = 0.9,
    fit_kwargs: dict[str, Any] | None = None,
    seed: int = 0,
    executor: Any = None,
    progress: bool = True,
    store: JobStore | str | None = None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Refit ``data`` under each variant (in parallel) and tabulate how the forecasts move.

    Parameters
    ----------
    data : BenchmarkData
        Training table of every fit.
    variants, prior_overrides, base
        See :func:`sweep_specs`; the base spec is always part of the sweep.
    base_fit : CapabilityModel, optional
        An existing fit of ``base`` on ``data`` (e.g. the loaded ``runs/default.nc``): used as
        the reference instead of refitting the base spec.
    targets : list of (family, flops), optional
        Default: :func:`default_targets`.
    ci : float
        Central interval probability (0.9).
    fit_kwargs : dict, optional
        Passed to every fit (``draws``, ``tune``, ``chains``); ``seed`` is set from ``seed``.
    seed : int
        Seed of every fit and forecast.
    executor : Executor or dask Client, optional
        Where to run the fits (:func:`obscale_bayes.fit.runner.run_fits`).
    progress : bool
        Log one line per finished fit.
    store : JobStore or folder path, optional
        Keep every finished fit there and skip those already kept, so that a killed sweep run
        again resumes (:mod:`obscale_bayes.fit.jobstore`); None = keep nothing.

    Returns
    -------
    table : pandas.DataFrame
        :func:`sweep_table` with ``converged`` and ``max_rhat`` columns per variant.
    diagnostics : dict of str to Diagnostics
        Convergence diagnostics of every fit.
    """
    from obscale_bayes.fit.runner import FitJob, run_fits
    from obscale_bayes.spec.spec import ModelSpec, load_spec

    base = base if isinstance(base, ModelSpec) else load_spec(base)
    specs = sweep_specs(variants, prior_overrides, base)
    targets = default_targets(data) if targets is None else list(targets)
    kinds = {n: variant_kind(s, base) for n, s in specs.items()}
    kinds[base.name] = "base"
    specs.setdefault(base.name, base)
    kw = {**(fit_kwargs or {}), "seed": seed}
    post = partial(_sweep_summary, targets=targets, ci=ci, seed=seed)
    forecasts: dict[str, pd.DataFrame] = {}
    diags: dict[str, Any] = {}
    if base_fit is not None:
        forecasts[base.name] = _sweep_summary(base_fit, targets, ci, seed)
        diags[base.name] = base_fit.diagnostics
    jobs = [FitJob(n, data, s, kw, post) for n, s in specs.items() if n not in forecasts]
    for name, res in run_fits(jobs, executor, progress=progress, store=store).items():
        forecasts[name] = res.value
        diags[name] = res.diagnostics
    order = [base.name] + [n for n in specs if n != base.name]
    table = sweep_table({n: forecasts[n] for n in order}, base.name, kinds)
    table["converged"] = table["variant"].map(lambda n: bool(diags[n].passed))
    table["max_rhat"] = table["variant"].map(lambda n: float(diags[n].max_rhat))
    return table, diags


# ---------------------------------------------------------------------------- verdict
def verdict(
    psense: pd.DataFrame | None,
    sweep: pd.DataFrame | None = None,
    threshold: float = PSENSE_THRESHOLD,
    shift_threshold: float = SHIFT_THRESHOLD,
) -> pd.DataFrame:
    """Which conclusions are prior-driven and which are robust.

    A conclusion (a parameter element, or a forecast's target and benchmark) is
    **prior-driven** when its prior power-scaling sensitivity is >= ``threshold`` or when a
    prior-only sweep variant (``kind == "prior"``) moves its median by more than
    ``shift_threshold`` base-interval widths; otherwise it is **robust**.  Structural variants
    (other K, likelihood, pooling) are reported as ``max_abs_shift_structure`` but do not make a
    conclusion prior-driven: they change the model, not the prior.

    Returns
    -------
    pandas.DataFrame
        ``kind, label, target, benchmark, prior, likelihood, diagnosis, max_abs_shift_prior,
        worst_prior_variant, max_abs_shift_structure, verdict, reason``.
    """
    if psense is None and sweep is None:
        raise UsageError("verdict: give power-scaling results, a sweep table, or both")
    cols = ["kind", "label", "target", "benchmark", "prior", "likelihood", "diagnosis"]
    if psense is not None:
        v = psense[cols].copy()
    else:
        keys = sweep[["target", "benchmark"]].drop_duplicates()
        v = keys.assign(kind="forecast", label=keys["target"] + " | " + keys["benchmark"])
        v = v.assign(prior=np.nan, likelihood=np.nan, diagnosis=None)[cols]
    v["max_abs_shift_prior"] = np.nan
    v["worst_prior_variant"] = None
    v["max_abs_shift_structure"] = np.nan
    if sweep is not None:
        s = sweep.assign(abs_shift=sweep["shift"].abs())
        for kind, col in (
            ("prior", "max_abs_shift_prior"),
            ("structure", "max_abs_shift_structure"),
        ):
            sub = s[s["kind"] == kind].dropna(subset=["abs_shift"])
            if sub.empty:
                continue
            top = sub.loc[sub.groupby(["target", "benchmark"])["abs_shift"].idxmax()]
            top = top.set_index(["target", "benchmark"])
            idx = pd.MultiIndex.from_frame(v[["target", "benchmark"]])
            v[col] = top["abs_shift"].reindex(idx).to_numpy()
            if kind == "prior":
                v["worst_prior_variant"] = top["variant"].reindex(idx).to_numpy()
    by_ps = v["prior"].fillna(0) >= threshold
    by_shift = v["max_abs_shift_prior"].fillna(0) > shift_threshold
    v["verdict"] = np.where(by_ps | by_shift, "prior-driven", "robust")
    reasons = []
    for p, sh, var, a, b in zip(v["prior"], v["max_abs_shift_prior"], v["worst_prior_variant"],
                                by_ps, by_shift, strict=True):  # fmt: skip
        r = []
        if a:
            r.append(f"prior sensitivity {p:.3f} >= {threshold}")
        if b:
            r.append(f"median moves {sh:.2f} interval widths under '{var}'")
        reasons.append("; ".join(r))
    v["reason"] = reasons
    return v.reset_index(drop=True)
