"""PCA imputation and PCA projection used by the paper's point-estimate method.

Two small numpy-only building blocks, written after the description of Ruan et al. (2024) and the
behaviour of their public code (``ryoungj/ObsScaling``, ``utils/data.py``):

* :class:`PCAImputer` -- iterative low-rank ("PCA") imputation of missing benchmark cells on
  *standardized* scores: standardize each column with the mean and standard deviation of its
  observed cells, start from the column means, fit a rank-``k`` PCA to the completed matrix,
  replace only the missing cells by the reconstruction, repeat until the missing cells stop
  moving; undo the standardization and clip to a range (``[0, 1]`` for accuracies).  Rows not
  used for fitting (e.g. test models) are imputed by the same iteration with the fitted scaler
  and the fitted PCA held fixed.
* :class:`PCA` -- plain centred (unstandardized) PCA by SVD.
"""

from __future__ import annotations

import numpy as np

__all__ = ["PCA", "PCAImputer"]


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
    """Iterative rank-``k`` PCA imputation on standardized columns.

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
