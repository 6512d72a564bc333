"""The one estimator contract every classifier of mmfer follows.

Neural models (``rmlstm``, ``mlstm``, ``lstm``, ``rnn``, ``mlp``, ``transformer``
and the RMLSTM ablations) and scikit-learn baselines (``logreg``, ``svm``,
``majority``) are all registered in :data:`ESTIMATORS` and built with
:func:`create_estimator`; every one of them takes the Fuser's output
``x (N, T, F)``, ``mask (N, T)`` and exposes::

    est = create_estimator("logreg", C=0.1)
    est.fit(x, mask, y, num_classes=8, groups=speakers, ids=sample_ids)
    proba = est.predict_proba(x_test, mask_test)  # (N_test, C)

so the cross-validation loop (:func:`mmfer.pipeline.cross_validate`) and the
nested selection (:mod:`mmfer.estimators.selection`) treat them alike. Each
estimator family declares its own search space (:attr:`Estimator.search_space`,
including the settings only that family has); the selection draws the same number
of candidates from every one of them, each model with its own seed, and reports
how many of the space's configurations that reached.

Implementations register themselves (:func:`register_estimator` or
``ESTIMATORS.register``) when their module is imported; the package
:mod:`mmfer.estimators` imports them. This module never imports an implementation.

``fit`` records the ids of the rows it was fitted on (:attr:`Estimator.fitted_on_`):
the leakage audit checks them against the test ids of each fold.
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import numpy as np

from mmfer.errors import ConfigError, DataError
from mmfer.registry import Registry

if TYPE_CHECKING:
    from mmfer.fusion.layout import FusedLayout

__all__ = [
    "ESTIMATORS",
    "Estimator",
    "create_estimator",
    "list_estimators",
    "named_factory",
    "pool_time",
    "register_estimator",
]

#: Every classifier by name: neural models and scikit-learn baselines alike.
ESTIMATORS: Registry[Callable[..., Estimator]] = Registry("model")

E = TypeVar("E", bound="Estimator")


def register_estimator(name: str) -> Callable[[Callable[..., E]], Callable[..., E]]:
    """Register an estimator factory (a class or a function returning an :class:`Estimator`)."""
    return ESTIMATORS.register(name)


def list_estimators() -> list[str]:
    """Names of every registered estimator, sorted.

    The implementations register themselves when :mod:`mmfer.estimators` is imported
    (which importing this module already does, as it is part of that package).
    """
    return ESTIMATORS.names()


def create_estimator(name: str, **params: Any) -> Estimator:
    """Build the registered estimator ``name`` with ``params``.

    Raises
    ------
    ConfigError
        Unknown name (the message lists the valid ones) or unknown parameter.
    """
    return ESTIMATORS.get(name)(**params)


def named_factory(cls: Callable[..., E], first: str, name: str, doc: str) -> Callable[..., E]:
    """``make(**params) -> cls(first, **params)`` named ``name`` with docstring ``doc``.

    For registering one estimator class under many names (one per network, one per
    late-fusion base), each with its own name in :func:`help` and in error messages.
    """

    def make(**params: Any) -> E:
        return cls(first, **params)

    make.__name__ = make.__qualname__ = name
    make.__doc__ = doc
    return make


class Estimator(ABC):
    """``fit`` / ``predict_proba`` over fused sequences; parameters are plain keyword values.

    Subclasses set :attr:`name`, :attr:`search_space` and implement
    :meth:`default_params`, :meth:`_fit` and :meth:`_predict_proba`.

    Attributes
    ----------
    params
        Current hyper-parameters (a flat ``dict``).
    num_classes_
        ``C`` after ``fit``.
    fitted_on_
        Ids of the rows ``fit`` saw (empty if the caller gave none).
    """

    name: str = ""
    #: Candidate values per hyper-parameter searched by the nested selection.
    search_space: ClassVar[dict[str, list[Any]]] = {}
    #: Modalities this estimator reads as extracted (pixels, not features): every fit through
    #: :func:`mmfer.pipeline.fit_rows` builds the Fuser with them in ``fusion.raw``, so no
    #: standardisation reaches them, in cross-validation and in a saved model alike.
    raw_modalities: tuple[str, ...] = ()

    def __init__(self, **params: Any) -> None:
        defaults = self.default_params()
        unknown = sorted(set(params) - set(defaults))
        if unknown:
            raise ConfigError(
                f"{self.name}: unknown parameter {unknown[0]!r}; valid: {', '.join(sorted(defaults))}"
            )
        self.params: dict[str, Any] = {**defaults, **params}
        self.num_classes_: int = 0
        self.fitted_on_: frozenset[str] = frozenset()
        #: Column map of the fused input (set by :meth:`set_layout`; None = unknown).
        self.layout_: FusedLayout | None = None

    # ------------------------------------------------------------------ params

    @abstractmethod
    def default_params(self) -> dict[str, Any]:
        """Every accepted parameter with its default value."""

    def get_params(self) -> dict[str, Any]:
        """A copy of the current parameters."""
        return dict(self.params)

    def clone(self, **params: Any) -> Estimator:
        """An unfitted copy with ``params`` replaced."""
        new = copy.copy(self)
        new.__init__(**{**self.params, **params})  # type: ignore[misc]
        return new

    def set_layout(self, layout: FusedLayout | None) -> Estimator:
        """Tell the estimator where each modality lives in ``x`` (:meth:`mmfer.fusion.Fuser.layout`).

        :func:`mmfer.pipeline.fit_rows` calls it before every ``fit``. Most estimators
        ignore it; late fusion and modality dropout need it. Returns ``self``.
        """
        self.layout_ = layout
        return self

    def require_layout(self, width: int, why: str) -> FusedLayout:
        """The fused layout set by :meth:`set_layout`, checked against an input of ``width`` columns.

        Parameters
        ----------
        width
            ``F`` of the input about to be fitted or predicted.
        why
            What needs the layout (named in the error), e.g. ``"late fusion"``.

        Raises
        ------
        ConfigError
            No layout was set.
        DataError
            The layout's width is not ``width``.
        """
        if self.layout_ is None:
            raise ConfigError(
                f"{self.name}: {why} needs the fused layout; fit through mmfer.pipeline.fit_rows "
                "or call set_layout(fuser.layout()) first"
            )
        if self.layout_.width != width:
            raise DataError(
                None, f"{self.name}: input width {width} != fused layout width {self.layout_.width}"
            )
        return self.layout_

    # ------------------------------------------------------------------ fit / predict

    def fit(
        self,
        x: np.ndarray,
        mask: np.ndarray,
        y: np.ndarray,
        *,
        num_classes: int,
        groups: np.ndarray | None = None,
        ids: Sequence[str] | None = None,
        pretrain: np.ndarray | None = None,
    ) -> Estimator:
        """Fit on fused rows.

        Parameters
        ----------
        x
            ``(N, T, F)`` float32 fused features.
        mask
            ``(N, T)`` bool, True = valid step.
        y
            ``(N,)`` int class indices in ``[0, num_classes)``.
        num_classes
            ``C`` (classes absent from ``y`` still get a column in ``predict_proba``).
        groups
            ``(N,)`` speaker (or sequence) of each row, for a validation split
            that keeps groups whole; ``None`` = no grouping.
        ids
            ``(N,)`` sample ids, recorded in :attr:`fitted_on_` for the leakage audit.
        pretrain
            ``(N,)`` bool: rows of train-only corpora (``data.extra_train``), which a neural
            estimator with ``pretrain_epochs > 0`` pretrains on before fine-tuning on the
            others; every other estimator fits on all rows alike. None = no such rows.
        """
        x = np.asarray(x, dtype=np.float32)
        mask = np.asarray(mask, dtype=bool)
        y = np.asarray(y, dtype=np.int64)
        if x.ndim != 3 or mask.shape != x.shape[:2] or y.shape != (x.shape[0],):
            raise DataError(
                None,
                f"{self.name}.fit: expected x (N, T, F), mask (N, T), y (N,); got "
                f"{x.shape}, {mask.shape}, {y.shape}",
            )
        if len(y) == 0:
            raise DataError(None, f"{self.name}.fit: no training rows")
        if num_classes < 2 or y.min() < 0 or y.max() >= num_classes:
            raise DataError(None, f"{self.name}.fit: labels must lie in [0, {num_classes}) with C >= 2")
        self.num_classes_ = int(num_classes)
        self.fitted_on_ = frozenset(str(i) for i in ids) if ids is not None else frozenset()
        # (N,) rows that are augmented copies (ids "<id>#aug<k>", mmfer.augmented_rows): a
        # validation split inside _fit scores real rows only
        self.augmented_rows_ = np.array(
            ["#aug" in str(i) for i in ids] if ids is not None else [False] * len(y)
        )
        if pretrain is not None and np.shape(pretrain) != y.shape:
            raise DataError(None, f"{self.name}.fit: pretrain flags {np.shape(pretrain)} != y {y.shape}")
        #: (N,) rows of train-only corpora (all False when the caller named none)
        self.pretrain_rows_ = np.zeros(len(y), bool) if pretrain is None else np.asarray(pretrain, bool)
        with _thread_limit(int(self.params.get("threads", 0) or 0)):
            self._fit(x, mask, y, groups=None if groups is None else np.asarray(groups))
        return self

    def predict_proba(self, x: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """``(N, C)`` float class probabilities (rows sum to 1)."""
        if self.num_classes_ == 0:
            raise ConfigError(f"{self.name}: predict_proba before fit")
        x = np.asarray(x, dtype=np.float32)
        mask = np.asarray(mask, dtype=bool)
        proba = np.asarray(self._predict_proba(x, mask), dtype=np.float64)  # (N, C)
        if proba.shape != (x.shape[0], self.num_classes_):
            raise DataError(None, f"{self.name}: predict_proba gave {proba.shape}")
        return proba

    def predict(self, x: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """``(N,)`` most probable class index."""
        return self.predict_proba(x, mask).argmax(axis=1)

    @abstractmethod
    def _fit(self, x: np.ndarray, mask: np.ndarray, y: np.ndarray, *, groups: np.ndarray | None) -> None: ...

    @abstractmethod
    def _predict_proba(self, x: np.ndarray, mask: np.ndarray) -> np.ndarray: ...

    # ------------------------------------------------------------------ persistence

    def state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """``(arrays, json_meta)`` of a fitted estimator, for a safetensors checkpoint."""
        raise ConfigError(f"{self.name}: saving a fitted model is not supported for this estimator")

    def load_state(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> Estimator:
        """Inverse of :meth:`state` (on an estimator built with the same params)."""
        raise ConfigError(f"{self.name}: loading a fitted model is not supported for this estimator")

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v!r}" for k, v in sorted(self.params.items()))
        return f"{type(self).__name__}({self.name}: {shown})"


def _thread_limit(n: int) -> Any:
    """Cap BLAS/OpenMP threads at ``n`` while fitting (0 = leave as is): scikit-learn's
    solvers otherwise run one BLAS thread per core inside an already parallel job."""
    from contextlib import nullcontext

    if n <= 0:
        return nullcontext()
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=n)


def pool_time(x: np.ndarray, mask: np.ndarray, how: str = "meanstd") -> np.ndarray:
    """Summarise a fused sequence over its valid steps, for models without a time axis.

    Parameters
    ----------
    x
        ``(N, T, F)``.
    mask
        ``(N, T)`` bool.
    how
        ``mean`` -> ``(N, F)``; ``meanstd`` -> ``(N, 2F)`` (std 0 for one-step rows);
        ``flatten`` -> ``(N, T F)`` with padded steps zeroed.
    """
    m = mask[..., None].astype(np.float32)  # (N, T, 1)
    if how == "flatten":
        return (x * m).reshape(x.shape[0], -1)
    n = np.maximum(m.sum(axis=1), 1.0)  # (N, 1)
    mean = (x * m).sum(axis=1) / n  # (N, F)
    if how == "mean":
        return mean
    if how == "meanstd":
        var = (((x - mean[:, None, :]) ** 2) * m).sum(axis=1) / n  # (N, F)
        return np.concatenate([mean, np.sqrt(var)], axis=1)
    raise ConfigError(f"time_pool must be mean, meanstd or flatten; got {how!r}")
