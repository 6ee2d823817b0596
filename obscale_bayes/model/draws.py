"""A fit's posterior draws as NumPy arrays, and the expected / predictive scores they imply.

:class:`PosteriorArrays` stacks the ``(chain, draw)`` posterior into one ``sample`` axis; every
NumPy consumer (forecasts, fill-in-the-blanks, checks, what to evaluate next) reads it, and
its :meth:`PosteriorArrays.scores` calls the equations in :mod:`obscale_bayes.model.equations`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import xarray as xr

from obscale_bayes.model.equations import (
    compute_shift_np,
    efficiency_centre_np,
    expected_score_np,
    noise_sd_np,
)


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
    efficiency_trend: np.ndarray | None = None  # (S, K) per year (release_trend), else None
    new_family_year: float = 0.0  # release year (minus the reference) of an unseen family
    family_offset: np.ndarray | None = None  # (S, F, J) family_offsets, else None
    family_offset_sd: np.ndarray | None = None  # (S, J), 0 on the anchors
    benchmark_slope: np.ndarray | None = None  # (S, J) benchmark_slopes (0 on anchors), else None

    @property
    def new_family_efficiency_mean(self) -> np.ndarray:
        """(S, K) centre of an unseen family's efficiency: the population mean, plus the
        release-date trend at :attr:`new_family_year` where the spec has one."""
        if self.efficiency_trend is None:
            return self.efficiency_mean
        return efficiency_centre_np(self.efficiency_mean, self.efficiency_trend,
                                    self.new_family_year)  # fmt: skip

    def with_anchor_misfit(self, anchors: list[str], value: float | None) -> PosteriorArrays:
        """A copy whose anchors' score-scale misfit is ``value`` in every draw (None: self).

        The spec's ``new_model_anchor_misfit``: the noise of a new model's anchor scores,
        where the fit used the fixed ``anchor_misfit`` (see :mod:`obscale_bayes.spec.spec`).
        """
        if value is None:
            return self
        idx = [self.benchmark_ids.index(a) for a in anchors if a in self.benchmark_ids]
        misfit = self.misfit.copy()
        misfit[:, idx] = value
        return replace(self, misfit=misfit)

    @property
    def n_samples(self) -> int:
        return self.loading.shape[0]

    def family_index(self, family: str) -> int | None:
        try:
            return self.family_ids.index(family)
        except ValueError:
            return None

    def offset_of(self, family: str | None, rng: np.random.Generator) -> np.ndarray | None:
        r"""Family-by-benchmark offsets :math:`\delta_{f\cdot}` (S, J) of ``family``: the fit's
        draws for a family it has seen, draws from :math:`N(0, \sigma^\delta)` for an unseen one
        (or None: no family); None where the spec has no offsets (no random numbers used)."""
        if self.family_offset is None:
            return None
        i = self.family_index(family) if isinstance(family, str) else None
        if i is not None:
            return self.family_offset[:, i]
        return self.family_offset_sd * rng.standard_normal(self.family_offset_sd.shape)

    def offsets_of(self, families: list, rng: np.random.Generator) -> np.ndarray | None:
        """:meth:`offset_of` for several models, stacked (S, M, J); one draw per unseen family,
        shared by its models; None where the spec has no offsets."""
        if self.family_offset is None:
            return None
        drawn: dict[str, np.ndarray] = {}
        out = []
        for f in families:
            if not isinstance(f, str):  # no family: a draw of its own
                out.append(self.offset_of(None, rng))
                continue
            if f not in drawn:
                drawn[f] = self.offset_of(f, rng)
            out.append(drawn[f])
        return np.stack(out, axis=1)

    def offset_at(
        self, offset: np.ndarray | None, x, idx: np.ndarray | None = None
    ) -> np.ndarray | None:
        r"""A model's intercept shift at compute axis ``x``: its family offsets ``offset`` (S, J)
        or None, plus the benchmark slopes' :math:`c_j x` (``x`` a scalar or (S,) draws);
        ``offset`` as it is where the spec has no benchmark slopes.  ``idx``: the draws kept
        (thinned), to which ``offset`` and ``x`` already belong."""
        if self.benchmark_slope is None:
            return offset
        slope = self.benchmark_slope if idx is None else self.benchmark_slope[idx]
        x = np.broadcast_to(np.asarray(x, dtype=float), slope.shape[:1])
        shift = compute_shift_np(slope, x)
        return shift if offset is None else offset + shift

    def offsets_at(self, offset: np.ndarray | None, xs) -> np.ndarray | None:
        """:meth:`offset_at` for several compute-axis values ``xs`` (N,) of one model's family:
        (S, N, J), or None where there is neither offset nor slope."""
        if self.benchmark_slope is None and offset is None:
            return None
        base = np.zeros_like(self.intercept) if offset is None else offset
        return np.stack([self.offset_at(base, x) for x in np.atleast_1d(xs)], axis=1)

    def intercepts(self, offset: np.ndarray | None, sh: tuple = (slice(None),)) -> np.ndarray:
        """Intercepts of a model with family offsets ``offset``: (S, J) from :meth:`offset_of`,
        indexed by ``sh``, or already (S, ..., J) from :meth:`offsets_of`."""
        alpha = self.intercept[sh]
        if offset is None:
            return alpha
        return alpha + (offset[sh] if offset.ndim == 2 else offset)

    def scores(
        self,
        theta: np.ndarray,
        rng: np.random.Generator | None,
        offset: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Expected score p and (if ``rng``) a predictive draw y, both (S, ..., J), in [0, 1].

        ``theta`` has shape (S, ..., K); ``offset`` are the family offsets, (S, J) of one
        family (:meth:`offset_of`) or (S, ..., J) per model (:meth:`offsets_of`); None: none.
        """
        sh = (slice(None),) + (None,) * (theta.ndim - 2)
        # every benchmark at once: theta (S, ..., 1, K) against loadings (S, 1.., J, K)
        p = expected_score_np(
            theta[..., None, :],
            self.intercepts(offset, sh),
            self.loading[sh],
            self.floor[sh],
            self.bounded,
        )
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
    new_family_year: float = 0.0,
) -> PosteriorArrays:
    """Stack a fit's posterior into :class:`PosteriorArrays` (``new_family_year``: see
    :class:`~obscale_bayes.model.inputs.ModelInputs`; used only with a release-date trend)."""
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
        efficiency_trend=(
            arr("efficiency_trend", ("factor",)) if "efficiency_trend" in post else None
        ),
        new_family_year=float(new_family_year),
        family_offset=(
            arr("family_offset", ("family", "benchmark")) if "family_offset" in post else None
        ),
        family_offset_sd=(
            _on_benchmarks(post, "family_offset_sd") if "family_offset" in post else None
        ),
        benchmark_slope=(
            arr("benchmark_slope", ("benchmark",)) if "benchmark_slope" in post else None
        ),
    )


def compute_axis_draws(idata: xr.DataTree) -> np.ndarray | None:
    """(S, M) compute axis of a fit's models (latent draws where FLOPs are unknown), in the
    sample order of :func:`posterior_arrays`; None where the spec has no benchmark slopes (the
    graph keeps the axis only then)."""
    post = idata["posterior"].dataset
    if "compute_axis" not in post:
        return None
    x = post["compute_axis"].stack(sample=("chain", "draw")).transpose("sample", "model")
    return x.to_numpy()


def _on_benchmarks(post: xr.Dataset, name: str) -> np.ndarray:
    """(S, J) draws of a ``free_benchmark`` parameter, 0 on the other benchmarks (anchors)."""
    v = post[name].transpose("sample", "free_benchmark")
    out = np.zeros((post.sizes["sample"], post.sizes["benchmark"]))
    pos = {str(b): j for j, b in enumerate(post["benchmark"].values)}
    out[:, [pos[str(b)] for b in v["free_benchmark"].values]] = v.to_numpy()
    return out


def family_terms(
    pa: PosteriorArrays, family: str, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Efficiency and slope draws (S, K) of ``family``; population draws for an unseen family."""
    i = pa.family_index(family)
    if i is not None:
        return pa.efficiency[:, i], pa.slope[:, i]
    shape = pa.efficiency_mean.shape
    a = pa.new_family_efficiency_mean + pa.efficiency_sd * rng.standard_normal(shape)
    b = pa.slope_mean + pa.slope_sd * rng.standard_normal(shape)
    return a, b
