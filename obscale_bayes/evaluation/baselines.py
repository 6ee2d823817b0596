"""Point-estimate forecasters used as baselines in backtests.

All forecasters share one interface::

    method.fit(train: TrainingFrame) -> method
    method.predict(test: TrainingFrame) -> np.ndarray   # target on its transformed scale

A :class:`TrainingFrame` holds plain pandas objects indexed by model id: a wide frame of benchmark
inputs (NaN = missing), the target, and per-model ``family`` and ``log10_flops`` (NaN = unknown).

* :class:`PaperPCAMethod` -- the point-estimate method of Ruan et al. (2024): rank-1 PCA
  imputation of missing inputs on standardized scores (clipped to [0, 1]), centred PCA on the
  training models, and least squares for ``target = link(w . PC + b)``.
* :class:`FlopsOnly` -- ``target = link(w * log10_flops + b)``.
* :class:`FamilyInterceptFlops` -- ``target = link(a_family + w * log10_flops)`` with the family
  intercepts shrunk lightly toward their mean; an unseen family gets the mean intercept.

Links: ``"sigmoid"`` (``sigmoid(eta)``) or ``"floored_sigmoid"``
(``g + (1 - g) sigmoid(eta)`` with the floor ``g`` fitted in ``[0, max_floor]``).  Methods that
need FLOPs return NaN for models without FLOPs; after ``predict`` their ``n_skipped_`` says how
many.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from scipy.optimize import least_squares
from scipy.special import expit

from obscale_bayes.errors import UsageError
from obscale_bayes.evaluation.pca import PCA, PCAImputer

__all__ = [
    "FamilyInterceptFlops",
    "FlopsOnly",
    "PaperPCAMethod",
    "SigmoidFit",
    "TrainingFrame",
    "fit_sigmoid",
]

Link = Literal["sigmoid", "floored_sigmoid"]


@dataclass
class TrainingFrame:
    """The data one forecaster sees: inputs, target and per-model metadata.

    Parameters
    ----------
    inputs : pandas.DataFrame
        Models (index) x input benchmarks, NaN = missing.
    target : pandas.Series, optional
        Target on its transformed scale (may be absent / NaN for test frames).
    family : pandas.Series, optional
        Model family per model.
    log10_flops : pandas.Series, optional
        log10 of training FLOPs per model, NaN = unknown.
    """

    inputs: pd.DataFrame
    target: pd.Series | None = None
    family: pd.Series | None = None
    log10_flops: pd.Series | None = None

    def __post_init__(self) -> None:
        idx = self.inputs.index
        if not idx.is_unique:
            raise UsageError("TrainingFrame: model ids (the index of inputs) must be unique")
        self.target = None if self.target is None else self.target.reindex(idx).astype(float)
        self.family = None if self.family is None else self.family.reindex(idx)
        if self.log10_flops is not None:
            self.log10_flops = self.log10_flops.reindex(idx).astype(float)

    def subset(self, mask: pd.Series | np.ndarray) -> TrainingFrame:
        """Rows selected by a boolean mask (aligned to ``inputs.index``)."""
        pick = self.inputs.index[np.asarray(mask, dtype=bool)]
        parts = [None if s is None else s.loc[pick] for s in (self.target, self.family)]
        flops = None if self.log10_flops is None else self.log10_flops.loc[pick]
        return TrainingFrame(self.inputs.loc[pick], *parts, flops)

    def __len__(self) -> int:
        return len(self.inputs)


def _require(frame: TrainingFrame, what: str) -> pd.Series:
    if (value := getattr(frame, what)) is None:
        raise UsageError(f"this method needs `{what}` in the TrainingFrame")
    return value


def _check_link(link: str, max_floor: float) -> None:
    if link not in ("sigmoid", "floored_sigmoid"):
        raise UsageError(f"link must be 'sigmoid' or 'floored_sigmoid', not {link!r}")
    if not 0.0 < max_floor < 1.0:
        raise UsageError(f"max_floor must be in (0, 1), got {max_floor}")


@dataclass
class SigmoidFit:
    """A fitted ``g + (1 - g) * sigmoid(b + X w)`` (``g = 0`` for the plain sigmoid).

    ``bias``, ``weights`` and ``floor`` are on the raw ``X`` scale; ``sse`` is the training
    residual sum of squares.
    """

    bias: float
    weights: np.ndarray
    floor: float
    sse: float

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Evaluate the fitted curve at the rows of ``x``."""
        eta = self.bias + np.asarray(x, dtype=float) @ self.weights
        return self.floor + (1.0 - self.floor) * expit(eta)


def fit_sigmoid(
    x: np.ndarray,
    y: np.ndarray,
    link: Link = "sigmoid",
    max_floor: float = 0.2,
    n_restarts: int = 10,
    seed: int = 0,
    penalty: tuple[np.ndarray, float] | None = None,
) -> SigmoidFit:
    """Least squares for ``y = g + (1 - g) sigmoid(b + x w)`` with several starts.

    The columns of ``x`` are standardized internally for conditioning.  Starts: the paper code's
    start (``b = 0``, ``w = 0.01``, ``g = 0``), a least-squares fit on the logit scale, and
    ``n_restarts`` random starts; the lowest sum of squares wins.

    Parameters
    ----------
    x : ndarray, shape (n, p)
        Predictors (no constant column).
    y : ndarray, shape (n,)
        Target.
    link : {"sigmoid", "floored_sigmoid"}
        Plain sigmoid, or with a floor ``g`` fitted in ``[0, max_floor]`` (height ``1 - g``).
    max_floor : float
        Upper bound of the floor.
    n_restarts : int
        Number of random starts in addition to the two deterministic ones.
    seed : int
        Seed of the random starts.
    penalty : (G, lam), optional
        Extra ridge residuals ``sqrt(lam) * G @ w_std`` (used to shrink family intercepts).
    """
    _check_link(link, max_floor)
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    if x.ndim != 2 or len(x) != len(y) or len(y) == 0 or not np.isfinite(x).all():
        raise UsageError("fit_sigmoid: x must be a finite (n, p) array and y (n,), n > 0")
    if not np.isfinite(y).all():
        raise UsageError("fit_sigmoid: the target has missing or infinite values")
    floored = link == "floored_sigmoid"
    mu, sd = x.mean(axis=0), np.where(x.std(axis=0) > 0, x.std(axis=0), 1.0)
    design = np.column_stack([np.ones(len(y)), (x - mu) / sd])
    n_lin = design.shape[1]
    pen_g, pen_w = (None, 0.0) if penalty is None else (penalty[0], np.sqrt(penalty[1]))

    def split(theta: np.ndarray) -> tuple[np.ndarray, float]:
        return theta[:n_lin], (theta[n_lin] if floored else 0.0)

    def resid(theta: np.ndarray) -> np.ndarray:
        beta, g = split(theta)
        r = g + (1.0 - g) * expit(design @ beta) - y
        if pen_g is not None:
            r = np.concatenate([r, pen_w * (pen_g @ beta[1:])])
        return r

    def jac(theta: np.ndarray) -> np.ndarray:
        beta, g = split(theta)
        s = expit(design @ beta)
        cols = [design * ((1.0 - g) * s * (1.0 - s))[:, None]]
        if floored:
            cols.append((1.0 - s)[:, None])
        j = np.hstack(cols)
        if pen_g is not None:
            jp = np.zeros((pen_g.shape[0], j.shape[1]))
            jp[:, 1:n_lin] = pen_w * pen_g
            j = np.vstack([j, jp])
        return j

    # Deterministic starts: the paper code's p0 (raw scale) and a logit-scale regression.
    w_raw = np.full(x.shape[1], 0.01)
    starts = [np.concatenate([[mu @ w_raw], sd * w_raw])]
    g0 = min(max(np.nanmin(y), 0.0), max_floor) if floored else 0.0
    z = np.clip((y - g0) / (1.0 - g0), 0.02, 0.98)
    starts.append(np.linalg.lstsq(design, np.log(z / (1 - z)), rcond=None)[0])
    starts += list(np.random.default_rng(seed).normal(0.0, 2.0, size=(n_restarts, n_lin)))
    lower, upper = np.full(n_lin + floored, -np.inf), np.full(n_lin + floored, np.inf)
    if floored:
        lower[-1], upper[-1] = 0.0, max_floor
    best = None
    for i, s0 in enumerate(starts):
        theta0 = np.concatenate([s0, [0.5 * max_floor if i else 1e-6]]) if floored else s0
        try:
            res = least_squares(resid, theta0, jac=jac, bounds=(lower, upper), max_nfev=5000)
        except (ValueError, FloatingPointError):  # pragma: no cover - numerical corner
            continue
        if best is None or res.cost < best.cost:
            best = res
    if best is None:  # pragma: no cover
        raise RuntimeError("sigmoid fit failed from every start")
    beta, g = split(best.x)
    w = beta[1:] / sd
    sse = float(np.sum((g + (1 - g) * expit(design @ beta) - y) ** 2))
    return SigmoidFit(float(beta[0] - mu @ w), w, float(g), sse)


class PaperPCAMethod:
    """The paper's observational-scaling point forecast (PCA + sigmoid least squares).

    Parameters
    ----------
    n_components : int, default 3
        Number of principal components used as predictors.
    link : {"sigmoid", "floored_sigmoid"}, default "sigmoid"
    max_floor : float, default 0.2
        Upper bound of the fitted floor (``floored_sigmoid`` only).
    impute_rank : int, default 1
        Rank of the PCA imputation.
    n_restarts : int, default 10
        Random restarts of the least-squares fit.

    Notes
    -----
    As in the paper's public code, the imputer (column standardization and the rank-1 PCA) and
    the centred PCA are fitted on the *training* models only; test models are imputed and
    projected with those fitted maps.  ``fit(train, extra_inputs=...)`` optionally lets the
    imputer also see further (unlabelled) models, e.g. the test models' inputs.
    """

    def __init__(
        self,
        n_components: int = 3,
        link: Link = "sigmoid",
        max_floor: float = 0.2,
        impute_rank: int = 1,
        n_restarts: int = 10,
    ) -> None:
        _check_link(link, max_floor)
        self.n_components = n_components
        self.link = link
        self.max_floor = max_floor
        self.impute_rank = impute_rank
        self.n_restarts = n_restarts

    def fit(self, train: TrainingFrame, extra_inputs: pd.DataFrame | None = None) -> PaperPCAMethod:
        """Impute, fit the PCA and the sigmoid on the training models."""
        y = _require(train, "target")
        if y.isna().any():
            raise UsageError("PaperPCAMethod.fit: the training target has missing values")
        self.columns_ = list(train.inputs.columns)
        x = train.inputs.to_numpy(dtype=float)
        if extra_inputs is not None:
            extra = extra_inputs.reindex(columns=self.columns_).to_numpy(dtype=float)
            self.imputer_ = PCAImputer(self.impute_rank).fit(np.vstack([x, extra]))
            x_imp = self.imputer_.fitted_[: len(x)]
        else:
            self.imputer_ = PCAImputer(self.impute_rank)
            x_imp = self.imputer_.fit_transform(x)
        self.pca_ = PCA(self.n_components).fit(x_imp)
        pcs = self.pca_.transform(x_imp)
        self.fit_ = fit_sigmoid(pcs, y.to_numpy(), self.link, self.max_floor, self.n_restarts)
        return self

    def transform(self, frame: TrainingFrame) -> np.ndarray:
        """Principal-component scores of the models in ``frame`` (after imputation)."""
        x = frame.inputs.reindex(columns=self.columns_).to_numpy(dtype=float)
        return self.pca_.transform(self.imputer_.transform(x))

    def predict(self, test: TrainingFrame) -> np.ndarray:
        """Point forecast of the target for the models in ``test``."""
        self.n_skipped_ = 0
        return self.fit_.predict(self.transform(test))


class FlopsOnly:
    """``target = link(w * log10_flops + b)``, fitted by least squares.

    Parameters
    ----------
    link : {"sigmoid", "floored_sigmoid"}, default "sigmoid"
    max_floor : float, default 0.2
    n_restarts : int, default 10
    """

    def __init__(self, link: Link = "sigmoid", max_floor: float = 0.2, n_restarts: int = 10):
        _check_link(link, max_floor)
        self.link = link
        self.max_floor = max_floor
        self.n_restarts = n_restarts

    def fit(self, train: TrainingFrame) -> FlopsOnly:
        """Fit on the training models with known FLOPs (others are ignored)."""
        x = _require(train, "log10_flops")
        y = _require(train, "target")
        ok = x.notna() & y.notna()
        if ok.sum() < 2:
            raise UsageError("FlopsOnly needs at least two training models with FLOPs")
        self.n_train_ = int(ok.sum())
        self.fit_ = fit_sigmoid(
            x[ok].to_numpy()[:, None], y[ok].to_numpy(), self.link, self.max_floor, self.n_restarts
        )
        return self

    def predict(self, test: TrainingFrame) -> np.ndarray:
        """Forecast; NaN for models without FLOPs (counted in ``n_skipped_``)."""
        x = _require(test, "log10_flops").to_numpy()
        out = np.full(len(x), np.nan)
        ok = np.isfinite(x)
        out[ok] = self.fit_.predict(x[ok][:, None])
        self.n_skipped_ = int((~ok).sum())
        return out


class FamilyInterceptFlops:
    """Per-family intercept + common log-FLOPs slope + (floored) sigmoid.

    ``target = link(a_family + w * log10_flops)``.  The intercepts are shrunk lightly toward
    their mean by a ridge penalty ``shrinkage * sum_f (a_f - mean(a))^2`` added to the sum of
    squared errors (intercepts in units of the standardized log FLOPs' logit scale); a family
    not seen in training gets the mean intercept.

    Parameters
    ----------
    link : {"sigmoid", "floored_sigmoid"}, default "floored_sigmoid"
    max_floor : float, default 0.2
    shrinkage : float, default 1e-3
        Ridge weight of the intercepts' deviations from their mean.
    n_restarts : int, default 10
    """

    def __init__(
        self,
        link: Link = "floored_sigmoid",
        max_floor: float = 0.2,
        shrinkage: float = 1e-3,
        n_restarts: int = 10,
    ) -> None:
        _check_link(link, max_floor)
        if shrinkage < 0:
            raise UsageError(f"shrinkage must be >= 0, got {shrinkage}")
        self.link = link
        self.max_floor = max_floor
        self.shrinkage = shrinkage
        self.n_restarts = n_restarts

    def fit(self, train: TrainingFrame) -> FamilyInterceptFlops:
        """Fit on the training models with known FLOPs and family."""
        x = _require(train, "log10_flops")
        fam = _require(train, "family")
        y = _require(train, "target")
        ok = x.notna() & y.notna() & fam.notna()
        if ok.sum() < 2:
            raise UsageError("FamilyInterceptFlops needs at least two training models with FLOPs")
        self.families_ = sorted(fam[ok].astype(str).unique())
        f = len(self.families_)
        # Columns: [x, onehot(f_2..f_F)] -- the overall constant is the fit's bias, so
        # a_f = bias + c_f with c_1 = 0; the penalty acts on the centred family effects.
        onehot = pd.get_dummies(pd.Categorical(fam[ok].astype(str), self.families_)).to_numpy(
            dtype=float
        )
        design = np.column_stack([x[ok].to_numpy(), onehot[:, 1:]])
        penalty = None
        if f > 1 and self.shrinkage > 0:
            center = np.eye(f) - 1.0 / f  # maps c (with c_1 = 0) to c - mean(c)
            g = np.zeros((f, design.shape[1]))
            g[:, 1:] = center[:, 1:]
            # fit_sigmoid standardizes its columns; express the penalty on those scaled weights
            sd = design.std(axis=0)
            g = g / np.where(sd > 0, sd, 1.0)
            penalty = (g, self.shrinkage)
        self.fit_ = fit_sigmoid(
            design, y[ok].to_numpy(), self.link, self.max_floor, self.n_restarts, penalty=penalty
        )
        c = np.concatenate([[0.0], self.fit_.weights[1:]])
        self.intercepts_ = pd.Series(self.fit_.bias + c, index=self.families_)
        self.slope_ = float(self.fit_.weights[0])
        return self

    def predict(self, test: TrainingFrame) -> np.ndarray:
        """Forecast; NaN for models without FLOPs (counted in ``n_skipped_``)."""
        x = _require(test, "log10_flops").to_numpy()
        fam = _require(test, "family").astype(str)
        a = fam.map(self.intercepts_).fillna(self.intercepts_.mean()).to_numpy(dtype=float)
        eta = a + self.slope_ * x
        g = self.fit_.floor
        out = g + (1.0 - g) * expit(eta)
        self.n_skipped_ = int((~np.isfinite(x)).sum())
        return np.where(np.isfinite(x), out, np.nan)
