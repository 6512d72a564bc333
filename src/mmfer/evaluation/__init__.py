"""Evaluation: metrics (eqs. 12-16), significance tests, the paper's numbers and the report writer.

Modules, lowest first: ``metrics``, ``significance``, ``paper``; ``audit`` (typed
leakage audit and the leak policy); ``results`` (result dataclasses, shared
helpers, :func:`compare_runs`); ``table_base`` and the ``tables*`` modules,
``figures``; ``render`` (Markdown, Jinja2 HTML, CSV); ``report`` (:func:`write_report`).

Importing the package is light: the names below are loaded from their module on
first access (module ``__getattr__``), so ``import mmfer.evaluation.audit`` does not
pull in scikit-learn's metrics, SciPy's statistics or matplotlib.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mmfer.evaluation.audit import LeakageAudit
    from mmfer.evaluation.metrics import (
        classification_metrics,
        confusion,
        format_pm,
        macro_f1,
        summarise_folds,
        uar,
    )
    from mmfer.evaluation.report import write_report
    from mmfer.evaluation.results import (
        ProtocolResults,
        ReportData,
        RunResult,
        SignificanceRow,
        compare_runs,
    )
    from mmfer.evaluation.significance import holm, mcnemar, paired_fold_tests

#: Public name -> the submodule that defines it (imported on first access).
_LAZY: dict[str, str] = {
    "LeakageAudit": "audit",
    "ProtocolResults": "results",
    "ReportData": "results",
    "RunResult": "results",
    "SignificanceRow": "results",
    "classification_metrics": "metrics",
    "compare_runs": "results",
    "confusion": "metrics",
    "format_pm": "metrics",
    "holm": "significance",
    "macro_f1": "metrics",
    "mcnemar": "significance",
    "paired_fold_tests": "significance",
    "summarise_folds": "metrics",
    "uar": "metrics",
    "write_report": "report",
}

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
    "macro_f1",
    "mcnemar",
    "paired_fold_tests",
    "summarise_folds",
    "uar",
    "write_report",
]


def __getattr__(name: str) -> Any:
    """Load a public name from its submodule the first time it is asked for."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
