r"""Joint posterior predictive draws of score cells: the input of :mod:`~obscale_bayes.forecast.next_eval`.

A *cell* is one score: a model on a benchmark.  It is either a cell of a model in the fit (its
capabilities are posterior draws) or a cell of a hypothetical new model of family :math:`f`
trained with :math:`F` FLOPs (capabilities drawn as in
:func:`~obscale_bayes.forecast.compute.forecast_compute`).  Every posterior draw :math:`s` gives
a joint predictive draw of all cells at once,

.. math::

    y^{(s)}_c = p^{(s)}_c + \mathrm{sd}^{(s)}_{c}\,\varepsilon_c , \qquad
    p^{(s)}_c = g^{(s)}_j + (1 - g^{(s)}_j)\,\mathrm{sigmoid}(\eta^{(s)}_{mj}),

with the linear predictor (including the bounded capability scale of downstream tasks), the
link and the measurement noise (sampling noise of the benchmark's items plus misfit) of
:mod:`obscale_bayes.model.equations`, so cells are correlated through the shared capabilities
and benchmark parameters.  A benchmark the fit has never seen (no score at all) gets its
loading, intercept, misfit and (blank) floor from the spec's priors: that *is* its posterior,
since no observation depends on them; its metadata (floor, items, range, group) come from the
fit's data or the shipped table, and a group in ``structure.bounded_groups`` puts it on the
bounded scale with the ``positive_loading`` prior, as a refit would.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from obscale_bayes.data.tables import load_benchmark_metadata
from obscale_bayes.errors import UsageError
from obscale_bayes.model.draws import compute_axis_draws, family_terms
from obscale_bayes.model.equations import (
    compute_axis_np,
    expected_score_np,
    free_misfit_name,
    inv_items,
    misfits_np,
    noise_sd_np,
)
from obscale_bayes.validation import check_flops

__all__ = ["Cell", "JointDraws", "as_cell", "as_cells", "joint_draws"]


@dataclass(frozen=True)
class Cell:
    """One score: an existing ``model`` on ``benchmark``, or a new (``family``, ``flops``) model.

    Build from tuples with :func:`as_cell`: ``(model, benchmark)`` or
    ``(family, flops, benchmark)`` (``flops`` in FLOPs, e.g. ``1e24``).
    """

    benchmark: str
    model: str | None = None
    family: str | None = None
    flops: float | None = None

    @property
    def is_new(self) -> bool:
        return self.model is None

    @property
    def label(self) -> str:
        return self.model if self.model is not None else f"{self.family} @ {self.flops:.3g} FLOPs"


def as_cell(c: Cell | tuple, where: str = "cell") -> Cell:
    """A :class:`Cell` from a Cell, ``(model, benchmark)`` or ``(family, flops, benchmark)``."""
    if isinstance(c, Cell):
        return c
    if isinstance(c, tuple) and len(c) == 2:
        return Cell(benchmark=str(c[1]), model=str(c[0]))
    if isinstance(c, tuple) and len(c) == 3:
        flops = check_flops(c[1], where=f"{where} {c!r}")
        return Cell(benchmark=str(c[2]), family=str(c[0]), flops=flops)
    raise UsageError(
        f"{where}: {c!r} is not a cell; give (model, benchmark) or (family, flops, benchmark)"
    )


def as_cells(cells, where: str) -> list[Cell]:
    """One cell or a sequence of cells (see :func:`as_cell`) as a non-empty list of Cells."""
    single = isinstance(cells, Cell) or (
        isinstance(cells, tuple) and not any(isinstance(x, (Cell, tuple)) for x in cells)
    )
    if single:
        cells = [cells]
    out = [as_cell(c, where) for c in cells]
    if not out:
        raise UsageError(f"{where}: give at least one cell")
    return out


@dataclass(frozen=True)
class JointDraws:
    """Joint predictive draws of cells, on each benchmark's [0, 1] scale.

    Attributes
    ----------
    cells : list of Cell
    y : ndarray (S, n)  predictive draws (with measurement noise, clipped to [0, 1]).
    p : ndarray (S, n)  expected scores (no noise).
    sd : ndarray (S, n) measurement-noise sd of each draw.
    scale, offset : ndarray (n,) metric range and minimum of each cell's benchmark.
    """

    cells: list[Cell]
    y: np.ndarray
    p: np.ndarray
    sd: np.ndarray
    scale: np.ndarray
    offset: np.ndarray

    def metric(self) -> np.ndarray:
        """Predictive draws in metric units (S, n): ``offset + scale * y``."""
        return self.offset + self.y * self.scale


class _Heads:
    """Per-benchmark draws of the benchmark's parameters, cached by benchmark.

    Each head is ``(loading (S, K), intercept, floor, misfit, logit misfit (S,), 1/n_items,
    metric range, metric minimum, bounded)``.
    """

    def __init__(self, fit, idx: np.ndarray, rng: np.random.Generator):
        self.fit, self.idx, self.rng = fit, idx, rng
        self.pa = fit.posterior
        self.cache: dict[str, tuple] = {}

    def __call__(self, bench: str) -> tuple:
        if bench not in self.cache:
            pa, i = self.pa, self.idx
            if bench in pa.benchmark_ids:
                j = pa.benchmark_ids.index(bench)
                rng_ = pa.metric_max[j] - pa.metric_min[j]
                bounded = pa.bounded is not None and bool(pa.bounded[j])
                self.cache[bench] = (pa.loading[i, j], pa.intercept[i, j], pa.floor[i, j],
                                     pa.misfit[i, j], pa.logit_misfit[i, j], pa.inv_n[j], rng_,
                                     pa.metric_min[j], bounded)  # fmt: skip
            else:
                self.cache[bench] = self._prior_head(bench)
        return self.cache[bench]

    def _prior_head(self, bench: str) -> tuple:
        meta = self.fit.data.benchmarks.set_index("benchmark")
        if bench not in meta.index:
            meta = load_benchmark_metadata().set_index("benchmark")
        if bench not in meta.index:
            raise UsageError(
                f"benchmark '{bench}' is neither in the fit nor in the shipped metadata; "
                "refit with it in the data (its scores may all be missing)"
            )
        row = meta.loc[bench]
        spec, s, k = self.fit.spec, len(self.idx), len(self.pa.factor_ids)
        pr, st = spec.priors, spec.structure
        # as prepare_inputs decides for a benchmark of the data (an unseen one is no anchor)
        bounded = str(row.get("group")) in set(st["bounded_groups"])
        lo, hi = float(row["metric_min"]), float(row["metric_max"])
        lam = pr["positive_loading" if bounded else "loading"].draw(self.rng, (s, k))
        alpha = pr["intercept"].draw(self.rng, s)
        g = (float(row["floor"]) - lo) / (hi - lo)
        floor = np.full(s, g) if np.isfinite(g) else pr["floor"].draw(self.rng, s)
        est = pr[free_misfit_name(st["misfit_scale"])].draw(self.rng, (s, 1))
        tau, nu = misfits_np(st, est, [0], np.array([], dtype=int), 1)
        inv_n = float(inv_items(np.array([row["n_items"]], dtype=float), st["default_n_items"])[0])
        return lam, alpha, floor, tau[:, 0], nu[:, 0], inv_n, hi - lo, lo, bounded


def _theta_draws(fit, cells: list[Cell], idx: np.ndarray, rng: np.random.Generator) -> list:
    """Capability draws (S, K) and family offsets (S, J) or None of every cell; shared per
    model and per unseen family."""
    pa = fit.posterior
    cap = fit.idata["posterior"].dataset["capability"].stack(sample=("chain", "draw"))
    cap = cap.transpose("sample", "model", "factor")
    models = {str(m): i for i, m in enumerate(cap["model"].values)}
    cap = cap.to_numpy()[idx]
    fam_of = fit.inputs.family_idx
    x_fit = compute_axis_draws(fit.idata)
    x_fit = None if x_fit is None else x_fit[idx]
    fams: dict[str, tuple] = {}
    new: dict[tuple, np.ndarray] = {}
    out = []
    for c in cells:
        if not c.is_new:
            if c.model not in models:
                raise UsageError(
                    f"cell ({c.model!r}, {c.benchmark!r}): model not in the fit; give a model "
                    "of the fit or a new model as (family, flops, benchmark)"
                )
            m = models[c.model]
            off = None if pa.family_offset is None else pa.family_offset[idx, fam_of[m]]
            # benchmark slopes: c_j x_m at the model's (latent) x (x_fit is None without them)
            out.append((cap[:, m], pa.offset_at(off, 0.0 if x_fit is None else x_fit[:, m], idx)))
            continue
        key = (c.family, float(c.flops))
        if c.family not in fams:
            a, b = family_terms(pa, c.family, rng)
            off = pa.offset_of(c.family, rng)
            fams[c.family] = (a[idx], b[idx], None if off is None else off[idx])
        a, b, off = fams[c.family]
        x = compute_axis_np(c.flops, pa.x0)
        if key not in new:
            new[key] = a + b * x + pa.residual_sd[idx] * rng.standard_normal(a.shape)
        out.append((new[key], pa.offset_at(off, x, idx)))
    return out


def joint_draws(
    fit, cells: Sequence[Cell | tuple], *, seed: int = 0, max_draws: int | None = 2000
) -> JointDraws:
    """Joint posterior predictive draws of ``cells`` (see the module docstring).

    Parameters
    ----------
    fit : CapabilityModel
    cells : sequence of Cell or tuples
        ``(model, benchmark)`` for models of the fit, ``(family, flops, benchmark)`` for new ones.
    seed : int
        Seed of the noise and new-model draws.
    max_draws : int or None
        Use at most this many posterior draws (evenly thinned); None = all.
    """
    cells = as_cells(cells, "joint_draws")
    rng = np.random.default_rng(seed)
    n_s = fit.posterior.n_samples
    idx = np.arange(n_s)
    if max_draws is not None and n_s > max_draws:
        idx = np.linspace(0, n_s - 1, int(max_draws)).round().astype(int)
    heads = _Heads(fit, idx, rng)
    thetas = _theta_draws(fit, cells, idx, rng)
    col = {b: j for j, b in enumerate(fit.posterior.benchmark_ids)}
    y, p, sd, scale, offset = [], [], [], [], []
    for c, (th, off) in zip(cells, thetas, strict=True):
        lam, alpha, g, tau, nu, inv_n, rng_, lo, bounded = heads(c.benchmark)
        if off is not None and c.benchmark in col:
            alpha = alpha + off[:, col[c.benchmark]]
        pc = expected_score_np(th, alpha, lam, g, bounded)
        sc = noise_sd_np(pc, inv_n, tau, g, nu)
        y.append(np.clip(pc + sc * rng.standard_normal(pc.shape), 0.0, 1.0))
        p.append(pc)
        sd.append(sc)
        scale.append(rng_)
        offset.append(lo)
    y_, p_, sd_ = np.stack(y, 1), np.stack(p, 1), np.stack(sd, 1)
    return JointDraws(cells, y_, p_, sd_, np.array(scale), np.array(offset))
