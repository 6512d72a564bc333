"""The outer folds of a cross-validation: their shared setup, their results, the run they pool into.

:func:`mmfer.pipeline.run_fold` fills one :class:`FoldResult` per outer fold;
:func:`run_result` pools them into a :class:`~mmfer.evaluation.results.RunResult`
and :func:`fold_audit` into the run's leakage audit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from mmfer.config import ExperimentConfig, FusionConfig
from mmfer.estimators import Estimator
from mmfer.evaluation.audit import FitRecord, LeakageAudit
from mmfer.recognizer import Recognizer

if TYPE_CHECKING:
    from mmfer.evaluation.results import RunResult

__all__ = ["FROZEN_COMPONENTS", "CVSetup", "FoldResult", "OnFoldFit", "fold_audit", "run_result"]


#: Parts of the default and paper feature stacks that are never fitted on any fold.
FROZEN_COMPONENTS: tuple[tuple[str, str], ...] = (
    ("face encoder", "pretrained, frozen (not fitted on any fold)"),
    ("voice encoder / MFCC", "pretrained or stateless (not fitted on any fold)"),
)

#: ``on_fold_fit(fold, settings, recognizer)``: called once per outer fold after its
#: model is fitted and before any test row is predicted (``settings``: the chosen
#: parameters, ``{"params": {...}, ...}``).
OnFoldFit = Callable[[int, dict[str, Any], Recognizer], None]


@dataclass
class CVSetup:
    """What every outer fold of one cross-validation shares (see :func:`prepare_cv`)."""

    table: pd.DataFrame
    cfg: ExperimentConfig
    model_name: str
    modalities: list[str]
    protocol: str
    labels: list[str]
    fusion_cfg: FusionConfig
    base: Estimator
    #: Speaker-normalisation condition (:func:`mmfer.fusion.enrol.norm_condition`).
    condition: str
    #: Whether the protocol's splitter keeps every speaker on one side (asked when splitting).
    speaker_independent: bool
    unusable: set[str] = field(default_factory=set)

    @property
    def ids(self) -> np.ndarray:
        return self.table["id"].astype(str).to_numpy()

    @property
    def speakers(self) -> np.ndarray:
        return self.table["speaker"].astype(str).to_numpy()

    @property
    def y(self) -> np.ndarray:
        return self.table["emotion"].map({e: i for i, e in enumerate(self.labels)}).to_numpy()


@dataclass
class FoldResult:
    """One outer fold: what was scored, how, and what was fitted on what.

    ``test_rows`` are the scored rows (the fold's test rows minus ``enrol_rows``,
    the enrolment clips that gave test speakers their statistics).
    """

    fold: int
    test_rows: np.ndarray
    enrol_rows: np.ndarray
    pred: np.ndarray
    metrics: dict[str, Any]
    selected: dict[str, Any] | None
    select_seconds: float
    train_seconds: float
    test_seconds: float
    history: list[dict[str, Any]]
    records: list[FitRecord]


def run_result(
    setup: CVSetup, splits: list[tuple[np.ndarray, np.ndarray]], folds: list[FoldResult]
) -> RunResult:
    """Pool the folds' predictions, metrics and timings into one :class:`RunResult`."""
    from mmfer.data.splits import describe_protocol
    from mmfer.evaluation.results import RunResult
    from mmfer.fusion.enrol import describe_condition

    rows = [r for f in folds for r in f.test_rows.tolist()]
    n_test = len(rows)
    return RunResult(
        model=setup.model_name,
        modalities=tuple(setup.modalities),
        protocol=describe_protocol(setup.protocol, len(splits)) + describe_condition(setup.cfg.fusion),
        fold_metrics=[f.metrics for f in folds],
        y_true=setup.y[rows].tolist(),
        y_pred=[p for f in folds for p in f.pred.tolist()],
        labels=setup.labels,
        train_seconds=[f.train_seconds for f in folds],
        test_seconds_per_sample=sum(f.test_seconds for f in folds) / max(n_test, 1),
        history=[f.history for f in folds],
        sample_ids=setup.ids[rows].tolist(),
        speakers=setup.speakers[rows].tolist(),
        selected=[f.selected for f in folds if f.selected is not None],
        select_seconds=[f.select_seconds for f in folds],
    )


def fold_audit(
    setup: CVSetup,
    splits: list[tuple[np.ndarray, np.ndarray]],
    folds: list[FoldResult],
    hashes: list[str | None] | None,
) -> LeakageAudit:
    """The leakage audit of the run: scored test rows against what every component was fitted on."""
    from mmfer.evaluation.audit import audit_folds

    scored = [(tr, f.test_rows) for (tr, _), f in zip(splits, folds, strict=True)]
    records = [r for f in folds for r in f.records]
    return audit_folds(
        setup.table,
        scored,
        records,
        hashes=hashes,
        frozen=list(FROZEN_COMPONENTS),
        speaker_independent=setup.speaker_independent,
    )
