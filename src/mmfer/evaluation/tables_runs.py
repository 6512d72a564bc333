"""Tables about how the runs were made: per fold, per protocol and the settings chosen per fold."""

from __future__ import annotations

from typing import Any

from mmfer.evaluation.audit import resolve_speaker_independent
from mmfer.evaluation.metrics import format_pm, summarise_folds
from mmfer.evaluation.results import ProtocolResults, ReportData, RunResult, corpus_label, modality_key
from mmfer.evaluation.table_base import Table, protocols_text

__all__ = ["PER_FOLD_FIELDS", "per_fold_tables", "table_protocols", "table_selection"]

#: Columns of per_fold.csv, one row per fold of every run.
PER_FOLD_FIELDS: tuple[str, ...] = (
    "protocol",
    "model",
    "modalities",
    "fold",
    "n_test",
    "accuracy",
    "macro_ppv",
    "macro_specificity",
    "macro_sensitivity",
    "macro_mcc_ovr",
    "mcc_multiclass",
    "train_seconds",
)


def _fold_rows(pr: ProtocolResults, r: RunResult) -> list[dict[str, Any]]:
    """The per_fold.csv rows of one run."""
    return [
        {
            "protocol": pr.protocol,
            "model": r.model,
            "modalities": r.modality_text,
            "fold": i + 1,
            "n_test": m.get("n"),
            "accuracy": m["accuracy"],
            "macro_ppv": m["macro"]["ppv"],
            "macro_specificity": m["macro"]["specificity"],
            "macro_sensitivity": m["macro"]["sensitivity"],
            "macro_mcc_ovr": m["macro"]["mcc_ovr"],
            "mcc_multiclass": m["mcc_multiclass"],
            "train_seconds": r.train_seconds[i] if i < len(r.train_seconds) else None,
        }
        for i, m in enumerate(r.fold_metrics)
    ]


def per_fold_tables(data: ReportData) -> tuple[Table, Table]:
    """Long-format CSV of every fold of every run, and a compact accuracy-per-fold Markdown table."""
    fields = list(PER_FOLD_FIELDS)
    csv_rows: list[dict[str, Any]] = []
    protocols = [data.main()] + ([data.second] if data.second else [])
    k_max = max(len(r.fold_metrics) for pr in protocols for r in pr.runs)
    md_rows = []
    for pr in protocols:
        for r in pr.runs:
            csv_rows += _fold_rows(pr, r)
            accs = [f"{m['accuracy'] * 100:.1f}" for m in r.fold_metrics]
            md_rows.append([pr.protocol, r.model, r.modality_text, *accs, *[""] * (k_max - len(accs))])
    csv_table = Table("per_fold", "per fold", fields, [], fields, csv_rows)
    md_table = Table(
        None,
        f"Accuracy (%) per fold ({protocols_text(data)})",
        ["Protocol", "Model", "Modalities", *(f"Fold {i + 1}" for i in range(k_max))],
        md_rows,
        [],
        [],
    )
    return csv_table, md_table


def table_protocols(data: ReportData) -> Table | None:
    """Main vs second protocol per run (the speaker-dependent inflation); None without a second."""
    if data.second is None:
        return None
    main, second = data.main(), data.second
    main_ind, _ = resolve_speaker_independent(main.protocol, main.speaker_independent)
    second_ind, _ = resolve_speaker_independent(second.protocol, second.speaker_independent)
    # Inflation = speaker-dependent minus speaker-independent accuracy, whichever is the main protocol.
    sign = -1.0 if (main_ind is False and second_ind is True) else 1.0
    diff_name = "Inflation (pp)" if main_ind != second_ind else "Difference (pp)"
    other = {(r.model, frozenset(r.modalities)): r for r in second.runs}
    rows, csv_rows = [], []
    for r in sorted(main.runs, key=lambda r: (r.model, modality_key(r.modalities))):
        o = other.get((r.model, frozenset(r.modalities)))
        if o is None:
            continue
        a = summarise_folds(r.fold_metrics)["accuracy"]
        b = summarise_folds(o.fold_metrics)["accuracy"]
        diff = sign * (b["mean"] - a["mean"]) * 100
        rows.append(
            [
                r.model,
                r.modality_text,
                format_pm(a["mean"], a["std"]),
                format_pm(b["mean"], b["std"]),
                f"{diff:+.1f}",
            ]
        )
        csv_rows.append(
            {
                "model": r.model,
                "modalities": r.modality_text,
                "protocol_a": main.protocol,
                "accuracy_a_mean_pct": a["mean"] * 100,
                "accuracy_a_std_pct": a["std"] * 100,
                "protocol_b": second.protocol,
                "accuracy_b_mean_pct": b["mean"] * 100,
                "accuracy_b_std_pct": b["std"] * 100,
                "difference_pp": diff,
            }
        )
    notes = [
        f"{diff_name}: speaker-dependent minus speaker-independent accuracy, in percentage points."
        if main_ind != second_ind
        else "Difference: second protocol minus main protocol."
    ]
    return Table(
        "protocol_comparison",
        f"Protocol comparison — accuracy (%) under {main.protocol} vs {second.protocol} "
        f"(corpus: {corpus_label(data)})",
        [
            "Model",
            "Modalities",
            f"Accuracy (%) — {main.protocol}",
            f"Accuracy (%) — {second.protocol}",
            diff_name,
        ],
        rows,
        [
            "model",
            "modalities",
            "protocol_a",
            "accuracy_a_mean_pct",
            "accuracy_a_std_pct",
            "protocol_b",
            "accuracy_b_mean_pct",
            "accuracy_b_std_pct",
            "difference_pp",
        ],
        csv_rows,
        notes,
    )


def _selection_row(r: RunResult, k: int, sel: dict[str, Any]) -> tuple[list[str], dict[str, Any]]:
    """Cells and CSV row of what the nested selection chose in fold ``k`` (0-based) of one run."""
    params = ", ".join(f"{key}={val}" for key, val in sorted(sel.get("params", {}).items())) or "—"
    inner = sel.get("inner_accuracy")
    row = [
        r.model,
        r.modality_text,
        str(k + 1),
        params,
        "—" if inner is None else f"{inner * 100:.1f}",
        f"{sel.get('candidates', 0)} x {sel.get('inner_folds', 0)}",
    ]
    csv = {
        "model": r.model,
        "modalities": r.modality_text,
        "fold": k + 1,
        "params": params,
        "inner_accuracy_pct": None if inner is None else inner * 100,
        "candidates": sel.get("candidates", 0),
        "inner_folds": sel.get("inner_folds", 0),
    }
    return row, csv


def table_selection(data: ReportData) -> Table | None:
    """Settings chosen per fold by the nested selection (inner accuracy in %)."""
    runs = [r for r in data.runs if any(sel.get("params") for sel in r.selected)]
    if not runs:
        return None
    headers = [
        "Model",
        "Modalities",
        "Fold",
        "Chosen settings",
        "Inner accuracy (%)",
        "Candidates x inner folds",
    ]
    built = [_selection_row(r, k, sel) for r in runs for k, sel in enumerate(r.selected)]
    csv_rows = [csv for _, csv in built]
    return Table(
        "selected_settings",
        f"Selected settings — nested selection per outer fold (protocol: {data.protocol})",
        headers,
        [row for row, _ in built],
        list(csv_rows[0]),
        csv_rows,
        [
            "Chosen on inner splits of each outer fold's training speakers only (speaker-grouped under "
            "speaker-independent protocols); every model draws the same number of candidates from its "
            "declared search space."
        ],
    )
