"""The tables set beside the paper's claims: Table 5 (training and test time) and Table 6 (accuracy)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from mmfer.evaluation import paper
from mmfer.evaluation.metrics import format_pm, summarise_folds
from mmfer.evaluation.results import (
    ProtocolResults,
    ReportData,
    RunResult,
    corpus_label,
    full_modality_runs,
    metric_summary,
    runs_of_model,
)
from mmfer.evaluation.table_base import RUN_ID_FIELDS, Table, fmt_pct, protocols_text, run_id

__all__ = ["table_paper", "table_timing"]

_TIMING_FIELDS: tuple[str, ...] = (
    *RUN_ID_FIELDS,
    "train_s_mean",
    "train_s_std",
    "test_ms_per_sample",
    "paper_train_min",
    "paper_test_s",
)
_PAPER_FIELDS: tuple[str, ...] = (
    "source",
    "method",
    "modalities",
    "corpus",
    "protocol",
    "accuracy_mean_pct",
    "accuracy_std_pct",
    "diff_vs_paper_pp",
    "uar_mean_pct",
    "uar_std_pct",
)


def _timing_row(data: ReportData, r: RunResult, has_paper: bool) -> tuple[list[str], dict[str, Any]]:
    """Table 5 cells and CSV row of one run: seconds per fold (mean ± std), ms per test sample."""
    t = np.asarray(r.train_seconds, dtype=np.float64)  # (k,)
    mean = float(t.mean()) if t.size else math.nan
    std = float(t.std(ddof=1)) if t.size > 1 else math.nan
    ms = r.test_seconds_per_sample * 1000.0
    row = [
        r.model,
        r.modality_text,
        format_pm(mean / 60, std / 60, pct=False, digits=2),
        format_pm(mean, std, pct=False, digits=1),
        f"{ms:.3f}",
    ]
    p_t = paper.paper_timing(data.corpus, r.model)
    if has_paper:
        row += [f"{p_t['train_min']:g}", f"{p_t['test_s']:g}"] if p_t else ["n/a", "n/a"]
    csv = {
        **run_id(data, r, int(t.size)),
        "train_s_mean": mean,
        "train_s_std": std,
        "test_ms_per_sample": ms,
        "paper_train_min": p_t["train_min"] if p_t else None,
        "paper_test_s": p_t["test_s"] if p_t else None,
    }
    return row, csv


def table_timing(data: ReportData) -> Table:
    """Table 5: training time per fold and test time per sample, beside the paper's."""
    runs = full_modality_runs(data.runs)
    has_paper = paper.paper_timing(data.corpus, "rmlstm") is not None
    headers = [
        "Model",
        "Modalities",
        "Train time / fold (min)",
        "Train time / fold (s)",
        "Test time / sample (ms)",
    ]
    if has_paper:
        headers += ["Paper train (min)", "Paper test (s)"]
    built = [_timing_row(data, r, has_paper) for r in runs]
    notes = [
        "Measured on this machine (CPU); the paper used MATLAB on an i7 and does not say whether its "
        "test time is per sample or per test set."
    ]
    head = (
        "table5_timing",
        f"Table 5 — training and test time (corpus: {corpus_label(data)}; protocol: {data.protocol})",
        headers,
    )
    return Table.of_rows(head, built, list(_TIMING_FIELDS), notes)


def _ours(data: ReportData, pr: ProtocolResults, paper_acc: float | None) -> list[tuple[list[str], dict]]:
    """Table 6 rows of the primary model under one protocol, with the difference to the paper."""
    out = []
    for r in runs_of_model(full_modality_runs(pr.runs), data.primary_model):
        summary = summarise_folds(r.fold_metrics)
        s, u = summary["accuracy"], metric_summary(summary, "uar")
        diff = s["mean"] * 100 - paper_acc if paper_acc is not None else None
        row = [
            "this run (mmfer)",
            f"{r.model} [{r.modality_text}]",
            corpus_label(data),
            pr.protocol,
            format_pm(s["mean"], s["std"]),
            fmt_pct(diff, 1),
            format_pm(u["mean"], u["std"]),
        ]
        csv = {
            "source": "mmfer",
            "method": r.model,
            "modalities": r.modality_text,
            "corpus": data.corpus,
            "protocol": pr.protocol,
            "accuracy_mean_pct": s["mean"] * 100,
            "accuracy_std_pct": s["std"] * 100,
            "diff_vs_paper_pp": diff,
            "uar_mean_pct": u["mean"] * 100,
            "uar_std_pct": u["std"] * 100,
        }
        out.append((row, csv))
    return out


def _claims(data: ReportData) -> list[tuple[list[str], dict]]:
    """Table 6 rows of the paper: its RMLSTM claim and the works it cites, for this corpus."""
    out = []
    for method, acc, printed in paper.paper_comparisons(data.corpus):
        proto = (
            "not stated (likely speaker-dependent)"
            if method == "RMLSTM"
            else "as cited by the paper (not stated)"
        )
        source = "paper Table 6 (claim)" if method == "RMLSTM" else "paper Table 6 (cited work)"
        row = [source, method, data.corpus, proto, printed, "", "not reported"]
        csv = {
            "source": source,
            "method": method,
            "modalities": "",
            "corpus": data.corpus,
            "protocol": proto,
            "accuracy_mean_pct": acc,
            "accuracy_std_pct": None,
            "diff_vs_paper_pp": None,
            "uar_mean_pct": None,
            "uar_std_pct": None,
        }
        out.append((row, csv))
    return out


def table_paper(data: ReportData) -> Table:
    """Table 6: our primary model's accuracy under each protocol beside the paper's claims."""
    paper_acc = paper.paper_rmlstm_accuracy(data.corpus)
    headers = [
        "Source",
        "Method",
        "Corpus",
        "Protocol",
        "Accuracy (%)",
        "Ours − paper RMLSTM (pp)",
        "UAR (%)",
    ]
    protocols = [data.main()] + ([data.second] if data.second else [])
    built = [b for pr in protocols for b in _ours(data, pr, paper_acc)] + _claims(data)
    notes = []
    if paper_acc is None:
        notes.append(
            f"The paper publishes no number for corpus {data.corpus!r}; "
            "it reports SAVEE 99.57, YouTube 97.83, CK+ 97.28, RAVDESS 94.63."
        )
    notes.append("Paper figures are the authors' claims, copied from its Table 6; not reproduced by mmfer.")
    notes.append("The paper reports accuracy only; UAR (unweighted average recall) is given for our runs.")
    head = (
        "table6_paper_vs_ours",
        f"Table 6 — our accuracy beside the paper's, with our UAR ({protocols_text(data)})",
        headers,
    )
    return Table.of_rows(head, built, list(_PAPER_FIELDS), notes)
