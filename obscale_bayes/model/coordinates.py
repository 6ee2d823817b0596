r"""Coordinates of the downstream (target) module: variance-ordered principal axes of the inputs.

A target task is fitted on a few coordinates of each model's standard benchmark scores, not on
the capability module's anchored factors (issue 8: anchored coordinates extrapolate badly -- a
target fitted on weak models weighed raw MMLU at -22 to -61 per unit, where MMLU varies by 0.04
in the training set and held-out models sit ten such widths out).  The map, fitted on the
*training* models only and then applied unchanged to every model (training or new):

.. math::

    s_{mj} &= (y_{mj} - \mathrm{min}_j)/(\mathrm{max}_j - \mathrm{min}_j)
        && \text{score scale } [0, 1] \\
    \tilde s_m &= \mathrm{impute}(s_m)
        && \text{missing cells: rank-1 PCA imputation (below)} \\
    c_{mk} &= v_k \cdot (\tilde s_m - \bar s), \quad k = 1..K
        && \text{principal axes } v_k \text{ of the centred training scores} \\
    z_{mk} &= c_{mk} / \mathrm{sd}_k
        && \text{unit sd on the training models}

* **Order**: by explained variance on the training models (axis 1 = most variance); the top
  :data:`N_AXES` = 3 are kept (the paper's PC-3, fixed in advance, not tuned).
* **Sign**: each axis is flipped so that its loadings sum to a positive number (axis 1 then
  rises with every benchmark: "more capable" is positive).  Principal axes are defined only up to
  sign, and a fixed rule makes the weights of the target comparable across fits.
* **Scale**: dividing by the training sd gives every kept axis unit variance on the training
  models, so that one ridge prior ``w ~ N(0, s_w)`` on the target's weights means the same thing
  for every axis and every analysis.
* **Missing cells** are filled by the paper's rank-1 PCA imputation (:class:`PCAImputer`, on
  standardised columns, clipped to [0, 1]), fitted on the training models and applied with its
  fitted scaler and PCA held fixed to new models -- the same fill for training and new models.
  The imputer lives here (it moved down from ``evaluation/pca.py``, which re-exports it) rather
  than using the capability module's posterior mean: the target module then needs no capability
  fit at all when a model's inputs are observed, the coordinates are deterministic (the cut keeps
  them fixed), and the result is directly comparable with the paper's PC-3 method, which uses the
  same imputation.
* For a compute-only forecast the inputs are draws of predicted standard scores from the
  capability module (complete, no imputation): :meth:`PrincipalAxes.transform_scores` maps each
  draw by the same linear map.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from obscale_bayes.errors import DataError, UsageError

__all__ = ["N_AXES", "PCA", "PCAImputer", "PrincipalAxes", "to_score_scale"]

#: Number of principal axes the target module uses (the paper's PC-3; fixed in advance).
N_AXES = 3


# ---------------------------------------------------------------- PCA and the paper's imputation
class PCA:
    """Centred principal component analysis (no scaling), by SVD.

    Parameters
    ----------
    n_components : int
        Number of components kept.
    """

    def __init__(self, n_components: int) -> None:
        self.n_components = int(n_components)

    def fit(self, x: np.ndarray) -> PCA:
        """Fit on a complete matrix ``x`` (rows = models, columns = benchmarks)."""
        x = np.asarray(x, dtype=float)
        if np.isnan(x).any():
            raise ValueError("PCA needs a complete matrix; impute missing cells first")
        k = min(self.n_components, *x.shape)
        self.mean_ = x.mean(axis=0)
        _, s, vt = np.linalg.svd(x - self.mean_, full_matrices=False)
        # Deterministic signs: largest absolute loading of each component is positive.
        signs = np.sign(vt[np.arange(vt.shape[0]), np.abs(vt).argmax(axis=1)])
        signs[signs == 0] = 1.0
        self.components_ = (vt * signs[:, None])[:k]
        var = s**2 / max(x.shape[0] - 1, 1)
        self.explained_variance_ = var[:k]
        self.explained_variance_ratio_ = var[:k] / var.sum() if var.sum() > 0 else var[:k]
        return self

    def transform(self, x: np.ndarray) -> np.ndarray:
        """Scores of the rows of ``x`` on the fitted components."""
        return (np.asarray(x, dtype=float) - self.mean_) @ self.components_.T

    def inverse_transform(self, scores: np.ndarray) -> np.ndarray:
        """Reconstruction of rows from their scores."""
        return scores @ self.components_ + self.mean_


class PCAImputer:
    """Iterative rank-``k`` PCA imputation on standardized columns (Ruan et al. 2024's code).

    Standardize each column with the mean and sd of its observed cells, start from the column
    means, fit a rank-``k`` PCA to the completed matrix, replace only the missing cells by the
    reconstruction, repeat until they stop moving; undo the standardization and clip.  Rows not
    used for fitting are imputed by the same iteration with the fitted scaler and PCA held fixed.

    Parameters
    ----------
    n_components : int, default 1
        Rank of the reconstruction (the paper uses 1).
    max_iter : int, default 1000
        Maximum number of fill-in iterations (the paper's code always runs its 1000).
    tol : float, default 1e-9
        Stop when no missing cell moves by more than ``tol`` (standardized units).
    clip : tuple of float or None, default (0.0, 1.0)
        Range the imputed matrix is clipped to after un-standardizing.
    """

    def __init__(
        self,
        n_components: int = 1,
        max_iter: int = 1000,
        tol: float = 1e-9,
        clip: tuple[float, float] | None = (0.0, 1.0),
    ) -> None:
        self.n_components = n_components
        self.max_iter = max_iter
        self.tol = tol
        self.clip = clip

    def _scale(self, x: np.ndarray) -> np.ndarray:
        return (x - self.center_) / self.scale_

    def _unscale(self, z: np.ndarray) -> np.ndarray:
        out = z * self.scale_ + self.center_
        return out if self.clip is None else np.clip(out, *self.clip)

    def fit(self, x: np.ndarray) -> PCAImputer:
        """Fit the scaler and the low-rank model on ``x`` (NaN = missing)."""
        x = np.asarray(x, dtype=float)
        if x.ndim != 2 or x.shape[0] < 2:
            raise ValueError("PCAImputer needs a 2-D matrix with at least two rows")
        observed = ~np.isnan(x)
        if not observed.any(axis=0).all():
            raise ValueError("every column needs at least one observed value to impute")
        self.center_ = np.nanmean(x, axis=0)
        scale = np.nanstd(x, axis=0)
        self.scale_ = np.where(scale > 0, scale, 1.0)
        z = np.where(observed, self._scale(x), 0.0)
        self.pca_ = PCA(self.n_components)
        self.n_iter_ = 0
        for it in range(1, self.max_iter + 1):
            self.n_iter_ = it
            self.pca_.fit(z)
            recon = self.pca_.inverse_transform(self.pca_.transform(z))
            step = np.abs(recon - z)[~observed]
            z[~observed] = recon[~observed]
            if step.size == 0 or step.max() <= self.tol:
                break
        self.fitted_ = self._unscale(z)
        return self

    def transform(self, x: np.ndarray) -> np.ndarray:
        """Fill the missing cells of ``x`` with the fitted scaler and PCA held fixed."""
        x = np.asarray(x, dtype=float)
        observed = ~np.isnan(x)
        z = np.where(observed, self._scale(x), 0.0)
        for _ in range(self.max_iter):
            recon = self.pca_.inverse_transform(self.pca_.transform(z))
            step = np.abs(recon - z)[~observed]
            z[~observed] = recon[~observed]
            if step.size == 0 or step.max() <= self.tol:
                break
        return self._unscale(z)

    def fit_transform(self, x: np.ndarray) -> np.ndarray:
        """Fit on ``x`` and return it completed (and clipped)."""
        return self.fit(x).fitted_


# ---------------------------------------------------------------- the coordinates map
def to_score_scale(wide: pd.DataFrame, benchmarks: pd.DataFrame) -> pd.DataFrame:
    """Scores of a wide table (models x benchmarks, metric units) on the [0, 1] score scale,
    ``(y - metric_min) / (metric_max - metric_min)`` from the benchmark metadata."""
    meta = benchmarks.set_index("benchmark")
    missing = [c for c in wide.columns if c not in meta.index]
    if missing:
        raise DataError(f"benchmarks: no metric range for input {missing[0]!r} in the metadata")
    lo = meta.loc[list(wide.columns), "metric_min"].to_numpy(dtype=float)
    hi = meta.loc[list(wide.columns), "metric_max"].to_numpy(dtype=float)
    return (wide.astype(float) - lo) / (hi - lo)


class PrincipalAxes:
    """The coordinates map of the module docstring: impute, centre, project, sign-fix, scale.

    Parameters
    ----------
    n_axes : int
        Axes kept (default :data:`N_AXES`).

    Attributes (after :meth:`fit`)
    ------------------------------
    columns_ : list of str
        Input benchmarks, in order.
    mean_ : ndarray (J,)
        Training mean of the completed scores.
    axes_ : ndarray (K, J)
        Unit principal axes, variance-ordered, each with a positive sum of loadings.
    sd_ : ndarray (K,)
        Training sd of each axis' scores (ddof = 1).
    explained_variance_ratio_ : ndarray (K,)
    """

    def __init__(self, n_axes: int = N_AXES) -> None:
        if int(n_axes) < 1:
            raise UsageError(f"n_axes: must be >= 1, got {n_axes}")
        self.n_axes = int(n_axes)

    def fit(self, scores: pd.DataFrame) -> PrincipalAxes:
        """Fit on the training models' scores (models x inputs, [0, 1] scale, NaN = missing)."""
        if scores.shape[0] < self.n_axes + 1:
            raise DataError(
                f"scores: {scores.shape[0]} training models cannot fix {self.n_axes} axes"
            )
        self.columns_ = list(scores.columns)
        x = scores.to_numpy(dtype=float)
        self.imputer_ = PCAImputer(1).fit(
            x
        )  # fitted even on complete data: new rows may lack cells
        full = self.imputer_.fitted_
        pca = PCA(min(self.n_axes, *full.shape)).fit(full)
        axes = pca.components_
        signs = np.where(axes.sum(axis=1) < 0, -1.0, 1.0)
        self.axes_ = axes * signs[:, None]
        self.mean_ = pca.mean_
        c = (full - self.mean_) @ self.axes_.T
        sd = c.std(axis=0, ddof=1)
        if np.any(sd <= 0):
            raise DataError("scores: an axis has no variance on the training models")
        self.sd_ = sd
        self.explained_variance_ratio_ = pca.explained_variance_ratio_
        return self

    def complete(self, scores: pd.DataFrame) -> np.ndarray:
        """Scores with missing cells filled by the training imputer, ``(n, J)``."""
        x = scores.reindex(columns=self.columns_).to_numpy(dtype=float)
        if not np.isnan(x).any():
            return x
        if np.isnan(x).all(axis=1).any():
            raise DataError("scores: a model has no input score at all; it has no coordinates")
        return self.imputer_.transform(x)

    def transform(self, scores: pd.DataFrame) -> np.ndarray:
        """Coordinates ``z`` ``(n, K)`` of models from their (possibly incomplete) scores."""
        return self.transform_scores(self.complete(scores))

    def transform_scores(self, scores: np.ndarray) -> np.ndarray:
        """Coordinates of complete score arrays ``(..., J)`` (e.g. predictive draws) -> ``(..., K)``."""
        s = np.asarray(scores, dtype=float)
        if s.shape[-1] != len(self.columns_):
            raise UsageError(f"scores: last axis must have {len(self.columns_)} inputs")
        return ((s - self.mean_) @ self.axes_.T) / self.sd_
