"""Scoring a parameter-recovery check: how often a fit's intervals cover the simulated truth.

Simulate a table with :func:`~obscale_bayes.model.simulate.simulate` (which returns the true
parameters with the names and coordinates of a fit's posterior), fit it, then
:func:`interval_coverage` counts the true values inside central posterior intervals per
parameter group, and :func:`binomial_band` gives the range a calibrated fit's coverage falls in.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

__all__ = ["RECOVERY_GROUPS", "binomial_band", "interval_coverage"]

#: Parameter groups a recovery check reports by default (``loading_free`` = non-anchor loadings).
RECOVERY_GROUPS = (
    "capability",
    "efficiency",
    "loading_free",
    "slope",
    "intercept_free",
    "misfit_free",
    "logit_misfit_free",
    "x_latent",
)


def interval_coverage(
    posterior: xr.Dataset | xr.DataTree,
    truth: xr.Dataset,
    var_names: tuple[str, ...] | list[str] = RECOVERY_GROUPS,
    probs: tuple[float, ...] = (0.5, 0.8, 0.9, 0.95),
) -> pd.DataFrame:
    """How often the true values lie inside central posterior intervals.

    Parameters
    ----------
    posterior : xarray.Dataset or DataTree
        A fit's posterior (dims ``chain, draw, ...``) or a tree with a ``posterior`` group.
    truth : xarray.Dataset
        The truth returned by :func:`~obscale_bayes.model.simulate.simulate` (aligned on coordinates by name).
    var_names : sequence of str
        Parameter groups; names missing from the posterior or truth are skipped.
    probs : sequence of float
        Interval probabilities; each interval is the equal-tailed (central) one, from the
        ``(1 - prob) / 2`` and ``(1 + prob) / 2`` quantiles of the draws.

    Returns
    -------
    pandas.DataFrame
        One row per (group, prob): ``group, prob, n, covered, coverage``.
    """
    if isinstance(posterior, xr.DataTree):
        posterior = posterior["posterior"].to_dataset()
    rows = []
    for name in var_names:
        if name not in posterior or name not in truth:
            continue
        t = truth[name]
        if t.size == 0:
            continue
        draws = posterior[name].stack(sample=("chain", "draw"))
        draws = draws.sel({d: t[d].values for d in t.dims}).transpose("sample", *t.dims).to_numpy()
        tv = t.to_numpy()
        for q in probs:
            lo, hi = np.quantile(draws, [(1 - q) / 2, (1 + q) / 2], axis=0)
            inside = (tv >= lo) & (tv <= hi)
            rows.append(
                {
                    "group": name,
                    "prob": float(q),
                    "n": int(tv.size),
                    "covered": int(inside.sum()),
                    "coverage": float(inside.mean()),
                }
            )
    return pd.DataFrame(rows, columns=["group", "prob", "n", "covered", "coverage"])


def binomial_band(n: int, prob: float, z: float = 3.0) -> tuple[float, float]:
    """``prob -/+ z`` binomial standard deviations of a coverage fraction over ``n`` values.

    If the ``n`` true values were independent and the intervals exactly calibrated, the number
    covered would be Binomial(n, prob), with sd ``sqrt(prob (1 - prob) / n)`` of the fraction.
    """
    sd = float(np.sqrt(prob * (1.0 - prob) / n))
    return max(0.0, prob - z * sd), min(1.0, prob + z * sd)
