"""The paper's PCA imputation and PCA projection (they live in :mod:`obscale_bayes.model.coordinates`).

:class:`PCAImputer` (rank-1 PCA imputation on standardized scores, clipped to [0, 1]) and
:class:`PCA` (centred PCA by SVD) moved down to the ``model`` layer, where the target module's
coordinates use the same imputation for training and new models; this module keeps the
evaluation layer's import path.
"""

from __future__ import annotations

from obscale_bayes.model.coordinates import PCA, PCAImputer

__all__ = ["PCA", "PCAImputer"]
