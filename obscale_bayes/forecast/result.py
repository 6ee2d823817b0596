"""The result of a forecast: a tidy table plus the draws behind it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import xarray as xr

from obscale_bayes.io import records

if TYPE_CHECKING:
    from obscale_bayes.fit.fitted import CapabilityModel

__all__ = ["Forecast", "package_forecast", "summarize_draws"]


@dataclass(frozen=True)
class Forecast:
    """A forecast: a tidy summary table and the predictive draws behind it.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per (model, benchmark): ``model, family, flops, benchmark, mean, median,
        lower, upper, ci`` (and ``observed`` for forecasts from scores).
    draws : xarray.DataArray
        Predictive score draws with dims ``(sample, model, benchmark)`` in metric units.
    capability : xarray.DataArray
        Capability draws with dims ``(sample, model, factor)``.
    """

    table: pd.DataFrame
    draws: xr.DataArray
    capability: xr.DataArray

    def records(self) -> list[dict]:
        cols = ["model", "family", "flops", "benchmark", "mean", "median", "lower", "upper", "ci"]
        return records(self.table[cols])


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


def package_forecast(
    fit: CapabilityModel,
    names: list[str],
    fams: list[str | None],
    flops_l: list[float],
    theta: np.ndarray,
    y: np.ndarray,
    ci: float,
    observed: pd.DataFrame | None = None,
) -> Forecast:
    """Label draws ``theta`` (S, M, K) and ``y`` (S, M, J) and summarise them as a :class:`Forecast`."""
    pa = fit.posterior
    draws = xr.DataArray(
        y,
        dims=("sample", "model", "benchmark"),
        coords={"model": names, "benchmark": pa.benchmark_ids},
        name="score",
    )
    cap = xr.DataArray(
        theta,
        dims=("sample", "model", "factor"),
        coords={"model": names, "factor": pa.factor_ids},
        name="capability",
    )
    table = summarize_draws(draws, ci)
    info = pd.DataFrame({"model": names, "family": fams, "flops": flops_l})
    table = info.merge(table, on="model", how="right")
    table["known_family"] = table["family"].isin(pa.family_ids)
    if observed is not None:
        table = table.merge(observed, on=["model", "benchmark"], how="left")
    order = {n: i for i, n in enumerate(names)}
    border = {b: i for i, b in enumerate(pa.benchmark_ids)}
    table = table.sort_values(
        ["model", "benchmark"],
        key=lambda s: s.map(order) if s.name == "model" else s.map(border),
    ).reset_index(drop=True)
    return Forecast(table=table, draws=draws, capability=cap)
