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

**The score** (``score`` of :func:`~obscale_bayes.fit.downstream.fit_target_module`): ``"lpd"``
is the log-density stacking above; ``"crps"`` scores the same fold fits by the CRPS of the
stacked mixture instead, :math:`\hat w = \arg\min_{w \in \Delta} \sum_i \mathrm{CRPS}(\sum_c
w_c F_{ic}, y_i)`, with the candidates' clipped predictive draws
(:func:`stack_crps`).  In the energy form
:math:`\mathrm{CRPS}(F, y) = E|X - y| - \tfrac12 E|X - X'|` the mixture's CRPS is
:math:`\sum_c w_c A_{ic} - \tfrac12 \sum_{c,d} w_c w_d B_{icd}` with
:math:`A_{ic} = E|X_c - y_i|` and :math:`B_{icd} = E|X_c - X_d|` (independent draws), convex in
:math:`w` (:math:`|x - x'|` is a negative-definite kernel).  ``"lpd_top"`` stacks the log
densities of the models of the top two blocks only (highest :math:`z_1`: the top block is where
the fold fits extrapolate upward, as held-out forecasts of stronger models do; the one under it
keeps a few more points in the sum).  Which score is the default, and why, is
studies/target_rule.py's question (docs/backtests.md).

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

__all__ = [
    "FOLD_DRAWS",
    "MIN_WEIGHT",
    "N_FOLDS",
    "blocked_folds",
    "kfold_predictive",
    "stack",
    "stack_by",
    "stack_crps",
]

#: Folds of the rule.
N_FOLDS = 5
#: Draws and warm-up per chain of a fold fit (at most).
FOLD_DRAWS = 500
#: Stacking weights under this are dropped (their fits would not move a forecast).
MIN_WEIGHT = 0.01
#: Blocks the ``lpd_top`` score stacks on (the highest ``z_1``).
TOP_BLOCKS = 2


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


def kfold_predictive(
    fit_fn, z: np.ndarray, y: np.ndarray, folds: np.ndarray, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Exact K-fold pointwise log predictive density ``(n,)`` of one candidate, and its
    predictive draws ``(S, n)`` of each model from the fit that did not see it (clipped to
    [0, 1]: the law :meth:`~obscale_bayes.fit.downstream_sample.TargetFit.log_score` scores).

    ``fit_fn(z_train, y_train)`` returns a fitted :class:`~obscale_bayes.fit.downstream_sample.TargetFit`;
    every fold's fit must have the same number of draws S (fold fits have no retry).
    """
    rng = np.random.default_rng(seed)
    lpd, draws = np.empty(len(y)), None
    for f in np.unique(folds):
        test = folds == f
        fit = fit_fn(z[~test], y[~test])
        ls = fit.log_score(z[test], y[test])
        lpd[test] = logsumexp(ls, axis=0) - np.log(ls.shape[0])
        p = fit.expected(z[test])
        if draws is None:
            draws = np.empty((p.shape[0], len(y)))
        draws[:, test] = np.clip(p + fit.sd(p) * rng.standard_normal(p.shape), 0.0, 1.0)
    return lpd, draws


def _simplex_argmin(loss, k: int) -> np.ndarray:
    """Weights on the simplex minimising ``loss(log_weights)`` (softmax parametrisation,
    L-BFGS), those under :data:`MIN_WEIGHT` set to 0 and the rest renormalised."""
    res = optimize.minimize(lambda u: loss(u - logsumexp(u)), np.zeros(k), method="L-BFGS-B")
    w = np.exp(res.x - logsumexp(res.x))
    w[w < MIN_WEIGHT] = 0.0
    return w / w.sum()


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
    w = _simplex_argmin(lambda logw: -np.sum(logsumexp(a + logw[None, :], axis=1)), a.shape[1])
    return pd.Series(w, index=lpd.columns)


def _mean_abs_diff(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``E|X - Y|`` per column for independent X, Y with draws ``a`` (S1, n) and ``b`` (S2, n):
    the mean over all S1 x S2 pairs, exactly (one sort and a cumulative sum per column)."""
    out = np.empty(a.shape[1])
    for j in range(a.shape[1]):
        bs = np.sort(b[:, j])
        cum = np.concatenate([[0.0], np.cumsum(bs)])
        below = np.searchsorted(bs, a[:, j])  # draws of b under each draw of a
        x = a[:, j]
        total = (x * below - cum[below]) + (cum[-1] - cum[below]) - x * (len(bs) - below)
        out[j] = total.mean() / len(bs)
    return out


def stack_crps(draws: dict[str, np.ndarray], y: np.ndarray) -> pd.Series:
    r"""Weights of the candidates (keys of ``draws``) minimising the summed CRPS of their mixture.

    ``draws[c]`` is candidate ``c``'s predictive draws ``(S, n)`` of the n models ``y``.  The
    mixture's CRPS is :math:`\sum_c w_c A_{ic} - \tfrac12 \sum_{c,d} w_c w_d B_{icd}` (module
    docstring), with :math:`A` and :math:`B` computed exactly from the draws; weights under
    :data:`MIN_WEIGHT` are set to 0 and the rest renormalised.
    """
    names = list(draws)
    y = np.asarray(y, dtype=float)
    if not names or any(np.shape(draws[c])[1:] != y.shape or not np.isfinite(draws[c]).all()
                        for c in names):  # fmt: skip
        raise UsageError(f"draws: expected finite (S, {len(y)}) draws per candidate")
    if len(names) == 1:
        return pd.Series([1.0], index=names)
    k = len(names)
    a = np.stack([np.mean(np.abs(draws[c] - y[None, :]), axis=0) for c in names])  # (k, n)
    b = np.empty((k, k, len(y)))
    for i in range(k):
        for j in range(i, k):
            b[i, j] = b[j, i] = _mean_abs_diff(draws[names[i]], draws[names[j]])
    a_sum, b_sum = a.sum(axis=1), b.sum(axis=2)  # the loss is linear in the cells

    def loss(logw):
        w = np.exp(logw)
        return w @ a_sum - 0.5 * w @ b_sum @ w

    return pd.Series(_simplex_argmin(loss, k), index=names)


def stack_by(
    score: str, lpd: pd.DataFrame, draws: dict[str, np.ndarray], y: np.ndarray, folds: np.ndarray
) -> pd.Series:
    """The candidates' weights by the rule's ``score``: :func:`stack` of every model's K-fold
    log density (``"lpd"``), of the models of the top :data:`TOP_BLOCKS` blocks only
    (``"lpd_top"``), or :func:`stack_crps` of the predictive draws (``"crps"``)."""
    if score == "crps":
        return stack_crps(draws, y)
    if score == "lpd_top":  # the blocks where the fold fits extrapolate up or reach the top
        return stack(lpd.loc[np.asarray(folds) > np.max(folds) - TOP_BLOCKS])
    return stack(lpd)
