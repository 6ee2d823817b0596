r"""Fill in the blanks: forecast new models' missing scores from the scores they have.

The fit is not redone.  For every posterior draw :math:`s` of the population parameters a new
model's capabilities :math:`\theta` get a Gaussian prior :math:`N(m_s, C_s)` from its family and
compute (the model's own equations, with the family terms, the unknown compute and, for a new
family, the family effects integrated out), and are then conditioned on the observed scores:

.. math::

    \log q_s(\theta) = \log N(\theta; m_s, C_s)
        + \sum_{j \in \text{obs}} \log \mathcal D\!\left(y_j;\ p_j(\theta),\ \mathrm{sd}_j(\theta)\right)

(:class:`ConditionalTarget`; link, noise and likelihood -- normal or Student-t, as the spec
says -- are those of :mod:`obscale_bayes.model.equations`).  Each observed cell depends on
:math:`\theta` only through its linear predictor :math:`\eta_j`, so the gradient and Hessian
follow by the chain rule from the first two derivatives of the cell's log density in
:math:`\eta_j` (central differences of the equations, three evaluations a cell) and of the
bounded scale where a benchmark is on it.  One draw from :math:`q_s` is taken by importance
resampling from a Laplace proposal adapted per model (:mod:`obscale_bayes.forecast.laplace_is`),
for all new models and all draws in one batched NumPy pass (in blocks of ``_BLOCK_CELLS``
cells, for memory).
Combined with the posterior draws this samples the joint posterior of the population
parameters and the new models' capabilities, *given the population parameters are not updated
by the new models* -- the approximation that makes this cheap, checked against a full refit in
``tests/statistical/test_conditional_refit.py``.

Prior for each case (per draw; :math:`x` is centred log10 FLOPs):

* known family, known FLOPs: :math:`m = a_f + b_f x`, :math:`C = \mathrm{diag}(\sigma_e^2)`;
* known family, unknown FLOPs (:math:`x \sim N(\mu_x, s_x^2)`): :math:`m = a_f + b_f \mu_x`,
  :math:`C = \mathrm{diag}(\sigma_e^2) + s_x^2 b_f b_f^T`;
* new family, known FLOPs: :math:`m = \mu_a + \mu_b x`,
  :math:`C = \mathrm{diag}(\sigma_a^2 + \sigma_b^2 x^2 + \sigma_e^2)`;
* new family, unknown FLOPs: the exact mean and covariance of :math:`a + b x + e` (a Gaussian
  moment match; the true prior is not Gaussian there).

Each new model has its own random stream (spawned from ``seed`` by its row number), so its
numbers do not depend on the other models forecast with it.
"""

from __future__ import annotations

import numpy as np

from obscale_bayes.data.tables import BenchmarkData
from obscale_bayes.errors import DataError
from obscale_bayes.forecast.laplace_is import find_modes, importance_resample, inv_spd
from obscale_bayes.forecast.result import Forecast, package_forecast
from obscale_bayes.model.equations import (
    bounded_np,
    compute_axis_np,
    floored_sigmoid_np,
    linear_predictor_np,
    noise_sd_np,
    observation_logpdf_np,
)
from obscale_bayes.model.inputs import x_prior_for_unknown
from obscale_bayes.progress import get_logger
from obscale_bayes.validation import check_ci, check_positive_int

__all__ = ["ConditionalTarget", "conditional_forecast", "forecast_from_scores", "theta_prior"]

log = get_logger(__name__)

_BLOCK_CELLS = 1_600_000  # (draw, model, observed score) cells conditioned at once (memory)
_PILOT_DRAWS = 32  # draws whose modes give the Newton start of all draws


def forecast_from_scores(
    fit, new: BenchmarkData, ci: float = 0.9, seed: int = 0, n_particles: int = 4
) -> Forecast:
    """Fill in the blanks: forecast the scores new models do not have from those they have.

    Each posterior draw updates each new model's capabilities with its observed scores
    (importance resampling from a Laplace proposal, see this module's docstring); the rest of
    the model is not refitted.  A new model's anchor scores carry the spec's
    ``new_model_anchor_misfit`` (conditioning and predictive noise), not the fit's own
    ``anchor_misfit`` (:attr:`CapabilityModel.new_model_posterior`).

    Parameters
    ----------
    fit : CapabilityModel
        A fitted model.
    new : BenchmarkData
        The new models (a ``models`` row each: family, FLOPs or parameters, either may be
        blank) and the scores they have, on benchmarks of the fit.
    ci : float
        Central interval probability in (0, 1).
    seed : int
        Seed of the importance sampling and the predictive noise (same seed, same numbers).
    n_particles : int
        Importance particles per posterior draw; a draw whose effective sample size is under
        half of them gets ``15 * n_particles`` more.

    Returns
    -------
    Forecast
        Every benchmark of every new model, with an ``observed`` column; the table's
        ``attrs["importance_ess_fraction"]`` holds each model's median effective sample size
        fraction over the draws.
    """
    return conditional_forecast(
        fit,
        new,
        ci=check_ci(ci),
        seed=seed,
        n_particles=check_positive_int(n_particles, "n_particles"),
    )


def theta_prior(
    fit, family: str | None, flops_1e21: float, params_b: float
) -> tuple[np.ndarray, np.ndarray]:
    """Per-draw Gaussian prior (mean (S, K), covariance (S, K, K)) of a new model's capabilities."""
    pa = fit.posterior
    x0 = pa.x0
    known_x = np.isfinite(flops_1e21) and flops_1e21 > 0
    if known_x:
        x = compute_axis_np(flops_1e21, x0, per_1e21=True)
    else:
        mu, sd = x_prior_for_unknown(np.array([params_b], dtype=float), fit.spec)
        mx, sx = float(mu[0]), float(sd[0])
    fi = pa.family_index(family) if isinstance(family, str) else None
    se2 = pa.residual_sd**2
    if fi is not None:
        a, b = pa.efficiency[:, fi], pa.slope[:, fi]
        if known_x:
            return a + b * x, _diag(se2)
        return a + b * mx, _diag(se2) + sx**2 * b[:, :, None] * b[:, None, :]
    ma, sa2 = pa.new_family_efficiency_mean, pa.efficiency_sd**2
    mb, sb2 = pa.slope_mean, pa.slope_sd**2
    if known_x:
        return ma + mb * x, _diag(sa2 + sb2 * x**2 + se2)
    cov = _diag(sa2 + sb2 * (mx**2 + sx**2) + se2) + sx**2 * mb[:, :, None] * mb[:, None, :]
    return ma + mb * mx, cov


def _diag(v: np.ndarray) -> np.ndarray:
    out = np.zeros(v.shape + (v.shape[-1],))
    idx = np.arange(v.shape[-1])
    out[..., idx, idx] = v
    return out


_H = 1e-4  # central-difference step on the logit scale
_ARRAYS = ("mean", "prec", "lam", "alpha", "floor", "tau", "nu", "y", "inv_n", "w", "bounded")


class ConditionalTarget:
    """Log density of new models' capabilities given their scores, per posterior draw.

    Parameters
    ----------
    pa : PosteriorArrays
        The fit's draws (S of them).
    mean, cov : numpy.ndarray or list of them
        Gaussian prior of one model's capabilities per draw, ``(S, K)`` and ``(S, K, K)``
        (:func:`obscale_bayes.forecast.conditional.theta_prior`), or a list, one per model.
    bench_idx, y01 : numpy.ndarray or list of them
        The observed cells of each model: benchmark indices into the fit's benchmarks and
        scores rescaled to [0, 1]; models with fewer cells are padded with cells of weight 0.
    structure : dict, optional
        The spec's ``[structure]`` (the likelihood); default a normal likelihood.

    Thetas have the pair axis first, ``(M * S, ..., K)`` model-major; for one model that is
    ``(S, ..., K)``.
    """

    def __init__(
        self,
        pa,
        mean,
        cov,
        bench_idx,
        y01,
        structure: dict | None = None,
        offsets=None,
        extra_logit_sd=None,
    ):
        if not isinstance(mean, list):
            mean, cov, bench_idx, y01 = [mean], [cov], [bench_idx], [y01]
            offsets = None if offsets is None else [offsets]
            extra_logit_sd = None if extra_logit_sd is None else [extra_logit_sd]
        n_obs = max(1, max(len(j) for j in bench_idx))
        idx = np.zeros((len(mean), n_obs), dtype=int)
        y = np.full((len(mean), n_obs), 0.5)
        w = np.zeros((len(mean), n_obs))
        for m, (j, v) in enumerate(zip(bench_idx, y01, strict=True)):
            idx[m, : len(j)], y[m, : len(j)], w[m, : len(j)] = j, v, 1.0
        s = pa.n_samples

        def per_draw(a: np.ndarray) -> np.ndarray:  # (S, J...) -> (M * S, O...)
            return np.concatenate([a[:, j] for j in idx])

        def per_model(a: np.ndarray) -> np.ndarray:  # (M, O) -> (M * S, O)
            return np.repeat(a, s, axis=0)

        self.structure = structure or {"likelihood": "normal"}
        self.mean = np.concatenate(mean)
        self.prec = inv_spd(np.concatenate(cov))
        self.lam = per_draw(pa.loading)
        if offsets is None or all(o is None for o in offsets):
            self.alpha = per_draw(pa.intercept)
        else:  # each model's intercepts with its family's offsets
            self.alpha = np.concatenate(
                [pa.intercepts(o)[:, j] for o, j in zip(offsets, idx, strict=True)]
            )
        self.floor = per_draw(pa.floor)
        self.tau = per_draw(pa.misfit)
        self.nu = per_draw(pa.logit_misfit)
        if extra_logit_sd is not None and any(e is not None for e in extra_logit_sd):
            # an unseen family's offsets, marginalised: logit-scale sd added in quadrature
            zero = np.zeros_like(pa.logit_misfit)
            extra = np.concatenate(
                [(zero if e is None else e)[:, j] for e, j in zip(extra_logit_sd, idx, strict=True)]
            )
            self.nu = np.sqrt(self.nu**2 + extra**2)
        self.y, self.inv_n, self.w = per_model(y), per_model(pa.inv_n[idx]), per_model(w)
        bnd = None if pa.bounded is None else pa.bounded[idx] & (w > 0)
        self.bounded = per_model(bnd) if bnd is not None and bnd.any() else None

    def __len__(self) -> int:
        return len(self.mean)

    def take(self, idx) -> ConditionalTarget:
        """The target of a subset of pairs (a slice gives views, an index array copies)."""
        out = object.__new__(ConditionalTarget)
        out.structure = self.structure
        for name in _ARRAYS:
            a = getattr(self, name)
            setattr(out, name, None if a is None else a[idx])
        return out

    def _cells(self, theta: np.ndarray) -> tuple:
        """Per-cell arrays shaped to broadcast against ``theta``'s extra (particle) axes."""
        sh = (slice(None),) + (None,) * (theta.ndim - 2)
        bnd = None if self.bounded is None else self.bounded[sh]
        return sh, bnd

    def eta(self, theta: np.ndarray) -> np.ndarray:
        """Linear predictor ``(P, ..., O)`` of the observed cells at ``theta``."""
        sh, bnd = self._cells(theta)
        return linear_predictor_np(theta[..., None, :], self.alpha[sh], self.lam[sh], bnd)

    def _sd(self, p: np.ndarray, sh) -> np.ndarray:
        return noise_sd_np(p, self.inv_n[sh], self.tau[sh], self.floor[sh], self.nu[sh])

    def cell_loglik(self, eta: np.ndarray) -> np.ndarray:
        """Log density of each observed cell (0 for padding) at linear predictor ``eta``."""
        sh = (slice(None),) + (None,) * (eta.ndim - 2)
        p = floored_sigmoid_np(eta, self.floor[sh])
        ll = observation_logpdf_np(self.y[sh], p, self._sd(p, sh), self.structure)
        return ll * self.w[sh]

    def cell_params(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Expected score and noise sd ``(P, ..., O)`` of the observed cells at ``theta``."""
        sh, _ = self._cells(theta)
        p = floored_sigmoid_np(self.eta(theta), self.floor[sh])
        return p, self._sd(p, sh)

    def __call__(self, theta: np.ndarray) -> np.ndarray:
        """Log density ``(P, ...)`` at ``theta`` ``(P, ..., K)``, up to a constant per pair."""
        return self.log_density(theta)[0]

    def log_density(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Log density ``(P, ...)`` at ``theta`` and its cells' terms ``(P, ..., O)``."""
        sh, _ = self._cells(theta)
        cells = self.cell_loglik(self.eta(theta))
        return -0.5 * _quad(theta - self.mean[sh], self.prec[sh]) + cells.sum(axis=-1), cells

    def derivatives(
        self, theta: np.ndarray, cells: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Log density ``(P,)``, gradient ``(P, K)`` and negative Hessian ``(P, K, K)``.

        ``theta`` is ``(P, K)``; ``cells``, if given, are the cells' terms at ``theta``
        (from :meth:`log_density`), which saves one evaluation.
        """
        eta = self.eta(theta)  # (P, O)
        jac = self.lam  # d eta / d theta, (P, O, K)
        curv = None  # d2 eta / d theta_k^2 on the bounded scale
        if self.bounded is not None:
            u0, up, um = (bounded_np(theta + d) for d in (0.0, _H, -_H))
            on = self.bounded[..., None]
            jac = self.lam * np.where(on, ((up - um) / (2 * _H))[:, None, :], 1.0)
            curv = np.where(on, self.lam * ((up - 2 * u0 + um) / _H**2)[:, None, :], 0.0)
        l0 = self.cell_loglik(eta) if cells is None else cells
        lp, lm = self.cell_loglik(eta + _H), self.cell_loglik(eta - _H)
        d1, d2 = (lp - lm) / (2 * _H), (lp - 2 * l0 + lm) / _H**2
        dev = theta - self.mean
        f = -0.5 * _quad(dev, self.prec) + l0.sum(axis=-1)
        g = np.matmul(d1[:, None, :], jac)[:, 0] - np.matmul(self.prec, dev[..., None])[..., 0]
        neg_h = self.prec - np.matmul(np.swapaxes(d2[..., None] * jac, 1, 2), jac)
        if curv is not None:
            k = theta.shape[-1]
            neg_h[:, np.arange(k), np.arange(k)] -= np.matmul(d1[:, None, :], curv)[:, 0]
        return f, g, neg_h


def _quad(d: np.ndarray, a: np.ndarray) -> np.ndarray:
    """``d^T a d`` over the last axis (``a`` broadcasts against ``d``'s leading axes)."""
    k = d.shape[-1]
    return sum(d[..., i] * sum(a[..., i, j] * d[..., j] for j in range(k)) for i in range(k))


def conditional_forecast(fit, new: BenchmarkData, ci: float, seed: int, n_particles: int = 4):
    """Forecast every benchmark of every model in ``new`` from its given scores (see module)."""
    pa = fit.new_model_posterior  # new models: their anchors' misfit (spec)
    extra = sorted(set(new.scores["benchmark"]) - set(pa.benchmark_ids))
    if extra:
        raise DataError(
            f"{new.source}: benchmark(s) {extra[:5]} were not part of the fit "
            f"({', '.join(pa.benchmark_ids)}); drop those columns or refit with them"
        )
    if new.models.empty:
        raise DataError(f"{new.source}: no models to forecast; add at least one model row")
    b_pos = {b: i for i, b in enumerate(pa.benchmark_ids)}
    by_model = dict(iter(new.scores.groupby("model", sort=False)))
    empty = new.scores.iloc[0:0]
    rows = list(new.models.itertuples(index=False))
    rngs = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(len(rows))]
    cells, priors, offsets, known, extra = [], [], [], [], []
    for row, rng in zip(rows, rngs, strict=True):
        sc = by_model.get(row.model, empty)
        j = sc["benchmark"].map(b_pos).to_numpy(dtype=int)
        y01 = (sc["value"].to_numpy(dtype=float) - pa.metric_min[j]) / (
            pa.metric_max[j] - pa.metric_min[j]
        )
        cells.append((j, y01))
        fam = row.family if isinstance(row.family, str) else None
        priors.append(theta_prior(fit, fam, float(row.flops_1e21), float(row.params_b)))
        # Family offsets: a seen family's enter the conditioning as they are.  An unseen
        # family's are unknown: its observed cells get their prior sd as extra logit misfit
        # (the offsets marginalised, delta method), and its blank cells fresh prior draws.
        off = pa.offset_of(fam, rng)
        seen = off is None or pa.family_index(fam) is not None
        offsets.append(off)
        known.append(off if seen else None)
        extra.append(None if seen else pa.family_offset_sd)
    s = pa.n_samples
    thetas, ess = [], []
    for part in _blocks([len(j) for j, _ in cells], s):
        th, e = _condition(fit, priors[part], cells[part], rngs[part], n_particles,
                           known[part], extra[part])  # fmt: skip
        thetas += list(th.reshape(-1, s, th.shape[-1]))
        ess += [float(np.median(v)) for v in e.reshape(-1, s)]
    names = [str(r.model) for r in rows]
    fams = [r.family if isinstance(r.family, str) else None for r in rows]
    flops_l = [float(r.flops_1e21) * 1e21 if np.isfinite(r.flops_1e21) else np.nan for r in rows]
    ys = [
        pa.to_metric(pa.scores(th, rng, o)[1])
        for th, rng, o in zip(thetas, rngs, offsets, strict=True)
    ]
    observed = new.scores[["model", "benchmark", "value"]].rename(columns={"value": "observed"})
    fc = package_forecast(
        fit, names, fams, flops_l, np.stack(thetas, 1), np.stack(ys, 1), ci, observed=observed
    )
    fc.table.attrs["importance_ess_fraction"] = dict(zip(names, ess, strict=True))
    return fc


def _blocks(n_obs: list[int], n_draws: int) -> list[slice]:
    """Consecutive models whose padded cells (draws x models x most scores) fit a block."""
    out, start, most = [], 0, 1
    for m, n in enumerate(n_obs):
        most = max(most, n)
        if m > start and n_draws * most * (m + 1 - start) > _BLOCK_CELLS:
            out.append(slice(start, m))
            start, most = m, max(1, n)
    return out + [slice(start, len(n_obs))]


def _condition(
    fit, priors, cells, rngs, n_particles: int, offsets=None, extra_logit_sd=None
) -> tuple[np.ndarray, np.ndarray]:
    """Capability draws ``(M * S, K)`` of a block of models and the ESS fraction per pair
    (``offsets``: each model's family offsets (S, J) or None; ``extra_logit_sd``: (S, J) logit
    misfit added in quadrature, or None)."""
    pa = fit.new_model_posterior
    s = pa.n_samples
    target = ConditionalTarget(
        pa,
        [m for m, _ in priors],
        [c for _, c in priors],
        [j for j, _ in cells],
        [y for _, y in cells],
        fit.spec.structure,
        offsets,
        extra_logit_sd,
    )
    # Newton start: each model's median mode over a few draws (a step or two from every draw's)
    pilot = np.linspace(0, s - 1, min(s, _PILOT_DRAWS)).astype(int)
    pairs = (np.arange(len(priors))[:, None] * s + pilot).ravel()
    modes, _ = find_modes(target.take(pairs), target.mean[pairs])
    start = np.median(modes.reshape(len(priors), len(pilot), -1), axis=1)
    mode, low = find_modes(target, np.repeat(start, s, axis=0))
    theta, ess = importance_resample(target, mode, low, rngs, n_particles)
    log.debug("conditioned %d models: median ESS fraction %.2f", len(priors), np.median(ess))
    return theta, ess
