"""Nested selection of a network's epoch count from per-epoch inner scores.

On a few hundred clips an early-stopping carve-out of the training rows (a few dozen
clips) is too noisy to stop on, and it takes those rows away from training. Instead,
with ``eval.select_epochs`` (the default), the nested selection
(:func:`mmfer.pipeline.select_settings`) scores every candidate of a network through
:class:`EpochScorer`: each inner fit trains the candidate's ``epochs`` on the inner
training rows with no carve-out, and scores the inner validation rows after every
epoch (:class:`~mmfer.training.epoch_scores.EpochScores`). The curves are averaged
over the inner folds; a candidate's score is the best point of its mean curve and
that epoch (the earliest of ties) is its epoch count. The outer fit then trains the
winner on all outer training rows for exactly that many epochs (``stop_epoch``; the lr
schedule still spans ``epochs``, as in the inner fits) with early stopping off
(``patience = 0``), and both land in the fold's selected settings.

Only the outer *training* rows are read here (the inner splits are drawn from them);
every fit goes through :func:`mmfer.pipeline.fit_rows`, so it is recorded for the leakage audit.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from mmfer.config import ExperimentConfig, FusionConfig
from mmfer.errors import ConfigError
from mmfer.estimators.base import Estimator
from mmfer.estimators.neural import NeuralEstimator
from mmfer.estimators.selection import Selection
from mmfer.evaluation.audit import FitRecord
from mmfer.fusion import Fuser
from mmfer.training.epoch_scores import EpochScores
from mmfer.tuning import SELECTION_METRICS, fold_configs

__all__ = ["EpochScorer", "best_epoch", "proba_score", "selects_epochs"]


def selects_epochs(estimator: Estimator, cfg: ExperimentConfig) -> bool:
    """True when the epoch count of ``estimator`` is chosen from per-epoch inner scores
    (a network, early fusion, ``eval.select`` and ``eval.select_epochs``)."""
    return bool(cfg.eval.select and cfg.eval.select_epochs and isinstance(estimator, NeuralEstimator))


def proba_score(y: np.ndarray, proba: np.ndarray, metric: str = "accuracy") -> float:
    """``metric`` (:data:`mmfer.tuning.SELECTION_METRICS`) of ``proba (N, C)`` against ``y (N,)``."""
    from mmfer.evaluation.metrics import classification_metrics

    if metric not in SELECTION_METRICS:
        raise ConfigError(f"eval.headline_metric: {metric!r} not one of {', '.join(SELECTION_METRICS)}")
    pred = np.asarray(proba).argmax(axis=1)
    if metric == "accuracy":
        return float(np.mean(pred == y))
    labels = list(range(np.asarray(proba).shape[1]))
    return float(classification_metrics(np.asarray(y, dtype=np.int64), pred, labels=labels)[metric])


def best_epoch(curves: np.ndarray) -> tuple[int, float]:
    """The epoch count with the best mean inner score.

    Parameters
    ----------
    curves
        ``(K, E)`` score after each of ``E`` epochs on each of ``K`` inner folds.

    Returns
    -------
    tuple
        ``(epochs, mean score)``: 1-based epoch of the maximum of the mean curve
        (``(E,)``, mean over folds), the earliest of ties, and that maximum.
    """
    mean = np.asarray(curves, dtype=np.float64).mean(axis=0)  # (E,)
    e = int(np.argmax(mean))
    return e + 1, float(mean[e])


class EpochScorer:
    """The selection score of a network's candidates, with per-epoch inner curves.

    Call it with a candidate's parameters (as :func:`mmfer.estimators.selection.select`
    does): it returns the best mean inner score over epochs and remembers the curves;
    :meth:`finish` then adds the winner's epoch count to the :class:`Selection`.

    Parameters
    ----------
    table, feats
        The sample table and per-sample features.
    inner
        ``[(inner_train (n,), inner_val (m,))]`` positional rows, all from the outer
        training rows.
    estimator
        The base network (fixed settings); candidates are clones of it.
    cfg
        The experiment (``features.text``, ``eval.headline_metric``).
    labels
        Class names in index order.
    fusion_cfg
        The fold's fusion settings.
    fit_rows
        :func:`mmfer.pipeline.fit_rows` (passed in: pipeline imports this module), called
        with a ``before_fit`` that attaches the per-epoch scorer.
    records
        Where each inner fit's :class:`FitRecord` goes (None = not recorded).
    fold
        Outer fold index, for the records.
    """

    def __init__(
        self,
        table: pd.DataFrame,
        feats: dict[str, Any],
        inner: list[tuple[np.ndarray, np.ndarray]],
        estimator: Estimator,
        cfg: ExperimentConfig,
        labels: list[str],
        fusion_cfg: FusionConfig,
        fit_rows: Callable[..., Any],
        records: list[FitRecord] | None = None,
        fold: int = 0,
    ) -> None:
        self.table, self.feats, self.inner = table, feats, inner
        self.fit_rows = fit_rows
        self.estimator, self.cfg, self.labels = estimator, cfg, labels
        self.fusion_cfg, self.records, self.fold = fusion_cfg, records, fold
        #: ``(K, E)`` inner curves per candidate (keyed by its sorted parameters).
        self.curves: dict[str, np.ndarray] = {}

    @staticmethod
    def _key(params: dict[str, Any]) -> str:
        return repr(sorted(params.items()))

    def _curve(self, params: dict[str, Any], rows: np.ndarray, val: np.ndarray) -> np.ndarray:
        """``(E,)`` scores of ``params`` fitted on ``rows``, after each epoch, on ``val``."""
        t = self.table
        ids, spk = t["id"].astype(str).to_numpy(), t["speaker"].astype(str).to_numpy()
        y = t["emotion"].map({e: i for i, e in enumerate(self.labels)}).to_numpy().astype(np.int64)
        est_params, text_cfg, fusion_cfg = fold_configs(params, self.cfg.features.text, self.fusion_cfg)
        metric = self.cfg.eval.headline_metric
        hooks: list[EpochScores] = []

        def watch(fuser: Fuser, est: Estimator) -> None:
            # the validation rows go through the Fuser fitted on this fit's training rows
            va = fuser.transform([self.feats[i] for i in ids[val]], speakers=spk[val])  # (m, T, F)
            hooks.append(EpochScores(va.x, va.mask, y[val], lambda yv, p: proba_score(yv, p, metric)))
            assert isinstance(est, NeuralEstimator)
            est.extra_hooks = hooks[-1:]

        # one fitting path: the same rows, fuser, augmented copies and audit records as any fit
        self.fit_rows(
            t,
            self.feats,
            rows,
            labels=self.labels,
            estimator=self.estimator.clone(**est_params, patience=0, stop_epoch=0),
            fusion_cfg=fusion_cfg,
            text_cfg=text_cfg,
            features_cfg=self.cfg.features,
            records=self.records,
            fold=self.fold,
            stage="inner ",
            before_fit=watch,
        )
        return np.asarray(hooks[0].scores, dtype=np.float64)

    def __call__(self, params: dict[str, Any]) -> float:
        """Best mean inner score over the epochs of candidate ``params``."""
        key = self._key(params)
        if key not in self.curves:
            self.curves[key] = np.stack([self._curve(params, a, b) for a, b in self.inner])  # (K, E)
        return best_epoch(self.curves[key])[1]

    def finish(self, sel: Selection) -> Selection:
        """``sel`` with the winner's epoch count (``stop_epoch``) and ``patience = 0`` in its params
        (its inner curves are computed first when ``select`` did not score a single candidate)."""
        score = self(sel.params)
        epochs, _ = best_epoch(self.curves[self._key(sel.params)])
        if not sel.scores:
            sel.scores = [score]
        sel.params = {**sel.params, "stop_epoch": epochs, "patience": 0}
        sel.inner_folds = len(self.inner)
        return sel
