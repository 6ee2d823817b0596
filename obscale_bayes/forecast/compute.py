r"""Posterior predictive forecasts from compute, computed from posterior draws in NumPy.

For a model of family :math:`f` trained with FLOPs :math:`F`, each posterior draw :math:`s` gives

.. math::

    \theta^{(s)} &= a^{(s)}_f + b^{(s)}_f x + \sigma^{e(s)} \odot \varepsilon, \quad
        x = \log_{10}(F/10^{21}) - x_0 \\
    p^{(s)}_j &= g^{(s)}_j + (1 - g^{(s)}_j)\,\mathrm{sigmoid}(\alpha^{(s)}_j + \lambda^{(s)}_j\cdot\theta^{(s)}) \\
    y^{(s)}_j &= p^{(s)}_j + \mathrm{sd}_j(p^{(s)}_j)\,\varepsilon'

A family the fit has not seen draws :math:`a_f, b_f` from the population
:math:`N(\mu^a, \sigma^a)`, :math:`N(\mu^b, \sigma^b)`.  ``y`` is the score a new evaluation would
report (it includes the benchmark's sampling noise and misfit), clipped to the metric range.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import xarray as xr

from obscale_bayes.validation import check_flops
from obscale_bayes.model.equations import bounded_np, floored_sigmoid_np, noise_sd_np


def linear_predictor(
    theta: np.ndarray, intercept: np.ndarray, loading: np.ndarray, bounded: np.ndarray | None
) -> np.ndarray:
    """``eta_j = alpha_j + lambda_j . theta`` per draw, or ``lambda_j . bounded(theta)`` where
    ``bounded[j]``: theta (S, ..., K), intercept broadcastable to (S, ..., J), loading (S, J, K).
    """
    eta = intercept + np.einsum("s...k,sjk->s...j", theta, loading)
    if bounded is not None and bounded.any():
        eta_b = intercept + np.einsum("s...k,sjk->s...j", bounded_np(theta), loading)
        eta = np.where(bounded, eta_b, eta)
    return eta


@dataclass(frozen=True)
class PosteriorArrays:
    """Posterior draws stacked into a ``sample`` axis (S draws), as NumPy arrays."""

    family_ids: list[str]
    benchmark_ids: list[str]
    factor_ids: list[str]
    efficiency: np.ndarray  # (S, F, K)
    slope: np.ndarray  # (S, F, K)
    efficiency_mean: np.ndarray  # (S, K)
    efficiency_sd: np.ndarray  # (S, K)
    slope_mean: np.ndarray  # (S, K)
    slope_sd: np.ndarray  # (S, K)   zeros when the spec has no family slopes
    residual_sd: np.ndarray  # (S, K)
    loading: np.ndarray  # (S, J, K)
    intercept: np.ndarray  # (S, J)
    floor: np.ndarray  # (S, J)
    misfit: np.ndarray  # (S, J)
    logit_misfit: np.ndarray  # (S, J)
    inv_n: np.ndarray  # (J,)
    metric_min: np.ndarray  # (J,)
    metric_max: np.ndarray  # (J,)
    x0: float
    bounded: np.ndarray | None = None  # (J,) bool: benchmark on the bounded capability scale

    def eta(self, theta: np.ndarray, sh: tuple) -> np.ndarray:
        """Linear predictor (S, ..., J) for capabilities ``theta`` (S, ..., K)."""
        return linear_predictor(theta, self.intercept[sh], self.loading, self.bounded)

    @property
    def n_samples(self) -> int:
        return self.loading.shape[0]

    def family_index(self, family: str) -> int | None:
        try:
            return self.family_ids.index(family)
        except ValueError:
            return None

    def scores(
        self, theta: np.ndarray, rng: np.random.Generator | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Expected score p and (if ``rng``) a predictive draw y, both (S, ..., J), in [0, 1].

        ``theta`` has shape (S, ..., K).
        """
        extra = theta.ndim - 2
        sh = (slice(None),) + (None,) * extra
        p = floored_sigmoid_np(self.eta(theta, sh), self.floor[sh])
        if rng is None:
            return p, p
        sd = noise_sd_np(p, self.inv_n, self.misfit[sh], self.floor[sh], self.logit_misfit[sh])
        y = np.clip(p + sd * rng.standard_normal(p.shape), 0.0, 1.0)
        return p, y

    def to_metric(self, v: np.ndarray) -> np.ndarray:
        """Rescale [0, 1] values back to each benchmark's metric units (last axis = benchmark)."""
        return self.metric_min + v * (self.metric_max - self.metric_min)


def posterior_arrays(
    idata: xr.DataTree,
    inv_n: np.ndarray,
    metric_min: np.ndarray,
    metric_max: np.ndarray,
    x0: float,
    bounded: np.ndarray | None = None,
) -> PosteriorArrays:
    """Stack a fit's posterior into :class:`PosteriorArrays`."""
    post = idata["posterior"].dataset.stack(sample=("chain", "draw"))

    def arr(name: str, dims: tuple[str, ...]) -> np.ndarray:
        return post[name].transpose("sample", *dims).to_numpy()

    k = post.sizes["factor"]
    slope_sd = (
        arr("slope_sd", ("factor",)) if "slope_sd" in post else np.zeros((post.sizes["sample"], k))
    )
    return PosteriorArrays(
        family_ids=[str(v) for v in post["family"].values],
        benchmark_ids=[str(v) for v in post["benchmark"].values],
        factor_ids=[str(v) for v in post["factor"].values],
        efficiency=arr("efficiency", ("family", "factor")),
        slope=arr("slope", ("family", "factor")),
        efficiency_mean=arr("efficiency_mean", ("factor",)),
        efficiency_sd=arr("efficiency_sd", ("factor",)),
        slope_mean=arr("slope_mean", ("factor",)),
        slope_sd=slope_sd,
        residual_sd=arr("residual_sd", ("factor",)),
        loading=arr("loading", ("benchmark", "factor")),
        intercept=arr("intercept", ("benchmark",)),
        floor=arr("floor", ("benchmark",)),
        misfit=arr("misfit", ("benchmark",)),
        logit_misfit=(
            arr("logit_misfit", ("benchmark",))
            if "logit_misfit" in post
            else np.zeros((post.sizes["sample"], post.sizes["benchmark"]))
        ),
        inv_n=np.asarray(inv_n, dtype=float),
        metric_min=np.asarray(metric_min, dtype=float),
        metric_max=np.asarray(metric_max, dtype=float),
        x0=float(x0),
        bounded=None if bounded is None else np.asarray(bounded, dtype=bool),
    )


def family_terms(
    pa: PosteriorArrays, family: str, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Efficiency and slope draws (S, K) of ``family``; population draws for an unseen family."""
    i = pa.family_index(family)
    if i is not None:
        return pa.efficiency[:, i], pa.slope[:, i]
    shape = pa.efficiency_mean.shape
    a = pa.efficiency_mean + pa.efficiency_sd * rng.standard_normal(shape)
    b = pa.slope_mean + pa.slope_sd * rng.standard_normal(shape)
    return a, b


def forecast_compute_draws(
    pa: PosteriorArrays, family: str, flops: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draws of capabilities (S, K), expected scores (S, J) and predictive scores (S, J)."""
    x = np.log10(check_flops(flops)) - 21.0 - pa.x0
    a, b = family_terms(pa, family, rng)
    theta = a + b * x + pa.residual_sd * rng.standard_normal(a.shape)
    p, y = pa.scores(theta, rng)
    return theta, pa.to_metric(p), pa.to_metric(y)


def summarize_draws(draws: xr.DataArray, ci: float) -> pd.DataFrame:
    """Tidy summary (mean, median, central interval) of predictive draws over ``sample``."""
    q = draws.quantile([(1 - ci) / 2, 0.5, (1 + ci) / 2], dim="sample")
    mean = draws.mean("sample")
    keys = [d for d in draws.dims if d != "sample"]
    df = mean.to_dataframe(name="mean").reset_index()[keys + ["mean"]]
    for name, qq in (("lower", (1 - ci) / 2), ("median", 0.5), ("upper", (1 + ci) / 2)):
        df[name] = (
            q.sel(quantile=qq)
            .drop_vars("quantile")
            .to_dataframe(name=name)
            .reset_index()[name]
            .to_numpy()
        )
    df["ci"] = ci
    return df
