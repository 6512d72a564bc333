"""What every report table shares: the :class:`Table` record, cell formatting and the metric columns.

The lowest layer of the table modules (``table_base <- tables, tables_paper,
tables_runs, tables_significance``); it builds no table itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from mmfer.evaluation.metrics import format_pm
from mmfer.evaluation.results import ReportData, RunResult, corpus_label, metric_summary

__all__ = [
    "HEADLINE_COLUMNS",
    "METRIC_COLUMNS",
    "RUN_ID_FIELDS",
    "WEIGHTED_F1_COLUMN",
    "Table",
    "fmt_p",
    "fmt_pct",
    "metric_cells",
    "metric_columns",
    "metric_csv_fields",
    "protocols_text",
    "run_id",
]

#: (column heading, dotted key into a summarise_folds dict) of the metric columns, all in %.
METRIC_COLUMNS: tuple[tuple[str, str], ...] = (
    ("Accuracy (%)", "accuracy"),
    ("UAR (%)", "uar"),
    ("Macro-F1 (%)", "macro_f1"),
    ("PPV (%)", "macro.ppv"),
    ("Specificity (%)", "macro.specificity"),
    ("Sensitivity (%)", "macro.sensitivity"),
    ("MCC one-vs-rest (%)", "macro.mcc_ovr"),
    ("MCC multiclass (%)", "mcc_multiclass"),
)

#: The headline metrics shown beside each other in every table: accuracy, UAR, macro-F1.
HEADLINE_COLUMNS: tuple[tuple[str, str], ...] = METRIC_COLUMNS[:3]

#: The weighted-F1 column (per-class F1 weighted by support), shown first when the config's
#: ``eval.headline_metric`` is ``weighted_f1`` (MELD's usual metric).
WEIGHTED_F1_COLUMN: tuple[str, str] = ("Weighted-F1 (%)", "weighted_f1")


def metric_columns(
    data: ReportData, columns: tuple[tuple[str, str], ...] = METRIC_COLUMNS
) -> tuple[tuple[str, str], ...]:
    """``columns``, led by :data:`WEIGHTED_F1_COLUMN` when ``data.headline_metric`` is ``weighted_f1``."""
    if getattr(data, "headline_metric", "accuracy") == "weighted_f1":
        return (WEIGHTED_F1_COLUMN, *columns)
    return columns


#: The CSV columns that name one run of Tables 1, 3 and 5 (filled by :func:`run_id`).
RUN_ID_FIELDS: tuple[str, ...] = ("corpus", "protocol", "model", "modalities", "folds")


@dataclass
class Table:
    """One table of the report: what report.md/html show and what its CSV holds.

    ``rows`` are the formatted cells (strings, ``headers`` wide); ``csv_rows`` the
    raw numbers keyed by ``csv_fields`` (percentages unrounded, None for "n/a").
    """

    stem: str | None  # CSV file stem; None = only in report.md/html
    title: str
    headers: list[str]
    rows: list[list[str]]
    csv_fields: list[str]
    csv_rows: list[dict[str, Any]]
    notes: list[str] = field(default_factory=list)

    @classmethod
    def of_rows(
        cls,
        head: tuple[str | None, str, list[str]],
        built: list[tuple[list[str], dict[str, Any]]],
        csv_fields: list[str],
        notes: list[str],
    ) -> Table:
        """A table from ``head`` = ``(stem, title, headers)`` and ``(cells, csv row)`` pairs."""
        stem, title, headers = head
        return cls(stem, title, headers, [r for r, _ in built], csv_fields, [c for _, c in built], notes)


def fmt_pct(x: float | None, digits: int = 2) -> str:
    """A percentage with ``digits`` decimals; ``"n/a"`` for None or NaN."""
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def fmt_p(x: float | None) -> str:
    """A p-value: scientific below 0.001, four decimals otherwise; ``"n/a"`` for None or NaN."""
    if x is None or math.isnan(x):
        return "n/a"
    return f"{x:.2e}" if x < 1e-3 else f"{x:.4f}"


def metric_cells(
    summary: dict[str, Any], columns: tuple[tuple[str, str], ...] = METRIC_COLUMNS
) -> tuple[list[str], dict[str, Any]]:
    """The ``mean ± std`` cells of ``columns`` and their CSV values (``<key>_mean_pct``/``_std_pct``)."""
    cells, csv_vals = [], {}
    for _, key in columns:
        s = metric_summary(summary, key)
        cells.append(format_pm(s["mean"], s["std"]))
        col = key.replace(".", "_")
        csv_vals[f"{col}_mean_pct"] = s["mean"] * 100
        csv_vals[f"{col}_std_pct"] = s["std"] * 100
    return cells, csv_vals


def metric_csv_fields(columns: tuple[tuple[str, str], ...] = METRIC_COLUMNS) -> list[str]:
    """The CSV field names :func:`metric_cells` fills, in column order."""
    out = []
    for _, key in columns:
        col = key.replace(".", "_")
        out += [f"{col}_mean_pct", f"{col}_std_pct"]
    return out


def run_id(data: ReportData, r: RunResult, folds: int) -> dict[str, Any]:
    """The :data:`RUN_ID_FIELDS` of one run's CSV row."""
    return {
        "corpus": data.corpus,
        "protocol": data.protocol,
        "model": r.model,
        "modalities": r.modality_text,
        "folds": folds,
    }


def protocols_text(data: ReportData) -> str:
    """``corpus: <label>; protocol: <main>[ and <second>]``, the tail of titles covering both protocols."""
    return f"corpus: {corpus_label(data)}; protocol: {data.protocol}" + (
        f" and {data.second.protocol}" if data.second else ""
    )
