r"""Fill in the blanks: forecast a new model's missing scores from the scores it has.

The fit is not redone.  For every posterior draw :math:`s` of the population parameters the new
model's capabilities :math:`\theta` get a Gaussian prior :math:`N(m_s, C_s)` from its family and
compute (the model's own equations, with the family terms, the unknown compute and, for a new
family, the family effects integrated out), and are then conditioned on the observed scores:

.. math::

    \log q_s(\theta) = \log N(\theta; m_s, C_s)
        + \sum_{j \in \text{obs}} \log N\!\left(y_j;\ p_j(\theta),\ \mathrm{sd}_j(\theta)\right)

One exact draw from :math:`q_s` is taken by importance resampling: the proposal is a
multivariate t (4 d.o.f.) at the mode of :math:`\log q_s` with the inverse negative Hessian as
scale (a Laplace approximation, found by Newton steps vectorised over draws), ``n_particles``
particles per draw.  Combined with the posterior draws this samples the joint posterior of the
population parameters and the new model's capabilities, *given the population parameters are
not updated by the one new model* -- the approximation that makes this cheap, checked against a
full refit in the tests.

Prior for each case (per draw; :math:`x` is centred log10 FLOPs):

* known family, known FLOPs: :math:`m = a_f + b_f x`, :math:`C = \mathrm{diag}(\sigma_e^2)`;
* known family, unknown FLOPs (:math:`x \sim N(\mu_x, s_x^2)`): :math:`m = a_f + b_f \mu_x`,
  :math:`C = \mathrm{diag}(\sigma_e^2) + s_x^2 b_f b_f^T`;
* new family, known FLOPs: :math:`m = \mu_a + \mu_b x`,
  :math:`C = \mathrm{diag}(\sigma_a^2 + \sigma_b^2 x^2 + \sigma_e^2)`;
* new family, unknown FLOPs: the exact mean and covariance of :math:`a + b x + e` (a Gaussian
  moment match; the true prior is not Gaussian there).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from obscale_bayes.data.tables import BenchmarkData
from obscale_bayes.errors import DataError
from obscale_bayes.forecast.result import Forecast, package_forecast
from obscale_bayes.model.equations import compute_axis_np, expected_score_np, noise_sd_np
from obscale_bayes.model.inputs import x_prior_for_unknown
from obscale_bayes.validation import check_ci

__all__ = [
    "ConditionalTarget",
    "conditional_forecast",
    "forecast_from_scores",
    "sample_conditional",
    "theta_prior",
]


def forecast_from_scores(
    fit, new: BenchmarkData, ci: float = 0.9, seed: int = 0, n_particles: int = 256
) -> Forecast:
    """Fill in the blanks: forecast the scores new models do not have from those they have.

    Each posterior draw updates a new model's capabilities with its observed scores
    (Laplace-proposal importance sampling, see this module's docstring); the rest of the model
    is not refitted.
    """
    return conditional_forecast(fit, new, ci=check_ci(ci), seed=seed, n_particles=n_particles)


_T_DOF = 4.0


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
    ma, sa2 = pa.efficiency_mean, pa.efficiency_sd**2
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


class ConditionalTarget:
    """Log density of a new model's capabilities given its scores, per posterior draw.

    Vectorised over thetas ``(S, ..., K)``: the Gaussian prior ``N(mean_s, cov_s)`` of
    :func:`theta_prior` plus the log-likelihood of the observed scores ``y01`` on benchmarks
    ``bench_idx`` (indices into the fit's benchmarks), up to a constant.
    """

    def __init__(self, pa, mean, cov, bench_idx, y01):
        self.pa = pa
        self.mean = mean
        self.prec = np.linalg.inv(cov)
        self.j = bench_idx
        self.y = y01
        self.lam = pa.loading[:, bench_idx, :]  # (S, O, K)
        self.alpha = pa.intercept[:, bench_idx]
        self.bounded = None if pa.bounded is None else pa.bounded[bench_idx]
        self.floor = pa.floor[:, bench_idx]
        self.tau = pa.misfit[:, bench_idx]
        self.nu = pa.logit_misfit[:, bench_idx]
        self.inv_n = pa.inv_n[bench_idx]

    def cell_params(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Expected score and noise sd ``(S, ..., O)`` of the observed cells at ``theta``."""
        sh = (slice(None),) + (None,) * (theta.ndim - 2)
        p = expected_score_np(
            theta[..., None, :], self.alpha[sh], self.lam[sh], self.floor[sh], self.bounded
        )
        return p, noise_sd_np(p, self.inv_n, self.tau[sh], self.floor[sh], self.nu[sh])

    def __call__(self, theta: np.ndarray) -> np.ndarray:
        sh = (slice(None),) + (None,) * (theta.ndim - 2)
        d = theta - self.mean[sh]
        lp = -0.5 * np.einsum("s...k,skl,s...l->s...", d, self.prec, d)
        if len(self.j):
            p, sd = self.cell_params(theta)
            lp = lp + np.sum(-0.5 * ((self.y - p) / sd) ** 2 - np.log(sd), axis=-1)
        return lp


def _newton_mode(
    f: ConditionalTarget, start: np.ndarray, iters: int = 40, h: float = 1e-4
) -> tuple[np.ndarray, np.ndarray]:
    """Mode and negative Hessian of ``f`` per draw by damped Newton with finite differences."""
    th = start.copy()
    for _ in range(iters):
        g, hess = _grad_hess(f, th, h)
        # Saddle-free Newton: use |eigenvalues| of the negative Hessian so every step ascends
        # even where the target is not locally concave, and cap the step at 2 logit units.
        prec = _abs_eig(-hess)
        step = np.linalg.solve(prec, g[:, :, None])[:, :, 0]
        norm = np.linalg.norm(step, axis=1, keepdims=True)
        step = step * np.minimum(1.0, 2.0 / np.maximum(norm, 1e-300))
        f0 = f(th)
        t = np.ones(th.shape[0])
        for _ in range(30):
            better = f(th + t[:, None] * step) >= f0 - 1e-9
            if better.all():
                break
            t = np.where(better, t, t / 2)
        th = th + t[:, None] * step
        if np.max(np.abs(t[:, None] * step)) < 1e-6:
            break
    _, hess = _grad_hess(f, th, h)
    return th, _abs_eig(-hess)


def _abs_eig(m: np.ndarray, rel: float = 1e-8) -> np.ndarray:
    """Symmetric positive-definite version of ``m``: eigenvalues replaced by their modulus."""
    m = 0.5 * (m + np.swapaxes(m, -1, -2))
    e, v = np.linalg.eigh(m)
    e = np.abs(e)
    e = np.maximum(e, rel * e.max(axis=-1, keepdims=True) + 1e-10)
    return np.einsum("...ij,...j,...kj->...ik", v, e, v)


def _grad_hess(f, th, h):
    s, k = th.shape
    eye = np.eye(k) * h
    f0 = f(th)
    fp = np.stack([f(th + eye[i]) for i in range(k)], 1)
    fm = np.stack([f(th - eye[i]) for i in range(k)], 1)
    g = (fp - fm) / (2 * h)
    hess = np.zeros((s, k, k))
    for i in range(k):
        hess[:, i, i] = (fp[:, i] - 2 * f0 + fm[:, i]) / h**2
        for j in range(i + 1, k):
            fpp = f(th + eye[i] + eye[j])
            fpm = f(th + eye[i] - eye[j])
            fmp = f(th - eye[i] + eye[j])
            fmm = f(th - eye[i] - eye[j])
            hess[:, i, j] = hess[:, j, i] = (fpp - fpm - fmp + fmm) / (4 * h**2)
    return g, hess


def sample_conditional(
    f: ConditionalTarget, mean: np.ndarray, cov: np.ndarray, rng, n_particles: int
) -> tuple[np.ndarray, np.ndarray]:
    """One draw of theta per posterior draw from ``f`` and the relative IS efficiency per draw."""
    s, k = mean.shape
    mode, neg_h = _newton_mode(f, mean)
    scale = np.linalg.inv(neg_h)
    chol = np.linalg.cholesky(0.5 * (scale + np.swapaxes(scale, -1, -2)))
    z = rng.standard_normal((s, n_particles, k))
    w = rng.chisquare(_T_DOF, (s, n_particles)) / _T_DOF
    dev = np.einsum("skl,spl->spk", chol, z) / np.sqrt(w)[:, :, None]
    particles = mode[:, None, :] + dev
    # log density of the multivariate t proposal (up to a per-draw constant, which cancels)
    sol = np.linalg.solve(scale[:, None, :, :], dev[..., None])[..., 0]
    maha = np.einsum("spk,spk->sp", dev, sol)
    log_q = -0.5 * (_T_DOF + k) * np.log1p(maha / _T_DOF)
    log_w = f(particles) - log_q
    log_w -= log_w.max(axis=1, keepdims=True)
    wts = np.exp(log_w)
    wts /= wts.sum(axis=1, keepdims=True)
    ess = 1.0 / np.sum(wts**2, axis=1) / n_particles
    cum = np.cumsum(wts, axis=1)
    u = rng.random((s, 1))
    pick = np.minimum((cum < u).sum(axis=1), n_particles - 1)
    return particles[np.arange(s), pick], ess


def conditional_forecast(fit, new: BenchmarkData, ci: float, seed: int, n_particles: int = 256):
    """Forecast every benchmark of every model in ``new`` from its given scores (see module)."""
    pa = fit.posterior
    known_b = set(pa.benchmark_ids)
    extra = sorted(set(new.scores["benchmark"]) - known_b)
    if extra:
        raise DataError(
            f"{new.source}: benchmark(s) {extra[:5]} were not part of the fit "
            f"({', '.join(pa.benchmark_ids)}); drop those columns or refit with them"
        )
    if new.models.empty:
        raise DataError(f"{new.source}: no models to forecast; add at least one model row")
    rng = np.random.default_rng(seed)
    b_pos = {b: i for i, b in enumerate(pa.benchmark_ids)}
    names, fams, flops_l, ths, ys, obs_rows, ess_all = [], [], [], [], [], [], []
    for row in new.models.itertuples(index=False):
        sc = new.scores[new.scores["model"] == row.model]
        j = sc["benchmark"].map(b_pos).to_numpy(dtype=int)
        y01 = (sc["value"].to_numpy(dtype=float) - pa.metric_min[j]) / (
            pa.metric_max[j] - pa.metric_min[j]
        )
        fam = row.family if isinstance(row.family, str) else None
        mean, cov = theta_prior(fit, fam, float(row.flops_1e21), float(row.params_b))
        target = ConditionalTarget(pa, mean, cov, j, y01)
        theta, ess = sample_conditional(target, mean, cov, rng, n_particles)
        _, y = pa.scores(theta, rng)
        names.append(str(row.model))
        fams.append(fam)
        flops_l.append(float(row.flops_1e21) * 1e21 if np.isfinite(row.flops_1e21) else np.nan)
        ths.append(theta)
        ys.append(pa.to_metric(y))
        ess_all.append(float(np.median(ess)))
        obs_rows.append(sc[["model", "benchmark", "value"]].rename(columns={"value": "observed"}))
    observed = pd.concat(obs_rows, ignore_index=True)
    fc = package_forecast(
        fit, names, fams, flops_l, np.stack(ths, 1), np.stack(ys, 1), ci, observed=observed
    )
    fc.table.attrs["importance_ess_fraction"] = dict(zip(names, ess_all, strict=True))
    return fc
