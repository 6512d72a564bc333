"""scikit-learn baselines behind the estimator contract: ``logreg``, ``svm``, ``majority``.

They see the same fused features as the neural models; since they have no
time axis, the sequence is summarised over its valid steps first
(:func:`~mmfer.estimators.base.pool_time`, ``time_pool`` parameter), then
standardised with statistics of the training rows only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from mmfer.errors import ConfigError
from mmfer.estimators.base import Estimator, pool_time, register_estimator

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

__all__ = ["LogRegEstimator", "MajorityEstimator", "SVMEstimator"]

# scikit-learn is imported where it is used: registering these estimators (every import of
# mmfer.estimators, inference included) must not pull sklearn.metrics and scipy.stats.


class _SklearnEstimator(Estimator):
    """Pool over time -> standardise -> a scikit-learn classifier."""

    _pipe: Pipeline | None = None
    _classes: np.ndarray

    def _make(self) -> Any:
        raise NotImplementedError

    def _fit(self, x: np.ndarray, mask: np.ndarray, y: np.ndarray, *, groups: np.ndarray | None) -> None:
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        z = pool_time(x, mask, self.params["time_pool"])  # (N, F')
        self._pipe = make_pipeline(StandardScaler(), self._make())
        self._pipe.fit(z, y)
        self._classes = np.asarray(self._pipe.classes_, dtype=np.int64)

    def _predict_proba(self, x: np.ndarray, mask: np.ndarray) -> np.ndarray:
        assert self._pipe is not None
        p = self._pipe.predict_proba(pool_time(x, mask, self.params["time_pool"]))  # (N, C_seen)
        out = np.zeros((x.shape[0], self.num_classes_))
        out[:, self._classes] = p  # classes absent from training keep probability 0
        return out


@register_estimator("logreg")
class LogRegEstimator(_SklearnEstimator):
    """Multinomial logistic regression (L2; class weights ``balanced`` by default, or ``none``)."""

    name = "logreg"
    search_space: ClassVar[dict[str, list[Any]]] = {"C": [1e-4, 3e-4, 1e-3, 3e-3, 0.01, 0.03, 0.1, 1.0]}

    def default_params(self) -> dict[str, Any]:
        """``C``, ``class_weight``, ``time_pool``, ``max_iter``, ``seed``, ``threads`` at their defaults."""
        return {
            "C": 0.01,
            "class_weight": "balanced",
            "time_pool": "meanstd",
            "max_iter": 3000,
            "seed": 0,
            "threads": 0,
        }

    def _make(self) -> Any:
        from sklearn.linear_model import LogisticRegression

        p = self.params
        weight = {"balanced": "balanced", "none": None, None: None}.get(p["class_weight"], "invalid")
        if weight == "invalid":
            raise ConfigError(f"logreg: class_weight must be balanced or none, got {p['class_weight']!r}")
        return LogisticRegression(
            C=p["C"], max_iter=p["max_iter"], class_weight=weight, random_state=p["seed"]
        )

    def state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Standardiser statistics, coefficients, intercepts and seen classes."""
        assert self._pipe is not None
        scaler, clf = self._pipe[0], self._pipe[-1]
        arrays = {
            "mean": scaler.mean_.astype(np.float64),
            "scale": scaler.scale_.astype(np.float64),
            "coef": clf.coef_.astype(np.float64),
            "intercept": clf.intercept_.astype(np.float64),
            "classes": self._classes,
        }
        return arrays, {"num_classes": self.num_classes_}

    def load_state(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> Estimator:
        """Inverse of :meth:`state`."""
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        scaler = StandardScaler()
        scaler.mean_, scaler.scale_ = arrays["mean"], arrays["scale"]
        scaler.var_ = arrays["scale"] ** 2
        scaler.n_features_in_ = len(arrays["mean"])
        clf = self._make()
        clf.coef_, clf.intercept_ = arrays["coef"], arrays["intercept"]
        clf.classes_ = np.asarray(arrays["classes"], dtype=np.int64)
        clf.n_features_in_ = arrays["coef"].shape[1]
        self._pipe = make_pipeline(scaler, clf)
        self._classes = clf.classes_
        self.num_classes_ = int(meta["num_classes"])
        return self


@register_estimator("svm")
class SVMEstimator(_SklearnEstimator):
    """RBF support-vector machine with Platt-scaled probabilities (balanced class weights)."""

    name = "svm"
    search_space: ClassVar[dict[str, list[Any]]] = {
        "C": [0.3, 1.0, 3.0, 10.0, 30.0],
        "gamma_scale": [0.3, 1.0, 3.0],
    }

    def default_params(self) -> dict[str, Any]:
        """``C``, ``gamma_scale``, ``time_pool``, ``seed`` and ``threads`` at their defaults."""
        # gamma = gamma_scale / (n_features * var) -- 1.0 is scikit-learn's "scale"
        return {"C": 1.0, "gamma_scale": 1.0, "time_pool": "meanstd", "seed": 0, "threads": 0}

    def _make(self) -> Any:
        from sklearn.calibration import CalibratedClassifierCV

        from mmfer.estimators.svc import ScaledGammaSVC

        svc = ScaledGammaSVC(
            C=self.params["C"], gamma_scale=self.params["gamma_scale"], class_weight="balanced"
        )
        # Platt scaling on internal folds of the training rows (what SVC(probability=True) did).
        return CalibratedClassifierCV(svc, method="sigmoid", cv=3, ensemble=False)


@register_estimator("majority")
class MajorityEstimator(Estimator):
    """Reference row: always the most frequent training class (probabilities = class priors)."""

    name = "majority"
    search_space: ClassVar[dict[str, list[Any]]] = {}

    def default_params(self) -> dict[str, Any]:
        """No parameters."""
        return {}

    def _fit(self, x: np.ndarray, mask: np.ndarray, y: np.ndarray, *, groups: np.ndarray | None) -> None:
        counts = np.bincount(y, minlength=self.num_classes_).astype(np.float64)
        self._prior = counts / counts.sum()

    def _predict_proba(self, x: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return np.tile(self._prior, (x.shape[0], 1))

    def state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """The training class prior."""
        return {"prior": self._prior}, {"num_classes": self.num_classes_}

    def load_state(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> Estimator:
        """Inverse of :meth:`state`."""
        self._prior = np.asarray(arrays["prior"], dtype=np.float64)
        self.num_classes_ = int(meta["num_classes"])
        return self
