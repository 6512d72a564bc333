"""Tables about how the runs were made: per fold, per protocol and the settings chosen per fold."""

from __future__ import annotations

import math
from typing import Any

from mmfer.evaluation.audit import resolve_speaker_independent
from mmfer.evaluation.metrics import HEADLINE_METRICS, format_pm, summarise_folds
from mmfer.evaluation.results import (
    ProtocolResults,
    ReportData,
    RunResult,
    corpus_label,
    metric_summary,
    modality_key,
)
from mmfer.evaluation.table_base import Table, fmt_pct, protocols_text

__all__ = ["PER_FOLD_FIELDS", "per_fold_tables", "search_reach", "table_protocols", "table_selection"]

#: Columns of per_fold.csv, one row per fold of every run.
PER_FOLD_FIELDS: tuple[str, ...] = (
    "protocol",
    "model",
    "modalities",
    "fold",
    "n_test",
    "accuracy",
    "uar",
    "macro_f1",
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
            "uar": m.get("uar"),
            "macro_f1": m.get("macro_f1"),
            "macro_ppv": m["macro"]["ppv"],
            "macro_specificity": m["macro"]["specificity"],
            "macro_sensitivity": m["macro"]["sensitivity"],
            "macro_mcc_ovr": m["macro"]["mcc_ovr"],
            "mcc_multiclass": m["mcc_multiclass"],
            "train_seconds": r.train_seconds[i] if i < len(r.train_seconds) else None,
        }
        for i, m in enumerate(r.fold_metrics)
    ]


def _fold_value(m: dict[str, Any], key: str) -> float:
    """A top-level metric of one fold; NaN when absent (folds scored before it was recorded)."""
    value = m.get(key)
    return math.nan if value is None else float(value)


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
            for key, name in HEADLINE_METRICS.items():
                cells = [fmt_pct(_fold_value(m, key) * 100, 1) for m in r.fold_metrics]
                md_rows.append(
                    [pr.protocol, r.model, r.modality_text, name, *cells, *[""] * (k_max - len(cells))]
                )
    csv_table = Table("per_fold", "per fold", fields, [], fields, csv_rows)
    md_table = Table(
        None,
        f"Accuracy, UAR and macro-F1 (%) per fold ({protocols_text(data)})",
        ["Protocol", "Model", "Modalities", "Metric", *(f"Fold {i + 1}" for i in range(k_max))],
        md_rows,
        [],
        [],
    )
    return csv_table, md_table


def _protocol_row(
    r: RunResult, o: RunResult, sign: float, protocols: tuple[str, str]
) -> tuple[list[str], dict[str, Any]]:
    """Cells and CSV row of one run under both protocols: accuracy and UAR, and their differences."""
    sa, sb = summarise_folds(r.fold_metrics), summarise_folds(o.fold_metrics)
    cells: list[str] = [r.model, r.modality_text]
    csv: dict[str, Any] = {"model": r.model, "modalities": r.modality_text}
    for key, col in (("accuracy", "accuracy"), ("uar", "uar")):
        a, b = metric_summary(sa, key), metric_summary(sb, key)
        diff = sign * (b["mean"] - a["mean"]) * 100
        cells += [format_pm(a["mean"], a["std"]), format_pm(b["mean"], b["std"]), fmt_signed(diff)]
        csv |= {
            f"{col}_a_mean_pct": a["mean"] * 100,
            f"{col}_a_std_pct": a["std"] * 100,
            f"{col}_b_mean_pct": b["mean"] * 100,
            f"{col}_b_std_pct": b["std"] * 100,
            "difference_pp" if key == "accuracy" else "uar_difference_pp": diff,
        }
    csv["protocol_a"], csv["protocol_b"] = protocols
    return cells, csv


def fmt_signed(x: float) -> str:
    """A signed difference with one decimal (``+3.2``); ``"n/a"`` for NaN."""
    return "n/a" if math.isnan(x) else f"{x:+.1f}"


def table_protocols(data: ReportData) -> Table | None:
    """Main vs second protocol per run (the speaker-dependent inflation); None without a second."""
    if data.second is None:
        return None
    main, second = data.main(), data.second
    main_ind, _ = resolve_speaker_independent(main.protocol, main.speaker_independent, main.leakage)
    second_ind, _ = resolve_speaker_independent(second.protocol, second.speaker_independent, second.leakage)
    # Inflation = speaker-dependent minus speaker-independent score, whichever is the main protocol.
    sign = -1.0 if (main_ind is False and second_ind is True) else 1.0
    diff_name = "Inflation (pp)" if main_ind != second_ind else "Difference (pp)"
    other = {(r.model, frozenset(r.modalities)): r for r in second.runs}
    built = [
        _protocol_row(r, o, sign, (main.protocol, second.protocol))
        for r in sorted(main.runs, key=lambda r: (r.model, modality_key(r.modalities)))
        if (o := other.get((r.model, frozenset(r.modalities)))) is not None
    ]
    notes = [
        f"{diff_name}: speaker-dependent minus speaker-independent score, in percentage points."
        if main_ind != second_ind
        else "Difference: second protocol minus main protocol.",
        "UAR = unweighted average recall (balanced accuracy).",
    ]
    headers = ["Model", "Modalities"]
    for name in ("Accuracy", "UAR"):
        headers += [
            f"{name} (%) — {main.protocol}",
            f"{name} (%) — {second.protocol}",
            f"{name}: {diff_name}",
        ]
    head = (
        "protocol_comparison",
        f"Protocol comparison — accuracy and UAR (%) under {main.protocol} vs {second.protocol} "
        f"(corpus: {corpus_label(data)})",
        headers,
    )
    return Table.of_rows(head, built, list(_PROTOCOL_FIELDS), notes)


_PROTOCOL_FIELDS: tuple[str, ...] = (
    "model",
    "modalities",
    "protocol_a",
    "accuracy_a_mean_pct",
    "accuracy_a_std_pct",
    "protocol_b",
    "accuracy_b_mean_pct",
    "accuracy_b_std_pct",
    "difference_pp",
    "uar_a_mean_pct",
    "uar_a_std_pct",
    "uar_b_mean_pct",
    "uar_b_std_pct",
    "uar_difference_pp",
)


def search_reach(sel: dict[str, Any]) -> tuple[int, int] | None:
    """``(tried, space_size)`` of one fold's selection, when the selection recorded the space size.

    ``tried`` is the ``tried`` entry, else ``candidates`` (the candidates drawn and scored).
    """
    size = sel.get("space_size")
    if not size:
        return None
    return int(sel.get("tried", sel.get("candidates", 0))), int(size)


def _selection_row(
    r: RunResult, k: int, sel: dict[str, Any], with_reach: bool
) -> tuple[list[str], dict[str, Any]]:
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
    if with_reach:
        reach = search_reach(sel)
        row.append("—" if reach is None else f"{reach[0]} / {reach[1]} ({100 * reach[0] / reach[1]:.1f} %)")
        csv |= {
            "tried": None if reach is None else reach[0],
            "space_size": None if reach is None else reach[1],
            "search_reach_pct": None if reach is None else 100 * reach[0] / reach[1],
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
        f"Inner {data.headline_metric.replace('_', ' ')} (%)",
        "Candidates x inner folds",
    ]
    # The reach column only when the selection recorded its space (tried / space_size).
    with_reach = any(search_reach(sel) for r in runs for sel in r.selected)
    if with_reach:
        headers.append("Search reach (tried / space)")
    built = [_selection_row(r, k, sel, with_reach) for r in runs for k, sel in enumerate(r.selected)]
    csv_rows = [csv for _, csv in built]
    official = "official" in data.protocol
    notes = [
        (
            "Chosen on the official split's dev rows, every candidate fitted on the train rows only "
            "(test rows never seen); the chosen setting is then refitted on train + dev"
            if official
            else "Chosen on inner splits of each outer fold's training speakers only (speaker-grouped "
            "under speaker-independent protocols)"
        )
        + f", by inner {data.headline_metric.replace('_', ' ')}; every model draws the same number "
        "of candidates from its declared search space."
    ]
    if with_reach:
        notes.append(
            "Search reach: configurations tried / configurations in the model's search space; a model "
            "with a larger space is explored less thoroughly under the same budget."
        )
    head = (
        "selected_settings",
        f"Selected settings — nested selection per outer fold (protocol: {data.protocol})",
        headers,
    )
    return Table.of_rows(head, built, list(csv_rows[0]), notes)
