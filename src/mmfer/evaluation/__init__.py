"""Evaluation: metrics (eqs. 12-16), significance tests, the paper's numbers and the report writer.

Modules, lowest first: ``metrics``, ``significance``, ``paper``; ``audit`` (typed
leakage audit and the leak policy); ``results`` (result dataclasses, shared
helpers, :func:`compare_runs`); ``tables`` and ``figures``; ``render``
(Markdown, Jinja2 HTML, CSV); ``report`` (:func:`write_report`).
"""

from mmfer.evaluation.audit import LeakageAudit
from mmfer.evaluation.metrics import classification_metrics, confusion, format_pm, summarise_folds
from mmfer.evaluation.report import write_report
from mmfer.evaluation.results import (
    ProtocolResults,
    ReportData,
    RunResult,
    SignificanceRow,
    compare_runs,
)
from mmfer.evaluation.significance import holm, mcnemar, paired_fold_tests

__all__ = [
    "LeakageAudit",
    "ProtocolResults",
    "ReportData",
    "RunResult",
    "SignificanceRow",
    "classification_metrics",
    "compare_runs",
    "confusion",
    "format_pm",
    "holm",
    "mcnemar",
    "paired_fold_tests",
    "summarise_folds",
    "write_report",
]
