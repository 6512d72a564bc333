"""Report tables: every table of the report built from :class:`~mmfer.evaluation.results.ReportData`.

Each ``table_*`` function returns a :class:`Table`: formatted cells for
report.md/html and raw values for its CSV, with a title that names the corpus
and the protocol. Nothing is rendered or written here (see
:mod:`mmfer.evaluation.render` and :mod:`mmfer.evaluation.report`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mmfer.evaluation import paper
from mmfer.evaluation.audit import resolve_speaker_independent
from mmfer.evaluation.metrics import format_pm, summarise_folds
from mmfer.evaluation.results import (
    ReportData,
    RunResult,
    corpus_label,
    full_modality_runs,
    metric_summary,
    modality_key,
    runs_of_model,
    sorted_modalities,
)
from mmfer.evaluation.significance import cluster_bootstrap_accuracy, holm

__all__ = [
    "ABLATION_MODELS",
    "METRIC_COLUMNS",
    "Table",
    "per_fold_tables",
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

#: (column heading, dotted key into a summarise_folds dict) of the metric columns, all in %.
METRIC_COLUMNS: tuple[tuple[str, str], ...] = (
    ("Accuracy (%)", "accuracy"),
    ("PPV (%)", "macro.ppv"),
    ("Specificity (%)", "macro.specificity"),
    ("Sensitivity (%)", "macro.sensitivity"),
    ("MCC one-vs-rest (%)", "macro.mcc_ovr"),
    ("MCC multiclass (%)", "mcc_multiclass"),
)

_SIG_FIELDS = (
    "model_a",
    "model_b",
    "modalities",
    "protocol",
    "metric",
    "n_folds",
    "mean_diff_pp",
    "wilcoxon_p",
    "wilcoxon_method",
    "ttest_p",
    "mcnemar_b",
    "mcnemar_c",
    "mcnemar_exact_p",
    "mcnemar_chi2_p",
    "n_speakers",
    "speaker_mean_diff_pp",
    "speaker_diff_ci_lo_pp",
    "speaker_diff_ci_hi_pp",
    "speakers_a_better",
    "speakers_b_better",
    "speaker_wilcoxon_p",
    "primary_p_holm",
    "notes",
)


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


def _pct(x: float | None, digits: int = 2) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def _p(x: float | None) -> str:
    if x is None or math.isnan(x):
        return "n/a"
    return f"{x:.2e}" if x < 1e-3 else f"{x:.4f}"


def _metric_cells(summary: dict[str, Any]) -> tuple[list[str], dict[str, Any]]:
    cells, csv_vals = [], {}
    for _, key in METRIC_COLUMNS:
        s = metric_summary(summary, key)
        cells.append(format_pm(s["mean"], s["std"]))
        col = key.replace(".", "_")
        csv_vals[f"{col}_mean_pct"] = s["mean"] * 100
        csv_vals[f"{col}_std_pct"] = s["std"] * 100
    return cells, csv_vals


def _metric_csv_fields() -> list[str]:
    out = []
    for _, key in METRIC_COLUMNS:
        col = key.replace(".", "_")
        out += [f"{col}_mean_pct", f"{col}_std_pct"]
    return out


def _csv_row(data: ReportData, r: RunResult, vals: dict[str, Any], p_acc: float | None) -> dict[str, Any]:
    """One CSV row of Table 1/2 or 3/4: the run, its metric values and the paper's figure."""
    return {
        "corpus": data.corpus,
        "protocol": data.protocol,
        "model": r.model,
        "modalities": r.modality_text,
        "folds": len(r.fold_metrics),
        **vals,
        "paper_accuracy_pct": p_acc,
    }


def table_modalities(data: ReportData) -> Table:
    """Table 1: the primary model on each modality subset, beside the paper's figure."""
    runs = sorted(runs_of_model(data.runs, data.primary_model), key=lambda r: modality_key(r.modalities))
    has_paper = paper.paper_modality_row(data.corpus, ("audio",)) is not None
    headers = ["Modalities", "Folds", *(h for h, _ in METRIC_COLUMNS)]
    if has_paper:
        headers.append("Paper accuracy (%)")
    rows, csv_rows = [], []
    for r in runs:
        cells, vals = _metric_cells(summarise_folds(r.fold_metrics))
        row = [r.modality_text, str(len(r.fold_metrics)), *cells]
        p_row = paper.paper_modality_row(data.corpus, r.modalities)
        p_acc = p_row["accuracy"] if p_row else None
        if has_paper:
            row.append(_pct(p_acc))
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
        ["corpus", "protocol", "model", "modalities", "folds", *_metric_csv_fields(), "paper_accuracy_pct"],
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
        cells, vals = _metric_cells(summarise_folds(r.fold_metrics))
        p_row = paper.paper_model_row(data.corpus, r.model)
        p_acc = p_row["accuracy"] if p_row else None
        ci = speaker_ci(r)
        pooled = float(np.mean(np.asarray(r.y_true) == np.asarray(r.y_pred))) if r.y_true else math.nan
        ci_text = f"{pooled * 100:.1f} [{ci[0] * 100:.1f}, {ci[1] * 100:.1f}]" if ci else "n/a"
        row = [r.model, r.modality_text, str(len(r.fold_metrics)), *cells, ci_text]
        if has_paper:
            row.append(_pct(p_acc))
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
            "corpus",
            "protocol",
            "model",
            "modalities",
            "folds",
            *_metric_csv_fields(),
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
        p = _p(srow.speaker_wilcoxon_p) if srow is not None and srow.speaker_wilcoxon_p is not None else "—"
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
    rows, csv_rows = [], []
    for r in runs:
        for k, sel in enumerate(r.selected):
            params = ", ".join(f"{key}={val}" for key, val in sorted(sel.get("params", {}).items())) or "—"
            inner = sel.get("inner_accuracy")
            rows.append(
                [
                    r.model,
                    r.modality_text,
                    str(k + 1),
                    params,
                    "—" if inner is None else f"{inner * 100:.1f}",
                    f"{sel.get('candidates', 0)} x {sel.get('inner_folds', 0)}",
                ]
            )
            csv_rows.append(
                {
                    "model": r.model,
                    "modalities": r.modality_text,
                    "fold": k + 1,
                    "params": params,
                    "inner_accuracy_pct": None if inner is None else inner * 100,
                    "candidates": sel.get("candidates", 0),
                    "inner_folds": sel.get("inner_folds", 0),
                }
            )
    return Table(
        "selected_settings",
        f"Selected settings — nested selection per outer fold (protocol: {data.protocol})",
        headers,
        rows,
        list(csv_rows[0]),
        csv_rows,
        [
            "Chosen on inner splits of each outer fold's training speakers only (speaker-grouped under "
            "speaker-independent protocols); every model draws the same number of candidates from its "
            "declared search space."
        ],
    )


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
    rows, csv_rows = [], []
    for r in runs:
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
        rows.append(row)
        csv_rows.append(
            {
                "corpus": data.corpus,
                "protocol": data.protocol,
                "model": r.model,
                "modalities": r.modality_text,
                "folds": int(t.size),
                "train_s_mean": mean,
                "train_s_std": std,
                "test_ms_per_sample": ms,
                "paper_train_min": p_t["train_min"] if p_t else None,
                "paper_test_s": p_t["test_s"] if p_t else None,
            }
        )
    notes = [
        "Measured on this machine (CPU); the paper used MATLAB on an i7 and does not say whether its "
        "test time is per sample or per test set."
    ]
    return Table(
        "table5_timing",
        f"Table 5 — training and test time (corpus: {corpus_label(data)}; protocol: {data.protocol})",
        headers,
        rows,
        [
            "corpus",
            "protocol",
            "model",
            "modalities",
            "folds",
            "train_s_mean",
            "train_s_std",
            "test_ms_per_sample",
            "paper_train_min",
            "paper_test_s",
        ],
        csv_rows,
        notes,
    )


def table_paper(data: ReportData) -> Table:
    """Table 6: our primary model's accuracy under each protocol beside the paper's claims."""
    paper_acc = paper.paper_rmlstm_accuracy(data.corpus)
    headers = ["Source", "Method", "Corpus", "Protocol", "Accuracy (%)", "Ours − paper RMLSTM (pp)"]
    rows, csv_rows = [], []
    protocols = [data.main()] + ([data.second] if data.second else [])
    for pr in protocols:
        for r in runs_of_model(full_modality_runs(pr.runs), data.primary_model):
            s = summarise_folds(r.fold_metrics)["accuracy"]
            diff = s["mean"] * 100 - paper_acc if paper_acc is not None else None
            rows.append(
                [
                    "this run (mmfer)",
                    f"{r.model} [{r.modality_text}]",
                    corpus_label(data),
                    pr.protocol,
                    format_pm(s["mean"], s["std"]),
                    _pct(diff, 1),
                ]
            )
            csv_rows.append(
                {
                    "source": "mmfer",
                    "method": r.model,
                    "modalities": r.modality_text,
                    "corpus": data.corpus,
                    "protocol": pr.protocol,
                    "accuracy_mean_pct": s["mean"] * 100,
                    "accuracy_std_pct": s["std"] * 100,
                    "diff_vs_paper_pp": diff,
                }
            )
    for method, acc, printed in paper.paper_comparisons(data.corpus):
        proto = (
            "not stated (likely speaker-dependent)"
            if method == "RMLSTM"
            else "as cited by the paper (not stated)"
        )
        source = "paper Table 6 (claim)" if method == "RMLSTM" else "paper Table 6 (cited work)"
        rows.append([source, method, data.corpus, proto, printed, ""])
        csv_rows.append(
            {
                "source": source,
                "method": method,
                "modalities": "",
                "corpus": data.corpus,
                "protocol": proto,
                "accuracy_mean_pct": acc,
                "accuracy_std_pct": None,
                "diff_vs_paper_pp": None,
            }
        )
    notes = []
    if paper_acc is None:
        notes.append(
            f"The paper publishes no number for corpus {data.corpus!r}; "
            "it reports SAVEE 99.57, YouTube 97.83, CK+ 97.28, RAVDESS 94.63."
        )
    notes.append("Paper figures are the authors' claims, copied from its Table 6; not reproduced by mmfer.")
    return Table(
        "table6_paper_vs_ours",
        f"Table 6 — our accuracy beside the paper's (corpus: {corpus_label(data)}; protocol: {data.protocol}"
        + (f" and {data.second.protocol}" if data.second else "")
        + ")",
        headers,
        rows,
        [
            "source",
            "method",
            "modalities",
            "corpus",
            "protocol",
            "accuracy_mean_pct",
            "accuracy_std_pct",
            "diff_vs_paper_pp",
        ],
        csv_rows,
        notes,
    )


def table_significance(data: ReportData) -> Table:
    """Speaker-level (primary, Holm-adjusted) and fold/clip-level (secondary) comparisons."""
    sig = list(data.significance) + (list(data.second.significance) if data.second else [])
    # Holm over the primary (speaker-level) p-values; fold-level where no speakers were recorded.
    primary = [s.speaker_wilcoxon_p if s.speaker_wilcoxon_p is not None else s.wilcoxon_p for s in sig]
    adjusted = holm(primary)
    headers = [
        "Model A",
        "Model B",
        "Modalities",
        "Protocol",
        "Speakers",
        "Mean A − B over speakers (pp)",
        "95 % CI of A − B (speaker bootstrap, pp)",
        "Speakers A better / B better",
        "Speaker-level Wilcoxon p",
        "Holm-adjusted p",
        "Folds",
        "Fold-level Wilcoxon p",
        "McNemar b / c",
        "McNemar exact p (optimistic)",
        "Notes",
    ]
    rows, csv_rows = [], []
    for s, adj in zip(sig, adjusted, strict=True):
        bc = f"{s.mcnemar_b} / {s.mcnemar_c}" if s.mcnemar_b is not None else "n/a"
        ci = s.speaker_diff_ci
        rows.append(
            [
                s.model_a,
                s.model_b,
                "+".join(sorted_modalities(s.modalities)),
                s.protocol,
                str(s.n_speakers) if s.n_speakers is not None else "n/a",
                f"{s.speaker_mean_diff * 100:.2f}" if s.speaker_mean_diff is not None else "n/a",
                f"[{ci[0] * 100:.1f}, {ci[1] * 100:.1f}]" if ci else "n/a",
                f"{s.speakers_a_better} / {s.speakers_b_better}" if s.n_speakers is not None else "n/a",
                f"{_p(s.speaker_wilcoxon_p)} ({s.speaker_wilcoxon_method})"
                if s.speaker_wilcoxon_p is not None
                else "n/a",
                _p(adj),
                str(s.n_folds),
                f"{_p(s.wilcoxon_p)} ({s.wilcoxon_method})",
                bc,
                _p(s.mcnemar_exact_p),
                "; ".join(s.notes),
            ]
        )
        csv_rows.append(
            {
                "model_a": s.model_a,
                "model_b": s.model_b,
                "modalities": "+".join(s.modalities),
                "protocol": s.protocol,
                "metric": s.metric,
                "n_folds": s.n_folds,
                "mean_diff_pp": s.mean_diff * 100,
                "wilcoxon_p": s.wilcoxon_p,
                "wilcoxon_method": s.wilcoxon_method,
                "ttest_p": s.ttest_p,
                "mcnemar_b": s.mcnemar_b,
                "mcnemar_c": s.mcnemar_c,
                "mcnemar_exact_p": s.mcnemar_exact_p,
                "mcnemar_chi2_p": s.mcnemar_chi2_p,
                "n_speakers": s.n_speakers,
                "speaker_mean_diff_pp": None if s.speaker_mean_diff is None else s.speaker_mean_diff * 100,
                "speaker_diff_ci_lo_pp": None if ci is None else ci[0] * 100,
                "speaker_diff_ci_hi_pp": None if ci is None else ci[1] * 100,
                "speakers_a_better": s.speakers_a_better,
                "speakers_b_better": s.speakers_b_better,
                "speaker_wilcoxon_p": s.speaker_wilcoxon_p,
                "primary_p_holm": adj,
                "notes": "; ".join(s.notes),
            }
        )
    notes = [
        "Primary test: the speaker is the unit. Each speaker's pooled test accuracy under A and B forms "
        "one pair (Wilcoxon signed-rank over speakers); the interval resamples whole speakers "
        "(cluster bootstrap, 2000 draws). Holm adjusts the speaker-level p over all rows.",
        "Secondary, optimistic: fold-level Wilcoxon (few folds, overlapping training sets) and McNemar "
        "on pooled clips (b = A right and B wrong, c = A wrong and B right), which treats clips of one "
        "speaker as independent.",
    ]
    if data.corpus.lower() in paper.PAPER_P_VALUES:
        notes.append(
            f"The paper states p = {paper.PAPER_P_VALUES[data.corpus.lower()]} for this corpus "
            "without naming the test or the comparison."
        )
    if not sig:
        notes.append("No significance tests supplied.")
    return Table(
        "significance",
        f"Significance tests (corpus: {corpus_label(data)}; protocol: {data.protocol}"
        + (f" and {data.second.protocol}" if data.second else "")
        + ")",
        headers,
        rows,
        list(_SIG_FIELDS),
        csv_rows,
        notes,
    )


def per_fold_tables(data: ReportData) -> tuple[Table, Table]:
    """Long-format CSV of every fold of every run, and a compact accuracy-per-fold Markdown table."""
    fields = [
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
    ]
    csv_rows: list[dict[str, Any]] = []
    protocols = [data.main()] + ([data.second] if data.second else [])
    k_max = max(len(r.fold_metrics) for pr in protocols for r in pr.runs)
    md_rows = []
    for pr in protocols:
        for r in pr.runs:
            accs = []
            for i, m in enumerate(r.fold_metrics):
                csv_rows.append(
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
                )
                accs.append(f"{m['accuracy'] * 100:.1f}")
            md_rows.append([pr.protocol, r.model, r.modality_text, *accs, *[""] * (k_max - len(accs))])
    csv_table = Table("per_fold", "per fold", fields, [], fields, csv_rows)
    md_table = Table(
        None,
        f"Accuracy (%) per fold (corpus: {corpus_label(data)}; protocol: {data.protocol}"
        + (f" and {data.second.protocol}" if data.second else "")
        + ")",
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
    main_ind, _ = resolve_speaker_independent(main.protocol, main.speaker_independent, main.leakage)
    second_ind, _ = resolve_speaker_independent(second.protocol, second.speaker_independent, second.leakage)
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
