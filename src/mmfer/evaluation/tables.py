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
from mmfer.evaluation.metrics import format_pm, summarise_folds
from mmfer.evaluation.results import (
    ReportData,
    RunResult,
    corpus_label,
    full_modality_runs,
    metric_summary,
    modality_key,
    runs_of_model,
)
from mmfer.evaluation.significance import cluster_bootstrap_accuracy
from mmfer.evaluation.table_base import (
    METRIC_COLUMNS,
    RUN_ID_FIELDS,
    Table,
    fmt_p,
    fmt_pct,
    metric_cells,
    metric_csv_fields,
    run_id,
)
from mmfer.evaluation.tables_paper import table_paper, table_timing
from mmfer.evaluation.tables_runs import per_fold_tables, table_protocols, table_selection
from mmfer.evaluation.tables_significance import table_significance

__all__ = [
    "ABLATION_MODELS",
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


def _csv_row(data: ReportData, r: RunResult, vals: dict[str, Any], p_acc: float | None) -> dict[str, Any]:
    """One CSV row of Table 1/2 or 3/4: the run, its metric values and the paper's figure."""
    return {**run_id(data, r, len(r.fold_metrics)), **vals, "paper_accuracy_pct": p_acc}


def table_modalities(data: ReportData) -> Table:
    """Table 1: the primary model on each modality subset, beside the paper's figure."""
    runs = sorted(runs_of_model(data.runs, data.primary_model), key=lambda r: modality_key(r.modalities))
    has_paper = paper.paper_modality_row(data.corpus, ("audio",)) is not None
    headers = ["Modalities", "Folds", *(h for h, _ in METRIC_COLUMNS)]
    if has_paper:
        headers.append("Paper accuracy (%)")
    rows, csv_rows = [], []
    for r in runs:
        cells, vals = metric_cells(summarise_folds(r.fold_metrics))
        row = [r.modality_text, str(len(r.fold_metrics)), *cells]
        p_row = paper.paper_modality_row(data.corpus, r.modalities)
        p_acc = p_row["accuracy"] if p_row else None
        if has_paper:
            row.append(fmt_pct(p_acc))
        rows.append(row)
        csv_rows.append(_csv_row(data, r, vals, p_acc))
    notes = ["Macro = unweighted mean over classes present in the test fold; mean ± sample std over folds."]
    if not runs:
        notes.append(f"No {data.primary_model} runs: modality ablation not run.")
    if has_paper:
        notes.append("Paper accuracy: the paper's Table 1/2 claim for this corpus (protocol not stated).")
    return Table(
        "table1_modalities",
        f"Table 1 — modality ablation, {data.primary_model} (corpus: {corpus_label(data)}; "
        f"protocol: {data.protocol})",
        headers,
        rows,
        [*RUN_ID_FIELDS, *metric_csv_fields(), "paper_accuracy_pct"],
        csv_rows,
        notes,
    )


def speaker_ci(r: RunResult) -> tuple[float, float] | None:
    """95 % cluster-bootstrap interval of a run's pooled accuracy (speakers resampled)."""
    if not r.speakers or len(r.speakers) != len(r.y_true) or len(set(r.speakers)) < 2:
        return None
    return cluster_bootstrap_accuracy(r.y_true, r.y_pred, r.speakers)


#: RMLSTM ablation rows: model -> (residual gate, residual layers, gate order).
ABLATION_MODELS: dict[str, tuple[str, str, str]] = {
    "rmlstm": ("yes", "yes", "x first (Melis)"),
    "rmlstm_gate": ("yes", "no", "x first (Melis)"),
    "rmlstm_layers": ("no", "yes", "x first (Melis)"),
    "mlstm": ("no", "no", "x first (Melis)"),
    "rmlstm_hfirst": ("yes", "yes", "h first (paper eqs. 8-11)"),
}


def table_models(data: ReportData) -> Table:
    """Table 3: every model on all modalities, with the speaker-bootstrap CI and a chance row."""
    runs = full_modality_runs(data.runs)
    has_paper = paper.paper_model_row(data.corpus, "rmlstm") is not None
    headers = [
        "Model",
        "Modalities",
        "Folds",
        *(h for h, _ in METRIC_COLUMNS),
        "Pooled accuracy, 95 % CI (speaker bootstrap)",
    ]
    if has_paper:
        headers.append("Paper accuracy (%)")
    rows, csv_rows = [], []
    for r in runs:
        cells, vals = metric_cells(summarise_folds(r.fold_metrics))
        p_row = paper.paper_model_row(data.corpus, r.model)
        p_acc = p_row["accuracy"] if p_row else None
        ci = speaker_ci(r)
        pooled = float(np.mean(np.asarray(r.y_true) == np.asarray(r.y_pred))) if r.y_true else math.nan
        ci_text = f"{pooled * 100:.1f} [{ci[0] * 100:.1f}, {ci[1] * 100:.1f}]" if ci else "n/a"
        row = [r.model, r.modality_text, str(len(r.fold_metrics)), *cells, ci_text]
        if has_paper:
            row.append(fmt_pct(p_acc))
        rows.append(row)
        csv = _csv_row(data, r, vals, p_acc)
        csv |= {
            "pooled_accuracy_pct": pooled * 100,
            "ci_lo_pct": None if ci is None else ci[0] * 100,
            "ci_hi_pct": None if ci is None else ci[1] * 100,
        }
        csv_rows.append(csv)
    notes = []
    if runs:
        n_classes = len(runs[0].labels)
        chance = 100.0 / n_classes
        rows.append([f"chance (1/{n_classes})", "—", "—", f"{chance:.2f}"] + ["—"] * (len(headers) - 4))
        notes.append(
            f"Chance = 1/{n_classes} classes = {chance:.2f} %; the `majority` row always predicts the most "
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
    return Table(
        "table3_models",
        f"Table 3 — models on all modalities (corpus: {corpus_label(data)}; protocol: {data.protocol})",
        headers,
        rows,
        [
            *RUN_ID_FIELDS,
            *metric_csv_fields(),
            "paper_accuracy_pct",
            "pooled_accuracy_pct",
            "ci_lo_pct",
            "ci_hi_pct",
        ],
        csv_rows,
        notes,
    )


def table_ablation(data: ReportData) -> Table | None:
    """RMLSTM ablation: residual gate only, residual layers only, both, neither, paper's gate order."""
    runs = [r for r in full_modality_runs(data.runs) if r.model in ABLATION_MODELS]
    if len(runs) < 2:
        return None
    headers = [
        "Model",
        "Residual gate",
        "Residual layers",
        "Gate order",
        "Accuracy (%)",
        "Speaker-level p vs rmlstm",
    ]
    base = next((r for r in runs if r.model == "rmlstm"), None)
    sig = {s.model_b: s for s in data.significance if s.model_a == "rmlstm"}
    rows, csv_rows = [], []
    for name in ABLATION_MODELS:
        r = next((x for x in runs if x.model == name), None)
        if r is None:
            continue
        acc = metric_summary(summarise_folds(r.fold_metrics), "accuracy")
        srow = sig.get(name)
        p_speaker = None if srow is None else srow.speaker_wilcoxon_p
        p = fmt_p(p_speaker) if p_speaker is not None else "—"
        gate, layers, order = ABLATION_MODELS[name]
        rows.append(
            [name, gate, layers, order, format_pm(acc["mean"], acc["std"]), p if r is not base else "—"]
        )
        csv_rows.append(
            {
                "model": name,
                "residual_gate": gate,
                "residual_layers": layers,
                "gate_order": order,
                "accuracy_mean_pct": acc["mean"] * 100,
                "accuracy_std_pct": acc["std"] * 100,
                "speaker_wilcoxon_p_vs_rmlstm": None if srow is None else srow.speaker_wilcoxon_p,
            }
        )
    return Table(
        "table_ablation",
        f"Ablation — what makes RMLSTM (corpus: {corpus_label(data)}; protocol: {data.protocol})",
        headers,
        rows,
        list(csv_rows[0]) if csv_rows else [],
        csv_rows,
        ["Each row is tuned by the same nested selection with the same budget."],
    )


def table_front_ends(data: ReportData) -> Table | None:
    """Front-end ablation: the same models on the same folds with each feature front end."""
    if not data.front_ends:
        return None
    models = list(dict.fromkeys(r.model for r in data.front_ends))
    runs = [r for r in full_modality_runs(data.runs) if r.model in models] + list(data.front_ends)
    headers = ["Front end", "Model", "Modalities", "Accuracy (%)", "Macro sensitivity (%)"]
    rows, csv_rows = [], []
    for r in runs:
        s = summarise_folds(r.fold_metrics)
        acc, sens = metric_summary(s, "accuracy"), metric_summary(s, "macro.sensitivity")
        rows.append(
            [
                r.front_end or "—",
                r.model,
                r.modality_text,
                format_pm(acc["mean"], acc["std"]),
                format_pm(sens["mean"], sens["std"]),
            ]
        )
        csv_rows.append(
            {
                "front_end": r.front_end,
                "model": r.model,
                "modalities": r.modality_text,
                "accuracy_mean_pct": acc["mean"] * 100,
                "accuracy_std_pct": acc["std"] * 100,
                "macro_sensitivity_mean_pct": sens["mean"] * 100,
            }
        )
    return Table(
        "table_front_ends",
        f"Front ends — the same models and folds with each feature stack (protocol: {data.protocol})",
        headers,
        rows,
        list(csv_rows[0]),
        csv_rows,
        ["Every row is tuned by the same nested selection; only the per-sample features differ."],
    )
