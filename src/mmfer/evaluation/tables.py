"""Report tables: every table of the report built from :class:`~mmfer.evaluation.results.ReportData`.

Each ``table_*`` function returns a :class:`Table`: formatted cells for
report.md/html and raw values for its CSV, with a title that names the corpus
and the protocol. Nothing is rendered or written here (see
:mod:`mmfer.evaluation.render` and :mod:`mmfer.evaluation.report`).

This module holds the result tables (Tables 1 and 3, the RMLSTM ablation, the
front ends) and re-exports the others, one concern per module:
:mod:`~mmfer.evaluation.table_base` (the :class:`Table` record, formatting,
metric columns), :mod:`~mmfer.evaluation.tables_paper` (Tables 5 and 6),
:mod:`~mmfer.evaluation.tables_runs` (per fold, protocols, selected settings)
and :mod:`~mmfer.evaluation.tables_significance`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from mmfer.evaluation import paper
from mmfer.evaluation.metrics import summarise_folds, uar
from mmfer.evaluation.results import (
    ReportData,
    RunResult,
    SignificanceRow,
    corpus_label,
    full_modality_runs,
    modality_key,
    runs_of_model,
)
from mmfer.evaluation.significance import cluster_bootstrap
from mmfer.evaluation.table_base import (
    HEADLINE_COLUMNS,
    METRIC_COLUMNS,
    RUN_ID_FIELDS,
    Table,
    fmt_p,
    fmt_pct,
    metric_cells,
    metric_columns,
    metric_csv_fields,
    run_id,
)
from mmfer.evaluation.tables_paper import table_paper, table_timing
from mmfer.evaluation.tables_runs import per_fold_tables, table_protocols, table_selection
from mmfer.evaluation.tables_significance import table_significance

__all__ = [
    "ABLATION_MODELS",
    "HEADLINE",
    "HEADLINE_COLUMNS",
    "METRIC_COLUMNS",
    "Table",
    "per_fold_tables",
    "speaker_ci",
    "table_ablation",
    "table_front_ends",
    "table_modalities",
    "table_models",
    "table_paper",
    "table_protocols",
    "table_selection",
    "table_significance",
    "table_timing",
]


#: What the headline tables name in their titles.
HEADLINE = "accuracy, UAR and macro-F1"


def _headline(data: ReportData) -> str:
    """The metrics a table title names (weighted F1 first when it is the headline metric)."""
    return ("weighted F1, " if data.headline_metric == "weighted_f1" else "") + HEADLINE


_MACRO_NOTE = (
    "UAR = unweighted average recall (balanced accuracy); macro = unweighted mean over the classes "
    "present in the test fold; mean ± sample std over folds."
)
_CI_FIELDS: tuple[str, ...] = (
    "pooled_accuracy_pct",
    "ci_lo_pct",
    "ci_hi_pct",
    "pooled_uar_pct",
    "uar_ci_lo_pct",
    "uar_ci_hi_pct",
)


def _csv_row(data: ReportData, r: RunResult, vals: dict[str, Any], p_acc: float | None) -> dict[str, Any]:
    """One CSV row of Table 1/2 or 3/4: the run, its metric values and the paper's figure."""
    return {**run_id(data, r, len(r.fold_metrics)), **vals, "paper_accuracy_pct": p_acc}


def table_modalities(data: ReportData) -> Table:
    """Table 1: the primary model on each modality subset, beside the paper's figure."""
    runs = sorted(runs_of_model(data.runs, data.primary_model), key=lambda r: modality_key(r.modalities))
    has_paper = paper.paper_modality_row(data.corpus, ("audio",)) is not None
    cols = metric_columns(data)
    headers = ["Modalities", "Folds", *(h for h, _ in cols)]
    if has_paper:
        headers.append("Paper accuracy (%)")
    rows, csv_rows = [], []
    for r in runs:
        cells, vals = metric_cells(summarise_folds(r.fold_metrics), cols)
        row = [r.modality_text, str(len(r.fold_metrics)), *cells]
        p_row = paper.paper_modality_row(data.corpus, r.modalities)
        p_acc = p_row["accuracy"] if p_row else None
        if has_paper:
            row.append(fmt_pct(p_acc))
        rows.append(row)
        csv_rows.append(_csv_row(data, r, vals, p_acc))
    notes = [_MACRO_NOTE]
    if not runs:
        notes.append(f"No {data.primary_model} runs: modality ablation not run.")
    if has_paper:
        notes.append("Paper accuracy: the paper's Table 1/2 claim for this corpus (protocol not stated).")
    return Table(
        "table1_modalities",
        f"Table 1 — modality ablation, {data.primary_model}: {_headline(data)} "
        f"(corpus: {corpus_label(data)}; "
        f"protocol: {data.protocol})",
        headers,
        rows,
        [*RUN_ID_FIELDS, *metric_csv_fields(cols), "paper_accuracy_pct"],
        csv_rows,
        notes,
    )


def speaker_ci(r: RunResult, metric: str = "accuracy") -> tuple[float, float] | None:
    """95 % cluster-bootstrap interval of a run's pooled ``metric`` (accuracy or UAR; speakers resampled)."""
    if not r.speakers or len(r.speakers) != len(r.y_true) or len(set(r.speakers)) < 2:
        return None
    return cluster_bootstrap(r.y_true, r.y_pred, r.speakers, metric=metric)


def _pooled(r: RunResult) -> dict[str, float]:
    """Accuracy and UAR of a run's predictions pooled over its test folds (NaN without predictions)."""
    if not r.y_true:
        return {"accuracy": math.nan, "uar": math.nan}
    yt, yp = np.asarray(r.y_true), np.asarray(r.y_pred)
    return {"accuracy": float(np.mean(yt == yp)), "uar": uar(yt, yp, range(len(r.labels)))}


#: RMLSTM ablation rows: model -> (residual gate, residual layers, gate order).
ABLATION_MODELS: dict[str, tuple[str, str, str]] = {
    "rmlstm": ("yes", "yes", "x first (Melis)"),
    "rmlstm_gate": ("yes", "no", "x first (Melis)"),
    "rmlstm_layers": ("no", "yes", "x first (Melis)"),
    "mlstm": ("no", "no", "x first (Melis)"),
    "rmlstm_hfirst": ("yes", "yes", "h first (paper eqs. 8-11)"),
}


def _ci_cells(r: RunResult) -> tuple[list[str], dict[str, Any]]:
    """Table 3's pooled accuracy and UAR with their speaker-bootstrap intervals: cells and CSV values."""
    pooled = _pooled(r)
    cells, csv = [], {}
    for metric, prefix in (("accuracy", ""), ("uar", "uar_")):
        ci = speaker_ci(r, metric)
        value = pooled[metric]
        cells.append(f"{value * 100:.1f} [{ci[0] * 100:.1f}, {ci[1] * 100:.1f}]" if ci else "n/a")
        csv |= {
            f"pooled_{metric}_pct": value * 100,
            f"{prefix}ci_lo_pct": None if ci is None else ci[0] * 100,
            f"{prefix}ci_hi_pct": None if ci is None else ci[1] * 100,
        }
    return cells, csv


def _models_notes(data: ReportData, runs: list[RunResult], has_paper: bool) -> list[str]:
    """Table 3's notes: chance level, how settings were chosen, the paper's figures."""
    notes = [_MACRO_NOTE]
    if runs:
        n_classes = len(runs[0].labels)
        notes.append(
            f"Chance = 1/{n_classes} classes = {100.0 / n_classes:.2f} % accuracy and UAR (a constant "
            "prediction has UAR 1/C whatever the class balance); the `majority` row always predicts the most "
            "frequent class of its training fold (fitted and scored by the same CV loop as every model)."
        )
    if any(r.selected for r in runs):
        notes.append(
            "Settings of each fold were chosen by nested selection on inner splits of that fold's "
            "training speakers (see 'Selected settings'); no test fold was used to choose anything."
        )
    elif runs:
        notes.append("Settings were FIXED by the config (eval.select=false), not selected per fold.")
    if has_paper:
        notes.append(
            "Paper accuracy: the paper's Table 3/4 claim (ViT, Swin and BERT have no mmfer counterpart)."
        )
    return notes


def table_models(data: ReportData) -> Table:
    """Table 3: every model on all modalities, with speaker-bootstrap CIs and a chance row."""
    runs = full_modality_runs(data.runs)
    has_paper = paper.paper_model_row(data.corpus, "rmlstm") is not None
    cols = metric_columns(data)
    headers = [
        "Model",
        "Modalities",
        "Folds",
        *(h for h, _ in cols),
        "Pooled accuracy, 95 % CI (speaker bootstrap)",
        "Pooled UAR, 95 % CI (speaker bootstrap)",
    ]
    if has_paper:
        headers.append("Paper accuracy (%)")
    rows, csv_rows = [], []
    for r in runs:
        cells, vals = metric_cells(summarise_folds(r.fold_metrics), cols)
        p_row = paper.paper_model_row(data.corpus, r.model)
        p_acc = p_row["accuracy"] if p_row else None
        ci_cells, ci_csv = _ci_cells(r)
        rows.append(
            [r.model, r.modality_text, str(len(r.fold_metrics)), *cells, *ci_cells]
            + ([fmt_pct(p_acc)] if has_paper else [])
        )
        csv_rows.append(_csv_row(data, r, vals, p_acc) | ci_csv)
    if runs:
        chance = f"{100.0 / len(runs[0].labels):.2f}"
        lead = ["—"] * (len(cols) - len(METRIC_COLUMNS))  # no chance level for weighted F1
        row = [f"chance (1/{len(runs[0].labels)})", "—", "—", *lead, chance, chance]
        rows.append(row + ["—"] * (len(headers) - len(row)))
    return Table(
        "table3_models",
        f"Table 3 — models on all modalities: {_headline(data)} (corpus: {corpus_label(data)}; "
        f"protocol: {data.protocol})",
        headers,
        rows,
        [*RUN_ID_FIELDS, *metric_csv_fields(cols), "paper_accuracy_pct", *_CI_FIELDS],
        csv_rows,
        _models_notes(data, runs, has_paper),
    )


def _speaker_p(row: SignificanceRow | None) -> str:
    """A speaker-level p-value cell ("—" when the comparison has none)."""
    p = None if row is None else row.speaker_wilcoxon_p
    return fmt_p(p) if p is not None else "—"


def table_ablation(data: ReportData) -> Table | None:
    """RMLSTM ablation: residual gate only, residual layers only, both, neither, paper's gate order."""
    runs: dict[str, RunResult] = {}
    for r in full_modality_runs(data.runs):
        if r.model in ABLATION_MODELS:
            runs.setdefault(r.model, r)
    if len(runs) < 2:
        return None
    headers = ["Model", "Residual gate", "Residual layers", "Gate order", *(h for h, _ in HEADLINE_COLUMNS)]
    headers += ["Speaker-level p vs rmlstm (accuracy)", "Speaker-level p vs rmlstm (UAR)"]
    # Comparisons against rmlstm, per metric: {metric: {model_b: row}}.
    sig: dict[str, dict[str, SignificanceRow]] = {}
    for s in data.significance:
        if s.model_a == "rmlstm":
            for m in s.with_other_metrics():
                sig.setdefault(m.metric, {})[s.model_b] = m
    rows, csv_rows = [], []
    for name, r in sorted(runs.items(), key=lambda kv: list(ABLATION_MODELS).index(kv[0])):
        cells, vals = metric_cells(summarise_folds(r.fold_metrics), HEADLINE_COLUMNS)
        acc_row, uar_row = sig.get("accuracy", {}).get(name), sig.get("uar", {}).get(name)
        ps = ["—", "—"] if name == "rmlstm" else [_speaker_p(acc_row), _speaker_p(uar_row)]
        rows.append([name, *ABLATION_MODELS[name], *cells, *ps])
        gate, layers, order = ABLATION_MODELS[name]
        csv_rows.append(
            {
                "model": name,
                "residual_gate": gate,
                "residual_layers": layers,
                "gate_order": order,
                **vals,
                "speaker_wilcoxon_p_vs_rmlstm": None if acc_row is None else acc_row.speaker_wilcoxon_p,
                "speaker_wilcoxon_p_uar_vs_rmlstm": None if uar_row is None else uar_row.speaker_wilcoxon_p,
            }
        )
    return Table(
        "table_ablation",
        f"Ablation — what makes RMLSTM: {_headline(data)} "
        f"(corpus: {corpus_label(data)}; protocol: {data.protocol})",
        headers,
        rows,
        list(csv_rows[0]),
        csv_rows,
        ["Each row is tuned by the same nested selection with the same budget.", _MACRO_NOTE],
    )


def table_front_ends(data: ReportData) -> Table | None:
    """Front-end ablation: the same models on the same folds with each feature front end."""
    if not data.front_ends:
        return None
    models = list(dict.fromkeys(r.model for r in data.front_ends))
    runs = [r for r in full_modality_runs(data.runs) if r.model in models] + list(data.front_ends)
    heads = metric_columns(data, HEADLINE_COLUMNS)
    headers = ["Front end", "Model", "Modalities", *(h for h, _ in heads)]
    rows, csv_rows = [], []
    for r in runs:
        cells, vals = metric_cells(summarise_folds(r.fold_metrics), heads)
        rows.append([r.front_end or "—", r.model, r.modality_text, *cells])
        csv_rows.append({"front_end": r.front_end, "model": r.model, "modalities": r.modality_text, **vals})
    return Table(
        "table_front_ends",
        f"Front ends — the same models and folds with each feature stack: {_headline(data)} "
        f"(protocol: {data.protocol})",
        headers,
        rows,
        list(csv_rows[0]),
        csv_rows,
        [
            "Every row is tuned by the same nested selection; only the per-sample features differ.",
            _MACRO_NOTE,
        ],
    )
