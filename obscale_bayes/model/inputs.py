"""The arrays the PyMC graph is built from: :class:`ModelInputs` from a table and a spec.

:func:`prepare_inputs` turns a :class:`~obscale_bayes.data.BenchmarkData` into index arrays
(which model, family and benchmark each observed score belongs to), the scores rescaled to
[0, 1] by each benchmark's metric range, the chance floors, item counts, anchors, the compute
axis (:func:`~obscale_bayes.model.equations.compute_axis_np`) with a prior for unknown FLOPs,
and the benchmarks on the bounded capability scale.  :func:`coords_of` names the model's dims.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from obscale_bayes.errors import DataError, SpecError
from obscale_bayes.model.equations import compute_axis_np, inv_items
from obscale_bayes.spec.priors import Normal
from obscale_bayes.spec.spec import ModelSpec

__all__ = ["ModelInputs", "coords_of", "prepare_inputs", "x_prior_for_unknown"]


@dataclass(frozen=True)
class ModelInputs:
    """Arrays the PyMC graph is built from, with their labels (all derived from the data)."""

    model_ids: list[str]
    family_ids: list[str]
    benchmark_ids: list[str]
    factor_ids: list[str]
    family_idx: np.ndarray  # (M,) family of each model
    x: np.ndarray  # (M,) centred log10 FLOPs, NaN where unknown
    x_prior_mu: np.ndarray  # (M,) prior mean for x where unknown (NaN where known)
    x_prior_sd: np.ndarray  # (M,)
    obs_model: np.ndarray  # (N,)
    obs_bench: np.ndarray  # (N,)
    y: np.ndarray  # (N,) scores rescaled to [0, 1]
    floor: np.ndarray  # (J,) rescaled chance floor, NaN = fitted
    inv_n: np.ndarray  # (J,) 1 / n_items (spec's default_n_items where unknown)
    anchor_idx: np.ndarray  # (K,) benchmark index of each factor's anchor
    metric_min: np.ndarray  # (J,)
    metric_max: np.ndarray  # (J,)
    # non-anchor benchmarks on the bounded capability scale with loadings >= 0
    bounded_bench: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))
    # (J,) the metadata's rescaled chance level (NaN where blank), whether or not the spec fits
    # the floor: simulations take it as the realistic true floor of a fitted one
    chance: np.ndarray | None = None
    # release_trend only: (F,) release year of each family minus release_ref_year (NaN where no
    # model of the family has a date), the prior (mean, sd) of an undated family's year, and
    # the year a family the fit has not seen is forecast at (the newest dated family's)
    family_year: np.ndarray | None = None
    year_prior: tuple[float, float] = (0.0, 1.0)
    new_family_year: float = 0.0

    @property
    def undated_families(self) -> np.ndarray:
        """Families whose release year is latent (release_trend only; else none)."""
        if self.family_year is None:
            return np.zeros(0, dtype=int)
        return np.flatnonzero(~np.isfinite(self.family_year))

    @property
    def bounded(self) -> np.ndarray:
        """(J,) True where the benchmark is linked to the bounded capability scale."""
        flag = np.zeros(len(self.benchmark_ids), dtype=bool)
        flag[self.bounded_bench] = True
        return flag

    @property
    def signed_bench(self) -> np.ndarray:
        """Free benchmarks whose loadings may take either sign."""
        return np.setdiff1d(self.free_bench, self.bounded_bench)

    @property
    def unknown_x(self) -> np.ndarray:
        return np.flatnonzero(~np.isfinite(self.x))

    @property
    def free_bench(self) -> np.ndarray:
        """Benchmarks whose loadings and intercept are estimated (not anchors)."""
        return np.setdiff1d(np.arange(len(self.benchmark_ids)), self.anchor_idx)


def x_prior_for_unknown(params_b: np.ndarray, spec: ModelSpec) -> tuple[np.ndarray, np.ndarray]:
    """Prior mean and sd of centred log10 FLOPs for models whose FLOPs are unknown.

    With the parameter count N (in B) known, FLOPs/1e21 = 6 N D with D in T tokens, so
    ``log10 FLOPs = log10(6 N) + log10 D`` and the token prior carries the uncertainty.
    Otherwise the spec's ``log10_flops`` prior is used.
    """
    tok = spec.priors["log10_tokens_t"]
    flo = spec.priors["log10_flops"]
    x0 = spec.structure["x0"]
    for name, pr in (("log10_tokens_t", tok), ("log10_flops", flo)):
        if not isinstance(pr, Normal):
            raise SpecError(f"{spec.source}: prior '{name}' must be a normal distribution")
    has_n = np.isfinite(params_b) & (params_b > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        mu = np.where(has_n, np.log10(6.0 * params_b) + tok.mu, flo.mu) - x0
    sd = np.where(has_n, tok.sigma, flo.sigma)
    return mu, sd


#: Fewest dated families a release-date trend is estimated from.
MIN_DATED_FAMILIES = 3


def family_release_years(models, fam_ids: list[str]) -> np.ndarray:
    """Per family in ``fam_ids``, the median release date of its models as a decimal year
    (NaN for a family without a dated model, or a table without ``release_date``)."""
    import pandas as pd

    col = models["release_date"] if "release_date" in models else pd.Series(np.nan, models.index)
    dates = pd.to_datetime(col, errors="coerce")
    dec = dates.dt.year + (dates.dt.day_of_year - 1) / 365.25
    med = dec.groupby(models["family"].to_numpy()).median()
    return np.array([med.get(f, np.nan) for f in fam_ids], dtype=float)


def family_years(models, fam_ids: list[str], ref_year: float, source: str):
    """Per family, :func:`family_release_years` in years since ``ref_year``; the mean and sd of
    the dated ones (the latent years' prior); the newest dated family's year.  For
    :func:`prepare_inputs` with ``release_trend``."""
    year = family_release_years(models, fam_ids) - ref_year
    dated = year[np.isfinite(year)]
    if len(dated) < MIN_DATED_FAMILIES:
        raise DataError(
            f"{source}: structure.release_trend needs release dates for at least "
            f"{MIN_DATED_FAMILIES} families, the table has {len(dated)}; fill the models' "
            "release_date column (YYYY-MM-DD) or use a spec without release_trend"
        )
    sd = max(float(np.std(dated, ddof=1)), 0.25)
    return year, (float(np.mean(dated)), sd), float(np.max(dated))


def prepare_inputs(data, spec: ModelSpec) -> ModelInputs:
    """Turn a :class:`~obscale_bayes.data.BenchmarkData` into the arrays of the model.

    Benchmarks without any score are dropped; models without any score are dropped.
    """
    scores = data.scores
    bench = data.benchmarks.set_index("benchmark")
    used_b = [b for b in data.benchmarks["benchmark"] if b in set(scores["benchmark"])]
    models = data.models[data.models["model"].isin(set(scores["model"]))].reset_index(drop=True)
    if models.empty or not used_b:
        raise DataError(
            f"{data.source}: no scores to fit; the table has no non-missing score cells"
        )
    k = spec.n_factors
    anchors = spec.anchors
    missing = [a for a in anchors if a not in used_b]
    if missing:
        raise SpecError(
            f"{spec.source}: anchor benchmark(s) {missing} have no scores in {data.source}; "
            f"choose anchors among {used_b} in [structure].anchors"
        )
    if len(used_b) <= k:
        raise SpecError(
            f"{spec.source}: n_factors = {k} needs more than {k} benchmarks with scores, "
            f"the data have {len(used_b)}; lower n_factors"
        )
    if models["family"].isna().any():
        bad = models.loc[models["family"].isna(), "model"].iloc[0]
        raise DataError(f"{data.source}: model '{bad}' has no family; fill its family column")
    fam_ids = sorted(models["family"].unique())
    fam_pos = {f: i for i, f in enumerate(fam_ids)}
    m_pos = {m: i for i, m in enumerate(models["model"])}
    b_pos = {b: i for i, b in enumerate(used_b)}

    st = spec.structure
    x0 = st["x0"]
    flops = models["flops_1e21"].to_numpy(dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        x = np.where(
            np.isfinite(flops) & (flops > 0), compute_axis_np(flops, x0, per_1e21=True), np.nan
        )
    mu, sd = x_prior_for_unknown(models["params_b"].to_numpy(dtype=float), spec)
    x_mu = np.where(np.isfinite(x), np.nan, mu)
    x_sd = np.where(np.isfinite(x), np.nan, sd)

    lo = bench.loc[used_b, "metric_min"].to_numpy(dtype=float)
    hi = bench.loc[used_b, "metric_max"].to_numpy(dtype=float)
    s = scores[scores["model"].isin(m_pos) & scores["benchmark"].isin(b_pos)]
    ob = s["benchmark"].map(b_pos).to_numpy()
    y = (s["value"].to_numpy(dtype=float) - lo[ob]) / (hi[ob] - lo[ob])
    floor = (bench.loc[used_b, "floor"].to_numpy(dtype=float) - lo) / (hi - lo)
    chance = floor.copy()
    if st["fitted_floors"] == "non_anchor":  # NaN = fitted (prior `floor`)
        floor[[j for j, b in enumerate(used_b) if b not in anchors]] = np.nan
    groups = set(st["bounded_groups"])
    bounded = []
    if groups and "group" in bench.columns:
        g = bench.loc[used_b, "group"].astype(str).to_numpy()
        bounded = [j for j, b in enumerate(used_b) if g[j] in groups and b not in anchors]
    years: dict = {}
    if st["release_trend"]:
        fy, prior, newest = family_years(models, fam_ids, st["release_ref_year"], data.source)
        years = {"family_year": fy, "year_prior": prior, "new_family_year": newest}
    return ModelInputs(
        **years,
        model_ids=list(models["model"]),
        family_ids=fam_ids,
        benchmark_ids=used_b,
        factor_ids=list(anchors),
        family_idx=models["family"].map(fam_pos).to_numpy(),
        x=x,
        x_prior_mu=x_mu,
        x_prior_sd=x_sd,
        obs_model=s["model"].map(m_pos).to_numpy(),
        obs_bench=ob,
        y=y,
        floor=floor,
        inv_n=inv_items(bench.loc[used_b, "n_items"].to_numpy(dtype=float), st["default_n_items"]),
        anchor_idx=np.array([b_pos[a] for a in anchors]),
        metric_min=lo,
        metric_max=hi,
        bounded_bench=np.array(bounded, dtype=int),
        chance=chance,
    )


def coords_of(inp: ModelInputs) -> dict[str, list]:
    """Named coordinates of the model (used by the graph and by forecasts)."""
    return {
        "model": inp.model_ids,
        "family": inp.family_ids,
        "benchmark": inp.benchmark_ids,
        "factor": inp.factor_ids,
        "free_benchmark": [inp.benchmark_ids[j] for j in inp.free_bench],
        "signed_benchmark": [inp.benchmark_ids[j] for j in inp.signed_bench],
        "bounded_benchmark": [inp.benchmark_ids[j] for j in inp.bounded_bench],
        "fitted_floor_benchmark": [
            inp.benchmark_ids[j] for j in np.flatnonzero(np.isnan(inp.floor))
        ],
        "latent_flops_model": [inp.model_ids[i] for i in inp.unknown_x],
        "undated_family": [inp.family_ids[i] for i in inp.undated_families],
        "obs": np.arange(len(inp.y)),
    }
