r"""Power-scaling sensitivity (Kallioinen et al. 2024, *Stat Comput* 34:57) of posterior quantities.

:func:`psense_table` runs ``arviz.psense`` on a tree with ``log_prior`` and ``log_likelihood``
groups and returns one tidy row per element with its diagnosis (:func:`diagnose`);
:func:`log_density_tree` adds those groups to a fit's posterior, and :func:`forecast_draws`
turns forecasts into a posterior quantity aligned draw by draw.  The analysis built on these
(parameters and forecasts of a fit, the variant sweep, the verdict) is
:mod:`obscale_bayes.checks.sensitivity`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import pandas as pd
import xarray as xr

from obscale_bayes.forecast.compute import forecast_compute

if TYPE_CHECKING:  # pragma: no cover
    from obscale_bayes.fit.fitted import CapabilityModel

__all__ = ["DIAGNOSES", "PSENSE_THRESHOLD", "diagnose", "forecast_draws", "log_density_tree",
           "psense_table"]  # fmt: skip

#: psense threshold of Kallioinen et al. (2024) and ArviZ.
PSENSE_THRESHOLD = 0.05
DIAGNOSES = ("prior-data conflict", "strong prior / weak likelihood", "fine")


def diagnose(prior: float, likelihood: float, threshold: float = PSENSE_THRESHOLD) -> str:
    """The power-scaling diagnosis of one quantity (rule of the module docstring)."""
    if prior >= threshold and likelihood >= threshold:
        return DIAGNOSES[0]
    if prior >= threshold:
        return DIAGNOSES[1]
    return DIAGNOSES[2]


def _tidy(ds: xr.Dataset, value: str) -> pd.DataFrame:
    """One row per element of every variable: ``variable, label, <coords...>, value``."""
    rows = []
    for name, da in ds.data_vars.items():
        dims = list(da.dims)
        if dims:
            df = da.to_dataframe(name=value).reset_index()[dims + [value]]
        else:
            df = pd.DataFrame({value: [float(da)]})
        df.insert(0, "variable", name)
        if dims:
            lab = df[dims].astype(str).agg(", ".join, axis=1)
            df.insert(1, "label", name + "[" + lab + "]")
        else:
            df.insert(1, "label", name)
        rows.append(df)
    return pd.concat(rows, ignore_index=True)


def psense_table(
    tree: xr.DataTree,
    var_names: Sequence[str] | None = None,
    prior_var_names: Sequence[str] | None = None,
    threshold: float = PSENSE_THRESHOLD,
) -> pd.DataFrame:
    """Prior and likelihood power-scaling sensitivity of posterior quantities, one row each.

    Parameters
    ----------
    tree : xarray.DataTree
        With ``posterior``, ``log_prior`` and ``log_likelihood`` groups (dims chain, draw).
    var_names : sequence of str, optional
        Posterior variables to report (default: all).
    prior_var_names : sequence of str, optional
        ``log_prior`` variables to power-scale (default: all of them).
    threshold : float
        Threshold of the diagnosis.

    Returns
    -------
    pandas.DataFrame
        ``variable, label, <coordinate columns>, prior, likelihood, diagnosis``.
    """
    import arviz as az

    vn = list(var_names) if var_names is not None else None
    pv = list(prior_var_names) if prior_var_names is not None else None
    pri = az.psense(tree, var_names=vn, group="prior", group_var_names=pv)
    lik = az.psense(tree, var_names=vn, group="likelihood")
    out = _tidy(pri, "prior")
    out["likelihood"] = _tidy(lik, "likelihood")["likelihood"].to_numpy()
    out["diagnosis"] = [
        diagnose(p, q, threshold) for p, q in zip(out["prior"], out["likelihood"], strict=True)
    ]
    return out


def log_density_tree(fit: CapabilityModel) -> xr.DataTree:
    """The fit's posterior with ``log_prior`` and ``log_likelihood`` groups added.

    The model is rebuilt from the fit's data and spec; densities are on the constrained scale
    (no Jacobian), as power-scaling of the prior requires.
    """
    import pymc as pm

    from obscale_bayes.model.build import model_for_fit

    model = model_for_fit(fit)
    post = fit.idata["posterior"].dataset
    base = xr.DataTree.from_dict({"posterior": post})
    kw = {"model": model, "extend_inferencedata": False, "progressbar": False}
    lp = pm.stats.compute_log_prior(base, **kw)
    ll = pm.stats.compute_log_likelihood(base, **kw)
    return xr.DataTree.from_dict({"posterior": post, "log_prior": lp, "log_likelihood": ll})


def forecast_draws(
    fit: CapabilityModel, targets: Sequence[tuple[str, float]], seed: int = 0
) -> xr.DataArray:
    """Predictive score draws of ``targets`` as a posterior quantity ``(chain, draw, target,
    benchmark)``, aligned draw by draw with the fit's posterior."""
    fc = forecast_compute(fit, list(targets), ci=0.9, seed=seed)
    post = fit.idata["posterior"].dataset
    n_c, n_d = post.sizes["chain"], post.sizes["draw"]
    y = fc.draws.transpose("sample", "model", "benchmark").to_numpy()
    # forecast draws follow posterior.stack(sample=("chain", "draw")): chain-major
    y = y.reshape(n_c, n_d, *y.shape[1:])
    return xr.DataArray(
        y,
        dims=("chain", "draw", "target", "benchmark"),
        coords={
            "chain": post["chain"].values,
            "draw": post["draw"].values,
            "target": list(fc.draws["model"].values),
            "benchmark": list(fc.draws["benchmark"].values),
        },
        name="forecast",
    )
