r"""The training-data rule that weighs the target module's ridge scales and noise models.

The rule, fixed before this version's held-out numbers were looked at, and applied the same way
to every target (a user's and every backtest analysis):

1. Candidates :math:`c = (\text{noise}, s_w)`: every noise model of
   :data:`~obscale_bayes.model.downstream.NOISE_MODELS` (``normal``, ``hetero``, ``censored``)
   times every ridge scale of :data:`~obscale_bayes.model.downstream.RIDGE_SCALES`
   (:math:`s_w \in \{0.5, 1, 2.5\}`, the prior sd of the weights on unit-sd coordinates): nine.
2. **Blocked K-fold on the training models**: sorted by their first coordinate :math:`z_1`
   (general capability), cut into :data:`N_FOLDS` contiguous blocks.  For each block every
   candidate is fitted on the other blocks and scored on it by its exact log predictive density

   .. math::

       \mathrm{lpd}_{ic} = \log \frac1S \sum_s \pi_c(y_i \mid \theta_c^{(s)}),

   with :math:`\pi_c` the candidate's predictive law *clipped to [0, 1]*
   (:meth:`~obscale_bayes.fit.downstream_sample.TargetFit.log_score`: one scale for all candidates,
   whatever their likelihood).  Contiguous blocks, not random ones: the forecasts are
   extrapolations to stronger models, and the top block is exactly that inside the training set
   (the bottom one extrapolates down, the others interpolate).
3. **Stacking** of those densities (Yao, Vehtari, Simpson and Gelman 2018):
   :math:`\hat w = \arg\max_{w \in \Delta} \sum_i \log \sum_c w_c\, e^{\mathrm{lpd}_{ic}}`.
   Candidates under :data:`MIN_WEIGHT` are dropped and the rest renormalised; each kept one is
   refitted on all training models (those fits face the convergence gate) and the forecast is
   their mixture, draw by draw.

Fold fits use at most :data:`FOLD_DRAWS` draws and warm-up per chain and no retry: they only
estimate a density, and they are many (nine candidates times :data:`N_FOLDS`).  The coordinates
of the folds are the training coordinates (the axes see every training model's *inputs*, never a
target of the block scored).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import optimize
from scipy.special import logsumexp

from obscale_bayes.errors import UsageError

__all__ = ["FOLD_DRAWS", "MIN_WEIGHT", "N_FOLDS", "blocked_folds", "kfold_lpd", "stack"]

#: Folds of the rule.
N_FOLDS = 5
#: Draws and warm-up per chain of a fold fit (at most).
FOLD_DRAWS = 500
#: Stacking weights under this are dropped (their fits would not move a forecast).
MIN_WEIGHT = 0.01


def blocked_folds(z1: np.ndarray, n_folds: int = N_FOLDS) -> np.ndarray:
    """Fold index ``(n,)`` of each training model: contiguous blocks of ``z1`` (ties by order)."""
    z1 = np.asarray(z1, dtype=float)
    n_folds = min(int(n_folds), len(z1))
    if n_folds < 2:
        raise UsageError(f"n_folds: need >= 2 folds and training models, got {len(z1)} models")
    fold = np.empty(len(z1), dtype=int)
    for f, rows in enumerate(np.array_split(np.argsort(z1, kind="stable"), n_folds)):
        fold[rows] = f
    return fold


def kfold_lpd(fit_fn, z: np.ndarray, y: np.ndarray, folds: np.ndarray) -> np.ndarray:
    """Exact K-fold pointwise log predictive density ``(n,)`` of one candidate.

    ``fit_fn(z_train, y_train)`` returns a fitted :class:`~obscale_bayes.fit.downstream_sample.TargetFit`.
    """
    out = np.empty(len(y))
    for f in np.unique(folds):
        test = folds == f
        fit = fit_fn(z[~test], y[~test])
        ls = fit.log_score(z[test], y[test])
        out[test] = logsumexp(ls, axis=0) - np.log(ls.shape[0])
    return out


def stack(lpd: pd.DataFrame) -> pd.Series:
    r"""Stacking weights of the candidates (columns) from pointwise densities ``lpd`` (rows).

    Maximises :math:`\sum_i \log \sum_c w_c e^{\mathrm{lpd}_{ic}}` over the simplex
    (softmax parametrisation, L-BFGS); weights under :data:`MIN_WEIGHT` are set to 0 and the rest
    renormalised.
    """
    a = lpd.to_numpy(dtype=float)
    if a.ndim != 2 or a.shape[1] < 1 or not np.isfinite(a).all():
        raise UsageError("lpd: expected finite pointwise densities, models x candidates")
    if a.shape[1] == 1:
        return pd.Series([1.0], index=lpd.columns)
    a = a - a.max(axis=1, keepdims=True)  # the row shift does not change the argmax

    def loss(u):
        logw = u - logsumexp(u)
        return -np.sum(logsumexp(a + logw[None, :], axis=1))

    res = optimize.minimize(loss, np.zeros(a.shape[1]), method="L-BFGS-B")
    w = np.exp(res.x - logsumexp(res.x))
    w[w < MIN_WEIGHT] = 0.0
    return pd.Series(w / w.sum(), index=lpd.columns)
