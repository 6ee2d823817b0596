r"""Batched Laplace proposals and importance resampling: the sampler of fill in the blanks.

Every (posterior draw, new model) pair is one *pair*; pairs are stacked model-major (pair
``m * S + s`` is draw ``s`` of model ``m``), so that one model's pairs are a contiguous block,
and every step is one NumPy pass over all pairs.  The target of each pair is a
:class:`~obscale_bayes.forecast.conditional.ConditionalTarget` (the log density of a new
model's capabilities given its scores, with its gradient and Hessian).

1. :func:`find_modes`: damped, saddle-free Newton steps on all pairs at once, with small
   ``K x K`` Cholesky factors written out over the batch (a matrix that is not positive
   definite gets its eigenvalues' moduli instead); converged pairs drop out.
2. :func:`importance_resample`: the proposal of every pair is the mixture ``0.8 N + 0.1 t_4 +
   0.1 prior``, the Gaussian and the t at the mode with the inverse negative Hessian as
   covariance (the Laplace approximation), and first moved and stretched per model to the
   moments of the targets of 64 pilot draws (:func:`_adapt`: the Laplace misses the long tail
   a capability has towards a chance floor, the pilot's 128 importance particles per draw do
   not).  The prior component bounds the weights (the target is at most a constant times the
   prior).  Each pair then draws ``n_particles`` particles and keeps one by its importance
   weight (sampling importance resampling); a pair whose particles leave an effective sample
   size under half gets ``15 * n_particles`` more.
"""

from __future__ import annotations

import numpy as np
from scipy.special import gammaln

__all__ = ["find_modes", "importance_resample", "inv_spd"]

_T_DOF = 4.0
_SHARES = (0.8, 0.1, 0.1)  # proposal: Laplace Gaussian, Laplace t, prior
_ADAPT_ROUNDS = 1
_PILOT = 64  # draws per model whose particles adapt the proposal
_PILOT_N = 128  # ... particles each
_ESS_MIN = 0.5  # effective sample size (fraction) under which a pair gets more particles
_MORE = 15  # ... n_particles * _MORE more
_CHUNK_CELLS = 200_000  # cells evaluated at once (memory)


def _chol(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lower Cholesky factors of a batch of small matrices and which ones are positive definite.

    Written out over the batch (sums of elementwise products: NumPy's reductions over an
    axis of length K are slower than K - 1 additions).
    """
    k = a.shape[-1]
    low = np.zeros_like(a)
    ok = np.ones(a.shape[:-2], dtype=bool)
    for j in range(k):
        d = a[..., j, j] - sum((low[..., j, m] ** 2 for m in range(j)), 0.0)
        good = d > 1e-12 * np.abs(a[..., j, j])
        ok &= good
        ljj = np.sqrt(np.where(good, d, 1.0))
        low[..., j, j] = ljj
        for i in range(j + 1, k):
            s = sum((low[..., i, m] * low[..., j, m] for m in range(j)), 0.0)
            low[..., i, j] = (a[..., i, j] - s) / ljj
    return low, ok


def _solve_low(low: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``low^-1 b`` by forward substitution (``low`` broadcasts against ``b``'s axes)."""
    x = np.empty(np.broadcast_shapes(low.shape[:-1], b.shape))
    for i in range(b.shape[-1]):
        s = sum((low[..., i, m] * x[..., m] for m in range(i)), 0.0)
        x[..., i] = (b[..., i] - s) / low[..., i, i]
    return x


def _solve_low_t(low: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``low^-T b`` by back substitution."""
    k = b.shape[-1]
    x = np.empty(np.broadcast_shapes(low.shape[:-1], b.shape))
    for i in reversed(range(k)):
        s = sum((low[..., m, i] * x[..., m] for m in range(i + 1, k)), 0.0)
        x[..., i] = (b[..., i] - s) / low[..., i, i]
    return x


def inv_spd(a: np.ndarray) -> np.ndarray:
    """Inverse of a batch of symmetric positive-definite matrices."""
    low, _ = _chol(a)
    eye = np.broadcast_to(np.eye(a.shape[-1]), a.shape)
    li = np.swapaxes(_solve_low(low[..., None, :, :], eye), -1, -2)  # columns of low^-1
    return np.einsum("...ji,...jk->...ik", li, li)


def _pd_chol(m: np.ndarray) -> np.ndarray:
    """Cholesky factors of ``m``, with eigenvalues replaced by their moduli where not PD."""
    low, ok = _chol(m)
    if not ok.all():
        bad = m[~ok]
        bad = 0.5 * (bad + np.swapaxes(bad, -1, -2))
        e, v = np.linalg.eigh(bad)
        e = np.abs(e)
        e = np.maximum(e, 1e-8 * e.max(axis=-1, keepdims=True) + 1e-10)
        low[~ok] = np.linalg.cholesky(np.einsum("...ij,...j,...kj->...ik", v, e, v))
    return low


def find_modes(
    target, start: np.ndarray, max_iter: int = 60, tol: float = 1e-2
) -> tuple[np.ndarray, np.ndarray]:
    """Mode ``(P, K)`` of every pair's target and the Cholesky factor of its negative Hessian.

    Saddle-free damped Newton: the step solves the negative Hessian (eigenvalue moduli where it
    is not positive definite), is capped at 2 logit units and halved until the target does not
    decrease.  A pair whose Newton decrement is under ``tol`` (nats) takes its last, full step
    and stops: the step after it would move the target by about ``tol**2``, which the
    importance weights correct anyway.
    """
    th = np.array(start, dtype=float)
    chol = np.zeros(th.shape + th.shape[-1:])
    sub, idx, cells = target, np.arange(len(th)), None  # sub's pairs are th[idx]
    live = np.ones(len(th), dtype=bool)  # ... of which these still iterate
    for it in range(max_iter + 1):
        f0, g, neg_h = sub.derivatives(th[idx], cells)
        low = _pd_chol(neg_h)
        step = _solve_low_t(low, _solve_low(low, g))
        done = live & ((np.sum(g * step, axis=-1) < tol) | (it == max_iter))
        th[idx[done]] += step[done]
        chol[idx[done]] = low[done]
        live &= ~done
        if not live.any():
            break
        if live.mean() < 0.9:  # drop the converged pairs (copying is not free)
            sub, idx, f0, step, live = sub.take(live), idx[live], f0[live], step[live], live[live]
        step[~live] = 0.0
        norm = np.linalg.norm(step, axis=-1, keepdims=True)
        step *= np.minimum(1.0, 2.0 / np.maximum(norm, 1e-300))
        new = th[idx] + step
        f1, cells = sub.log_density(new)
        bad = np.flatnonzero(f1 < f0 - 1e-9 * np.abs(f0))
        for _ in range(30):
            if not len(bad):
                break
            step[bad] *= 0.5
            new[bad] = th[idx[bad]] + step[bad]
            f1[bad], cells[bad] = sub.take(bad).log_density(new[bad])
            bad = bad[f1[bad] < f0[bad] - 1e-9 * np.abs(f0[bad])]
        th[idx] = new
    return th, chol


def _log_t(maha: np.ndarray, k: int) -> np.ndarray:
    """Log density of a standard multivariate t (``_T_DOF``) at squared radius ``maha``."""
    c = gammaln(0.5 * (_T_DOF + k)) - gammaln(0.5 * _T_DOF) - 0.5 * k * np.log(_T_DOF * np.pi)
    return c - 0.5 * (_T_DOF + k) * np.log1p(maha / _T_DOF)


def _particles(target, mode, low, rngs, counts, n):
    """``n`` particles for each pair (``counts[m]`` pairs of model ``m``) and their log weights.

    The proposal is the mixture (shares ``_SHARES``) of the Laplace Gaussian, the Laplace
    t and the prior: ``theta = centre + low^-T z`` with ``low`` the Cholesky factor of the
    precision (negative Hessian, or the prior's), ``z`` standard normal (over
    ``sqrt(chi2 / dof)`` for the t).  The random numbers are drawn model by model, the rest
    in chunks of pairs.
    """
    k = mode.shape[-1]
    z = np.empty((len(mode), n, k))
    comp = np.empty((len(mode), n), dtype=np.int8)
    chi = np.ones((len(mode), n))
    edges = np.cumsum(_SHARES)[:-1]
    start = 0
    for r, c in zip(rngs, counts, strict=True):
        rows = slice(start, start + c)
        start += c
        z[rows] = r.standard_normal((c, n, k))
        comp[rows] = np.searchsorted(edges, r.random((c, n)), side="right")
        is_t = comp[rows] == 1
        chi[rows][is_t] = r.chisquare(_T_DOF, int(is_t.sum())) / _T_DOF
    theta, log_w = np.empty_like(z), np.empty(chi.shape)
    step = max(1, _CHUNK_CELLS // (n * target.y.shape[-1]))
    for a in range(0, len(mode), step):
        part = slice(a, a + step)
        theta[part], log_w[part] = _weigh(
            target.take(part), mode[part], low[part], z[part], comp[part], chi[part]
        )
    return theta, log_w


def _weigh(target, mode, low, z, comp, chi):
    """Particles from standard draws (see :func:`_particles`) and their log weights."""
    k = z.shape[-1]
    prior_low, _ = _chol(target.prec)
    eye = np.broadcast_to(np.eye(k), low.shape)
    u_lap = z / np.sqrt(chi)[..., None]  # standard coordinates of the Laplace components
    theta = mode[:, None] + np.matmul(u_lap, _solve_low_t(low[:, None], eye))
    p, i = np.nonzero(comp == 2)  # the prior's particles
    if len(p):
        theta[p, i] = target.mean[p] + _solve_low_t(prior_low[p], z[p, i])
        u_lap[p, i] = np.matmul((theta[p, i] - mode[p])[:, None], low[p])[:, 0]
    u_pri = np.matmul(theta - target.mean[:, None], prior_low)  # prior term: -|u_pri|^2 / 2
    m_lap, m_pri = (sum((u[..., j] ** 2 for j in range(k)), 0.0) for u in (u_lap, u_pri))
    logdet = [np.log(np.diagonal(c, 0, -2, -1)).sum(-1)[:, None] for c in (low, prior_low)]
    c_n = -0.5 * k * np.log(2 * np.pi)
    with np.errstate(divide="ignore"):
        shares = np.log(np.asarray(_SHARES))
    log_q = np.logaddexp(
        np.logaddexp(shares[0] + c_n - 0.5 * m_lap, shares[1] + _log_t(m_lap, k)) + logdet[0],
        shares[2] + c_n - 0.5 * m_pri + logdet[1],
    )
    log_p = target.cell_loglik(target.eta(theta)).sum(axis=-1) - 0.5 * m_pri
    return theta, log_p - log_q


def _ess(log_w: np.ndarray) -> np.ndarray:
    w = np.exp(log_w - log_w.max(axis=-1, keepdims=True))
    return w.sum(-1) ** 2 / np.sum(w**2, -1) / w.shape[-1]


def importance_resample(
    target,
    mode: np.ndarray,
    low: np.ndarray,
    rngs: list[np.random.Generator],
    n_particles: int,
) -> tuple[np.ndarray, np.ndarray]:
    """One draw of theta per pair from its target and the importance ESS fraction per pair.

    ``n_particles`` particles per pair from the proposal built on the Laplace approximation
    (``mode``, Cholesky factor ``low`` of the negative Hessian) and adapted per model
    (:func:`_adapt`); a pair whose effective sample size is under half of them gets
    ``15 * n_particles`` more.  ``rngs`` holds one generator per model: a model's numbers do
    not depend on the other models of the batch.
    """
    n_s = len(mode) // len(rngs)
    for _ in range(_ADAPT_ROUNDS):
        mode, low = _adapt(target, mode, low, rngs, n_s)
    theta, log_w = _particles(target, mode, low, rngs, [n_s] * len(rngs), n_particles)
    ess = _ess(log_w)
    more = np.flatnonzero(ess < _ESS_MIN)
    picked = _pick(theta, log_w, [r.random(n_s) for r in rngs])
    for m in np.unique(more // n_s):  # model by model: memory stays at one model's pairs
        rows = more[more // n_s == m]
        th2, lw2 = _particles(
            target.take(rows), mode[rows], low[rows], [rngs[m]], [len(rows)], _MORE * n_particles
        )
        th2 = np.concatenate([theta[rows], th2], axis=1)
        lw2 = np.concatenate([log_w[rows], lw2], axis=1)
        ess[rows] = _ess(lw2)
        picked[rows] = _pick(th2, lw2, [rngs[m].random(len(rows))])
    return picked, ess


def _adapt(target, centre, low, rngs, n_s):
    """Each model's proposal moved and stretched to the moments its pilot draws' targets have.

    In the standardised coordinates ``u = low^T (theta - centre)`` of each pair (standard
    normal under the current proposal), the importance-weighted particles of ``_PILOT``
    draws per model give the mean and covariance of ``u`` under the targets; every pair of
    the model then proposes from that mean and covariance.  The targets of one model's
    draws differ in location and scale, which the per-pair Laplace already has, far more
    than in shape, which this learns (a long tail towards a chance floor, say).
    """
    n_m = len(rngs)
    k = centre.shape[-1]
    d = min(n_s, _PILOT)
    pick = (np.arange(n_m)[:, None] * n_s + np.linspace(0, n_s - 1, d).astype(int)).ravel()
    th, lw = _particles(target.take(pick), centre[pick], low[pick], rngs, [d] * n_m, _PILOT_N)
    u = np.matmul(th - centre[pick][:, None], low[pick]).reshape(n_m, -1, k)
    w = np.exp(lw - lw.max(axis=-1, keepdims=True))
    w = (w / w.sum(-1, keepdims=True)).reshape(n_m, -1) / d
    mu = np.einsum("mp,mpk->mk", w, u)
    dev = u - mu[:, None]
    cov = np.einsum("mp,mpk,mpl->mkl", w, dev, dev)
    n_eff = 1.0 / np.sum(w**2, axis=-1)  # shrink to the Laplace where the pilot is thin
    a = (n_eff / (n_eff + 10.0 * k))[:, None, None]
    cov = a * cov + (1 - a) * np.eye(k)
    mu = a[:, :, 0] * mu
    b = _chol(inv_spd(cov))[0]
    rep = np.repeat(np.arange(n_m), n_s)
    centre = centre + _solve_low_t(low, mu[rep])
    return centre, np.matmul(low, b[rep])


def _pick(theta: np.ndarray, log_w: np.ndarray, uniforms: list[np.ndarray]) -> np.ndarray:
    """The particle each pair's uniform falls on, by the cumulated normalised weights."""
    w = np.exp(log_w - log_w.max(axis=-1, keepdims=True))
    cum = np.cumsum(w, axis=-1)
    u = np.concatenate(uniforms)[:, None] * cum[:, -1:]
    i = np.minimum((cum < u).sum(axis=-1), theta.shape[1] - 1)
    return theta[np.arange(len(theta)), i]
