r"""Simulation-based calibration (SBC; Talts et al. 2018) of the capability model.

If the replications are drawn from the model's joint distribution, :math:`\tilde\vartheta \sim
p(\vartheta)`, :math:`\tilde y \sim p(y \mid \tilde\vartheta)`, and the sampler is right, then
the rank of :math:`\tilde\vartheta` among :math:`L` (roughly independent) posterior draws given
:math:`\tilde y` is uniform on :math:`\{0, \dots, L\}` for every parameter; likewise the rank of a
held-out simulated score among its posterior predictive draws.

* :func:`sbc_template` picks the layout (models, FLOPs, missing cells) from the shipped table;
* :func:`prior_replications` draws the replications with ``pm.sample_prior_predictive`` on the
  graph of :func:`~obscale_bayes.model.build.build_model` itself: parameters and *unclipped*
  scores, exactly the model's generative process (:func:`~obscale_bayes.model.simulate.simulate`
  clips scores to the metric range, which the normal likelihood does not model: about 9% of
  prior-predictive cells lie outside [0, 1], so SBC on clipped tables would test another model);
* :func:`hold_out` removes one model (known FLOPs) and one cell of another model from a table;
* :func:`sbc_post` runs in a :func:`~obscale_bayes.fit.runner.run_fits` worker and returns the
  ranks of every parameter group and of the held-out scores (predictive draws of
  :func:`~obscale_bayes.forecast.joint.joint_draws`);
* :func:`group_tests` tests the uniformity of one group's ranks (see its docstring for how the
  elements of a group are pooled): a Rao-Scott chi-square, an ECDF test with a simultaneous
  band calibrated over replications (:func:`cluster_ecdf_test`) and a per-element test;
  :func:`ecdf_difference` is ArviZ's simultaneous band for independent PIT values
  (:mod:`arviz_stats.ecdf_utils`, Säilynoja et al. 2022), the reference the cluster band must
  match with one element per replication.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import pandas as pd
import xarray as xr
from scipy import stats

from obscale_bayes.data.tables import BenchmarkData
from obscale_bayes.errors import UsageError
from obscale_bayes.forecast.joint import joint_draws
from obscale_bayes.model.build import build_model
from obscale_bayes.model.inputs import prepare_inputs
from obscale_bayes.spec.spec import ModelSpec, load_spec

__all__ = [
    "FORECAST_GROUPS",
    "PARAMETER_GROUPS",
    "Holdout",
    "Replication",
    "cluster_ecdf_test",
    "ecdf_difference",
    "group_tests",
    "hold_out",
    "prior_replications",
    "rank_matrix",
    "rank_pit",
    "ranks_of",
    "rao_scott_chi2",
    "sbc_post",
    "sbc_template",
    "thin_index",
]

#: Parameter groups ranked (posterior variable names; anchors' fixed entries are not free).
PARAMETER_GROUPS = (
    "efficiency_mean", "efficiency_sd", "slope_mean", "slope_sd", "residual_sd",
    "efficiency", "slope", "capability", "loading_free", "intercept_free", "misfit_free",
    "floor_fitted", "x_latent",
)  # fmt: skip
#: Held-out forecasts ranked: a cell of a model in the fit, a score of a model left out.
FORECAST_GROUPS = ("heldout_cell", "heldout_model")


@dataclass(frozen=True)
class Replication:
    """One draw of the model's joint distribution: a table and the parameters behind it.

    ``truth`` has every free and deterministic variable of the graph (the posterior's names and
    coordinates); ``cells`` lists the simulated scores (``model, benchmark, y``) on the [0, 1]
    scale; ``data`` has them in metric units, unclipped.
    """

    index: int
    data: BenchmarkData
    truth: xr.Dataset
    cells: pd.DataFrame


@dataclass(frozen=True)
class Holdout:
    """A replication's training table and its held-out scores ``(group, cell tuple, y)``."""

    train: BenchmarkData
    cells: list[tuple[str, tuple, float]]


def sbc_template(
    data: BenchmarkData, n_models: int = 40, n_families: int = 12, seed: int = 0
) -> BenchmarkData:
    """A layout of ``n_models`` real models from ``n_families`` families of ``data``.

    Families are drawn at random (``seed``), swapping the smallest drawn one for the largest
    left until they hold ``n_models`` models; then the largest families lose their middle-compute
    models.  The models keep their FLOPs (known or not) and missing cells.
    """
    sizes = data.models.groupby("family").size()
    if not 1 <= n_families <= len(sizes) or n_models < n_families:
        raise UsageError(
            f"sbc_template: need 1 <= n_families <= {len(sizes)} and n_models >= n_families"
        )
    order = list(np.random.default_rng(seed).permutation(sizes.index.to_numpy()))
    chosen, rest = order[:n_families], sorted(order[n_families:], key=lambda f: -sizes[f])
    while sizes[chosen].sum() < n_models and rest and sizes[rest[0]] > sizes[chosen].min():
        chosen[int(np.argmin(sizes[chosen].to_numpy()))] = rest.pop(0)
    members = {f: data.models[data.models["family"] == f] for f in chosen}
    members = {f: m.sort_values("params_b")["model"].tolist() for f, m in members.items()}
    while sum(map(len, members.values())) > n_models:
        f = max(members, key=lambda k: len(members[k]))
        members[f].pop(len(members[f]) // 2)
    keep = set(itertools.chain(*members.values()))
    return data.subset(models=[m for m in data.model_ids if m in keep])


def prior_replications(
    template: BenchmarkData, spec: ModelSpec | str | None, n: int, seed: int = 0
) -> list[Replication]:
    """``n`` draws of parameters and scores from the model's prior predictive for ``template``."""
    import pymc as pm

    spec = spec if isinstance(spec, ModelSpec) else load_spec(spec)
    inp = prepare_inputs(template, spec)
    model = build_model(template, spec, inputs=inp)
    with model:
        pp = pm.sample_prior_predictive(draws=int(n), random_seed=seed)
    names = [v.name for v in model.free_RVs] + [v.name for v in model.deterministics]
    prior = pp["prior"].dataset.isel(chain=0, drop=True)
    prior = prior[[v for v in names if v in prior]]
    y = pp["prior_predictive"].dataset["score"].isel(chain=0, drop=True).to_numpy()
    om, ob = inp.obs_model, inp.obs_bench
    models = np.asarray(inp.model_ids, dtype=object)[om]
    benches = np.asarray(inp.benchmark_ids, dtype=object)[ob]
    lo, hi = inp.metric_min[ob], inp.metric_max[ob]
    tm = template.models[template.models["model"].isin(set(inp.model_ids))]
    tb = template.benchmarks[template.benchmarks["benchmark"].isin(set(inp.benchmark_ids))]
    out = []
    for r in range(int(n)):
        value = lo + y[r] * (hi - lo)
        scores = pd.DataFrame({"model": models, "benchmark": benches, "value": value})
        data = BenchmarkData(tm, scores, tb, source=f"SBC replication {r} (seed {seed})")
        cells = pd.DataFrame({"model": models, "benchmark": benches, "y": y[r]})
        out.append(Replication(r, data, prior.isel(draw=r, drop=True), cells))
    return out


def hold_out(rep: Replication, seed: int = 0) -> Holdout:
    """Leave out one model with known FLOPs (whose family keeps other models) and one cell of
    another model; their simulated scores are the truths of :data:`FORECAST_GROUPS`."""
    rng = np.random.default_rng([seed, rep.index])
    m = rep.data.models
    fam_n = m["family"].map(m["family"].value_counts())
    cand = m[m["flops_1e21"].notna() & (fam_n >= 2)]
    if cand.empty:
        raise UsageError("hold_out: no model with known FLOPs in a family of two or more")
    row = cand.iloc[int(rng.integers(len(cand)))]
    c = rep.cells
    own = c[c["model"] == row["model"]]
    pick = own.iloc[int(rng.integers(len(own)))]
    others = c[c["model"] != row["model"]]
    cell = others.iloc[int(rng.integers(len(others)))]
    s = rep.data.scores
    drop = (s["model"] == row["model"]) | (
        (s["model"] == cell["model"]) & (s["benchmark"] == cell["benchmark"])
    )
    train = BenchmarkData(
        m[m["model"] != row["model"]], s[~drop], rep.data.benchmarks, source=rep.data.source
    )
    flops = float(row["flops_1e21"]) * 1e21
    return Holdout(
        train,
        [
            ("heldout_cell", (cell["model"], cell["benchmark"]), float(cell["y"])),
            ("heldout_model", (row["family"], flops, pick["benchmark"]), float(pick["y"])),
        ],
    )


def thin_index(n_samples: int, n_ranks: int) -> np.ndarray:
    """``n_ranks`` evenly spaced indices into ``n_samples`` stacked (chain-major) draws."""
    if not 1 <= n_ranks <= n_samples:
        raise UsageError(
            f"n_ranks must be in [1, {n_samples}] (the posterior draws), got {n_ranks}"
        )
    return np.linspace(0, n_samples - 1, int(n_ranks)).round().astype(int)


def ranks_of(draws: np.ndarray, truth: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Rank of each ``truth`` (n,) among ``draws`` (L, n): the number of draws below it, ties
    broken at random (so a rank is uniform on 0..L under calibration even with ties)."""
    draws, truth = np.asarray(draws, dtype=float), np.asarray(truth, dtype=float)
    less = (draws < truth).sum(axis=0)
    ties = (draws == truth).sum(axis=0)
    return less + rng.integers(0, ties + 1)


def _labels(da: xr.DataArray) -> list[str]:
    if not da.dims:
        return [da.name]
    values = [[str(v) for v in da[d].values] for d in da.dims]
    return ["|".join(t) for t in itertools.product(*values)]


def sbc_post(
    fit, truth: xr.Dataset, cells: list[tuple[str, tuple, float]], n_ranks: int = 99,
    seed: int = 0,
) -> dict[str, dict[str, int]]:  # fmt: skip
    """Ranks of one replication: ``{group: {element label: rank in 0..n_ranks}}``.

    Run in the fit's worker (``FitJob.post`` as a :func:`functools.partial` with ``truth``,
    ``cells`` and ``n_ranks``).  ``n_ranks`` evenly thinned posterior draws (:func:`thin_index`)
    are used for every group; the truth is aligned on the posterior's coordinates (the held-out
    model's parameters drop out).  Held-out scores are ranked among the same draws' predictive
    draws (noise included, clipped to [0, 1] as the truth is; ties broken at random); their
    element label is the cell's benchmark.
    """
    rng = np.random.default_rng(seed)
    post = fit.idata["posterior"].dataset
    n_s = post.sizes["chain"] * post.sizes["draw"]
    idx = thin_index(n_s, n_ranks)
    out: dict[str, dict[str, int]] = {}
    for name in PARAMETER_GROUPS:
        if name not in post or name not in truth:
            continue
        t = truth[name]
        t = t.sel({d: post[d].values for d in t.dims})
        if t.size == 0:
            continue
        d = post[name].stack(sample=("chain", "draw")).transpose("sample", *t.dims).to_numpy()
        r = ranks_of(d[idx].reshape(len(idx), -1), t.to_numpy().ravel(), rng)
        out[name] = dict(zip(_labels(t.rename(name)), r.tolist(), strict=True))
    if cells:
        jd = joint_draws(fit, [c for _, c, _ in cells], seed=seed, max_draws=None)
        y = jd.y[idx]
        for k, (group, cell, value) in enumerate(cells):
            r = ranks_of(y[:, k : k + 1], np.clip([value], 0.0, 1.0), rng)
            out[group] = {str(cell[-1]): int(r[0])}  # element = the cell's benchmark
    return out


def rank_matrix(results: list[dict[str, dict[str, int]]], group: str) -> tuple[list, np.ndarray]:
    """One group's ranks over replications: element labels and a (reps, elements) array (NaN
    where an element is absent from a replication, e.g. the held-out model's capabilities)."""
    labels = sorted({lab for r in results for lab in r.get(group, {})})
    col = {lab: i for i, lab in enumerate(labels)}
    mat = np.full((len(results), len(labels)), np.nan)
    for i, r in enumerate(results):
        for lab, v in r.get(group, {}).items():
            mat[i, col[lab]] = v
    return labels, mat


def _bins(n_ranks: int, bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Bin edges on rank values 0..n_ranks and each bin's null probability."""
    bins = max(2, min(int(bins), n_ranks + 1))
    edges = np.unique(np.linspace(0, n_ranks + 1, bins + 1).round())
    return edges, np.diff(edges) / (n_ranks + 1)


def rao_scott_chi2(mat: np.ndarray, n_ranks: int, bins: int = 10) -> tuple[float, float, float]:
    """Pearson chi-square of all ranks of ``mat`` (reps, elements) pooled, with the first-order
    Rao-Scott correction for the dependence of the elements of one replication.

    The design effect is ``delta = tr(V P^-1) / (B - 1)``: V the covariance of the pooled bin
    shares estimated with replications as independent clusters, P the multinomial one of as
    many independent ranks; ``delta`` is floored at 1 (never below independence) and is exactly
    1 with one element per replication.  Returns (statistic / delta, p-value, delta).
    """
    edges, w = _bins(n_ranks, bins)
    keep = np.isfinite(mat).any(axis=1)
    mat = mat[keep]
    counts = np.stack([np.histogram(r[np.isfinite(r)], edges)[0] for r in mat]) * 1.0  # (R, B)
    m_r = counts.sum(axis=1)
    n = m_r.sum()
    if n == 0:
        return float("nan"), float("nan"), float("nan")
    pooled = counts.sum(axis=0)
    x2 = float(((pooled - n * w) ** 2 / (n * w)).sum())
    delta = 1.0
    n_rep = len(m_r)
    if m_r.max() > 1 and n_rep > 1:
        z = counts - m_r[:, None] * (pooled / n)
        v = (z.T @ z) * n_rep / (n_rep - 1) / n**2
        p_null = (np.diag(w) - np.outer(w, w)) / n
        k = len(w) - 1
        delta = max(1.0, float(np.trace(v[:k, :k] @ np.linalg.inv(p_null[:k, :k])) / k))
    df = len(w) - 1
    return x2 / delta, float(stats.chi2.sf(x2 / delta, df)), delta


def _pearson_p(ranks: np.ndarray, n_ranks: int, bins: int) -> float:
    edges, w = _bins(n_ranks, bins)
    counts = np.histogram(ranks, edges)[0]
    return float(stats.chisquare(counts, w * counts.sum()).pvalue)


def rank_pit(ranks: np.ndarray, n_ranks: int, rng: np.random.Generator) -> np.ndarray:
    """Ranks 0..L as randomised PIT values ``(rank + U) / (L + 1)``: Uniform(0, 1) exactly when
    the ranks are uniform (for a KS test and the continuous ECDF band)."""
    ranks = np.asarray(ranks, dtype=float)
    return (ranks + rng.uniform(size=ranks.shape)) / (n_ranks + 1)


def ecdf_difference(
    u: np.ndarray, prob: float = 0.95, n_simulations: int = 1000, seed: int = 0
) -> dict[str, np.ndarray | bool]:
    """ECDF of PIT values ``u`` minus the uniform CDF, with the simultaneous ``prob`` band.

    Returns ``z`` (evaluation points), ``diff`` (ECDF(z) - z), ``lower`` and ``upper`` (the
    band, also minus z) and ``outside`` (whether the ECDF leaves the band anywhere).  The band
    is :func:`arviz_stats.ecdf_utils.ecdf_pit`'s (simulated, for ``len(u)`` independent values).
    """
    from arviz_stats.ecdf_utils import ecdf_pit

    u = np.asarray(u, dtype=float).ravel()
    z, ecdf, lo, hi = ecdf_pit(u, prob, n_simulations, rng=np.random.default_rng(seed))
    out = {"z": z, "diff": ecdf - z, "lower": lo - z, "upper": hi - z}
    out["outside"] = bool(np.any((ecdf < lo - 1e-12) | (ecdf > hi + 1e-12)))
    return out


def cluster_ecdf_test(
    mat: np.ndarray, n_ranks: int, *, prob: float = 0.95, n_boot: int = 2000, seed: int = 0
) -> dict[str, np.ndarray | float | bool]:
    r"""ECDF of all ranks of ``mat`` (reps, elements) against the uniform, with a simultaneous
    band and test valid under any dependence between the elements of one replication.

    At the rank points :math:`z_k = k / (L + 1)`, :math:`k = 1..L` (where the uniform CDF of the
    ranks is exact), :math:`D(z) = \hat F(z) - z` is a sum of independent per-replication terms
    :math:`h_r(z)`.  The statistic is :math:`T = \max_k |D(z_k)| / \sqrt{z_k (1 - z_k)}` (a
    KS distance weighted to the binomial shape); its null distribution comes from a multiplier
    bootstrap over replications (:math:`\sum_r \xi_r \tilde h_r`, :math:`\xi_r \sim N(0, 1)`,
    :math:`\tilde h_r` centred), whose ``prob`` quantile :math:`c` gives the band
    :math:`\pm c \sqrt{z (1 - z)}`.  With one element per replication this is a (weighted) KS
    test of independent ranks.  Returns ``z, diff, lower, upper`` (arrays), ``stat``, ``p``
    and ``outside``.
    """
    keep = np.isfinite(mat).any(axis=1)
    mat = mat[keep]
    present = np.isfinite(mat)
    z = np.arange(1, n_ranks + 1) / (n_ranks + 1)
    below = (np.where(present, mat, np.inf)[:, :, None] < np.arange(1, n_ranks + 1)).sum(axis=1)
    n = present.sum()
    m_r = present.sum(axis=1)[:, None]
    diff = below.sum(axis=0) / n - z
    w = np.sqrt(z * (1 - z))
    stat = float(np.max(np.abs(diff) / w))
    h = below - m_r * (below.sum(axis=0) / n)  # centred per-replication terms (R, L)
    xi = np.random.default_rng(seed).standard_normal((int(n_boot), len(h)))
    boot = np.max(np.abs(xi @ h) / n / w, axis=1)
    c = float(np.quantile(boot, prob))
    pad = lambda v: np.concatenate([[0.0], v, [0.0]])  # noqa: E731
    return {"z": np.concatenate([[0.0], z, [1.0]]), "diff": pad(diff), "lower": pad(-c * w),
            "upper": pad(c * w), "stat": stat, "outside": bool(stat > c),
            "p": float((1 + np.sum(boot >= stat)) / (1 + len(boot)))}  # fmt: skip


def group_tests(
    mat: np.ndarray, n_ranks: int, *, bins: int = 10, alpha: float = 0.01, seed: int = 0
) -> dict:
    """Uniformity tests of one group's ranks ``mat`` (reps, elements; NaN = absent).

    How the elements are pooled: every rank of every element counts, but ranks of different
    elements of one replication are dependent (they share the data) while ranks of different
    replications are independent, so both pooled tests treat replications as independent
    clusters:

    * ``chi2_p``: Pearson chi-square of all ranks in ``bins`` bins, Rao-Scott corrected
      (:func:`rao_scott_chi2`; ``delta`` the design effect);
    * ``ks_p``: weighted KS distance of their ECDF, calibrated by a multiplier bootstrap over
      replications (:func:`cluster_ecdf_test`); ``outside_band`` says whether the ECDF leaves
      its 95% simultaneous band;
    * ``element_p``: per-element Pearson chi-square over replications, smallest p-value times
      the number of elements (Bonferroni): one badly calibrated element shows here even when
      the pool looks uniform.

    ``verdict`` is ``"uniform"`` if all three p-values are >= ``alpha``, else ``"NOT uniform"``.
    ``band`` holds the :func:`cluster_ecdf_test` arrays (for a figure; not JSON).
    """
    n_el = int(np.isfinite(mat).any(axis=0).sum())
    n_rep = int(np.isfinite(mat).any(axis=1).sum())
    chi2, chi2_p, delta = rao_scott_chi2(mat, n_ranks, bins)
    band = cluster_ecdf_test(mat, n_ranks, seed=seed)
    ps = [_pearson_p(c[np.isfinite(c)], n_ranks, bins) for c in mat.T if np.isfinite(c).sum() > 1]
    element_p = min(1.0, min(ps) * len(ps)) if ps else float("nan")
    pvals = [p for p in (chi2_p, band["p"], element_p) if np.isfinite(p)]
    return {"elements": n_el, "reps": n_rep, "ranks": int(np.isfinite(mat).sum()),
            "chi2": float(chi2), "chi2_p": float(chi2_p), "delta": float(delta),
            "ks": float(band["stat"]), "ks_p": float(band["p"]), "element_p": float(element_p),
            "outside_band": bool(band["outside"]),
            "verdict": "uniform" if pvals and min(pvals) >= alpha else "NOT uniform",
            "band": band}  # fmt: skip
