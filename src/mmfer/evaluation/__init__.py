"""Evaluation: metrics (eqs. 12-16), significance tests, the paper's numbers and the report writer."""

from mmfer.evaluation.metrics import classification_metrics, confusion, format_pm, summarise_folds
from mmfer.evaluation.report import (
    LeakageAudit,
    ProtocolResults,
    ReportData,
    RunResult,
    SignificanceRow,
    compare_runs,
    write_report,
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
