"""The RBF SVC behind the ``svm`` estimator (imported only when an SVM is built: it needs sklearn)."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.svm import SVC

__all__ = ["ScaledGammaSVC"]


class ScaledGammaSVC(SVC):
    """SVC whose gamma is a multiple of scikit-learn's ``"scale"`` heuristic (set at fit time)."""

    def __init__(self, *, gamma_scale: float = 1.0, **kw: Any) -> None:
        super().__init__(**kw)
        self.gamma_scale = gamma_scale

    def fit(self, X: np.ndarray, y: np.ndarray, sample_weight: Any = None) -> ScaledGammaSVC:
        """Set ``gamma`` from the data's variance, then fit as :class:`~sklearn.svm.SVC`."""
        var = float(np.asarray(X).var()) or 1.0
        self.gamma = self.gamma_scale / (X.shape[1] * var)
        return super().fit(X, y, sample_weight)  # type: ignore[return-value]
