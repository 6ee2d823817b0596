r"""The target density of fill-in-the-blanks: a new model's capabilities given its scores.

:class:`ConditionalTarget` evaluates, per posterior draw, the log density
:math:`\log N(\theta; m_s, C_s) + \sum_j \log \mathcal D(y_j; p_j(\theta), \mathrm{sd}_j(\theta))`
of :mod:`obscale_bayes.forecast.conditional` and its first two derivatives (for the Laplace
proposal of :mod:`obscale_bayes.forecast.laplace_is`), with the link, noise and likelihood of
:mod:`obscale_bayes.model.equations`.
"""

from __future__ import annotations

import numpy as np

from obscale_bayes.forecast.laplace_is import inv_spd
from obscale_bayes.model.equations import (
    bounded_np,
    floored_sigmoid_np,
    linear_predictor_np,
    noise_sd_np,
    observation_logpdf_np,
)

__all__ = ["ConditionalTarget"]

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
