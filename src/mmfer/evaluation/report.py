"""Evaluation report: Markdown, one CSV per table, PNG plots and a self-contained HTML page.

The pipeline fills :class:`ReportData` (plain data: per-fold metric dicts from
:func:`mmfer.evaluation.metrics.classification_metrics`, pooled predictions,
timings, training histories, significance rows, a leakage audit) and calls
:func:`write_report`. Nothing here trains or evaluates a model.

Principles the report enforces:

- every table and figure title names the corpus and the evaluation protocol;
- synthetic corpora get a loud warning at the top of every output;
- a leakage audit that shows speakers shared between train and test under a
  speaker-independent protocol, a component fitted on test data, or identical
  clips on both sides of a split is flagged as ``LEAK`` at the top;
- the paper's numbers (:mod:`mmfer.evaluation.paper`) are shown beside ours,
  labelled as the paper's claims with an unstated protocol.

All files are written atomically (:mod:`mmfer.io`); the HTML embeds its PNGs as
base64 ``data:`` URIs with inline CSS, so it opens offline as one file.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import math
import re
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from mmfer.errors import DataError
from mmfer.evaluation import paper
from mmfer.evaluation.audit import LeakageAudit
from mmfer.evaluation.metrics import format_pm, summarise_folds
from mmfer.evaluation.significance import (
    cluster_bootstrap_accuracy,
    holm,
    mcnemar,
    paired_fold_tests,
    speaker_level_test,
)
from mmfer.io import atomic_write_bytes, atomic_write_text

#: Canonical modality order for sorting rows (mmfer calls the visual modality "face").
MODALITY_ORDER: tuple[str, ...] = ("face", "audio", "text")

SYNTHETIC_WARNING = "SYNTHETIC data — numbers say nothing about real-world performance"

#: (column heading, dotted key into a summarise_folds dict) of the metric columns, all in %.
METRIC_COLUMNS: tuple[tuple[str, str], ...] = (
    ("Accuracy (%)", "accuracy"),
    ("PPV (%)", "macro.ppv"),
    ("Specificity (%)", "macro.specificity"),
    ("Sensitivity (%)", "macro.sensitivity"),
    ("MCC one-vs-rest (%)", "macro.mcc_ovr"),
    ("MCC multiclass (%)", "mcc_multiclass"),
)


_FIG_DPI = 100
#: Above this many folds the training-curve legend stops naming each fold.
_MAX_LEGEND_FOLDS = 8

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


# --------------------------------------------------------------------------- data


@dataclass
class RunResult:
    """Cross-validated result of one model on one modality set under one protocol.

    Attributes
    ----------
    model
        Registered model name (``rmlstm``, ``lstm`` ...).
    modalities
        Modalities fed to the model, e.g. ``("face", "audio", "text")``.
    protocol
        Protocol of this run (short name or description).
    fold_metrics
        One :func:`~mmfer.evaluation.metrics.classification_metrics` dict per fold.
    y_true, y_pred
        ``(N,)`` class indices into ``labels``, pooled over the test folds (same
        sample order for every run of a protocol, so McNemar can pair them).
    labels
        ``(C,)`` class names; ``labels[i]`` is class index ``i``.
    train_seconds
        Wall-clock training time of each fold, ``(k,)``.
    test_seconds_per_sample
        Mean inference time per test sample (seconds).
    history
        Per fold, the epoch log: dicts with ``epoch``, ``train_loss`` and
        optionally ``val_loss`` (other keys ignored).
    sample_ids
        Optional ``(N,)`` sample ids in the order of ``y_true``; when two runs
        both have them, McNemar pairs samples only if the ids agree.
    speakers, selected, select_seconds
        See the field comments.
    """

    model: str
    modalities: tuple[str, ...]
    protocol: str
    fold_metrics: list[dict[str, Any]]
    y_true: list[int]
    y_pred: list[int]
    labels: list[str]
    train_seconds: list[float]
    test_seconds_per_sample: float
    history: list[list[dict[str, Any]]] = field(default_factory=list)
    sample_ids: list[str] = field(default_factory=list)
    #: ``(N,)`` speaker of each pooled test sample (same order as ``y_true``), for
    #: speaker-level significance tests and intervals.
    speakers: list[str] = field(default_factory=list)
    #: Per fold, what the nested selection chose: ``{"params": {...}, "inner_accuracy": float | None,
    #: "candidates": int, "inner_folds": int}``; empty when settings were fixed.
    selected: list[dict[str, Any]] = field(default_factory=list)
    #: Wall-clock seconds of the nested selection per fold (on top of ``train_seconds``).
    select_seconds: list[float] = field(default_factory=list)
    #: The feature front end this run used (profile and extractors), for the front-end table.
    front_end: str = ""

    @property
    def modality_text(self) -> str:
        """Modalities joined with ``+`` in canonical order."""
        return "+".join(_sorted_modalities(self.modalities))

    @property
    def name(self) -> str:
        """``model [modalities]``, unique within one protocol."""
        return f"{self.model} [{self.modality_text}]"


@dataclass
class SignificanceRow:
    """Paired comparison of model A against model B (same folds, same test samples).

    ``mean_diff`` is A - B of ``metric`` (a fraction); p-values are two-sided.
    Build it with :func:`compare_runs`.
    """

    model_a: str
    model_b: str
    modalities: tuple[str, ...]
    protocol: str
    metric: str
    n_folds: int
    mean_diff: float
    wilcoxon_p: float
    wilcoxon_method: str
    ttest_p: float
    mcnemar_b: int | None = None
    mcnemar_c: int | None = None
    mcnemar_exact_p: float | None = None
    mcnemar_chi2_p: float | None = None
    #: Speaker-level comparison (the primary test): per-speaker accuracy pairs.
    n_speakers: int | None = None
    speaker_mean_diff: float | None = None
    speaker_wilcoxon_p: float | None = None
    speaker_wilcoxon_method: str = ""
    #: 95 % cluster-bootstrap interval (speakers resampled) of the pooled accuracy difference.
    speaker_diff_ci: tuple[float, float] | None = None
    speakers_a_better: int | None = None
    speakers_b_better: int | None = None
    notes: list[str] = field(default_factory=list)


@dataclass
class ProtocolResults:
    """All runs under one protocol (used for the optional second protocol)."""

    protocol: str
    runs: list[RunResult]
    significance: list[SignificanceRow] = field(default_factory=list)
    leakage: LeakageAudit | None = None
    #: None = inferred from ``protocol`` (see :func:`is_speaker_independent`).
    speaker_independent: bool | None = None


@dataclass
class ReportData:
    """Everything :func:`write_report` renders.

    Attributes
    ----------
    corpus
        Corpus name (``savee``, ``ravdess``, ``ckplus``, ``synthetic`` ...).
    is_synthetic
        True for generated data: every output then carries :data:`SYNTHETIC_WARNING`.
    protocol
        Human description of the main protocol, e.g.
        ``"speaker-independent leave-one-speaker-out (6 folds)"``; named in
        every table and figure title.
    runs
        Results under the main protocol.
    significance
        Comparison rows (see :func:`compare_runs`).
    leakage
        Leakage audit of the main protocol (None = not audited, said so).
    speaker_independent
        Whether the main protocol keeps speakers apart; None = inferred from
        ``protocol``.
    second
        Optional results under another protocol (typically speaker-dependent),
        shown side by side with the difference ("inflation").
    primary_model
        The model of the modality ablation, training curves and Table 6.
    title
        Report heading.
    notes
        Free-text remarks shown under the heading.
    """

    corpus: str
    is_synthetic: bool
    protocol: str
    runs: list[RunResult]
    significance: list[SignificanceRow] = field(default_factory=list)
    leakage: LeakageAudit | None = None
    speaker_independent: bool | None = None
    second: ProtocolResults | None = None
    primary_model: str = "rmlstm"
    title: str = "mmfer evaluation report"
    notes: list[str] = field(default_factory=list)
    #: Runs of the same models on the same folds with other front ends (front-end ablation).
    front_ends: list[RunResult] = field(default_factory=list)

    def main(self) -> ProtocolResults:
        """The main protocol's results as a :class:`ProtocolResults`."""
        return ProtocolResults(
            self.protocol, self.runs, self.significance, self.leakage, self.speaker_independent
        )


# --------------------------------------------------------------------------- helpers


def is_speaker_independent(protocol: str) -> bool | None:
    """Guess from a protocol description whether test speakers are unseen; None if unclear."""
    p = protocol.lower().replace("_", "-")
    if "independent" in p or "leave-one-speaker-out" in p or "loso" in p or "group-kfold" in p:
        return True
    if "dependent" in p or "stratified" in p:
        return False
    return None


def _resolve_independent(pr: ProtocolResults) -> tuple[bool, list[str]]:
    if pr.speaker_independent is not None:
        return pr.speaker_independent, []
    guess = is_speaker_independent(pr.protocol)
    if guess is None:
        # Unknown: be strict, so a mislabelled speaker-dependent run cannot pass as independent.
        return True, [
            f"protocol {pr.protocol!r} not recognised as speaker-dependent or -independent; "
            "speaker overlap is treated as a leak"
        ]
    return guess, []


def _sorted_modalities(mods: Sequence[str]) -> list[str]:
    return sorted(mods, key=lambda m: (MODALITY_ORDER.index(m) if m in MODALITY_ORDER else 99, m))


def _modality_key(mods: Sequence[str]) -> tuple[int, list[int], list[str]]:
    ordered = _sorted_modalities(mods)
    return (len(ordered), [MODALITY_ORDER.index(m) if m in MODALITY_ORDER else 99 for m in ordered], ordered)


def _get(summary: dict[str, Any], key: str) -> dict[str, float]:
    node: Any = summary
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return {"mean": math.nan, "std": math.nan, "n": 0}
        node = node[part]
    return node


def _metric_value(metrics: dict[str, Any], key: str) -> float:
    node: Any = metrics
    for part in key.split("."):
        node = node[part]
    return float(node)


def _pct(x: float | None, digits: int = 2) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def _p(x: float | None) -> str:
    if x is None or math.isnan(x):
        return "n/a"
    return f"{x:.2e}" if x < 1e-3 else f"{x:.4f}"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_").lower() or "x"


def _by_name(runs: Sequence[RunResult], model: str) -> list[RunResult]:
    return [r for r in runs if r.model.lower() == model.lower()]


def _full_modality_runs(runs: Sequence[RunResult]) -> list[RunResult]:
    """Runs on the union of all modalities seen (the "all modalities" setting of Tables 3-4)."""
    if not runs:
        return []
    full = set().union(*(set(r.modalities) for r in runs))
    chosen = [r for r in runs if set(r.modalities) == full]
    if not chosen:  # no run used every modality: take the largest sets
        biggest = max(len(set(r.modalities)) for r in runs)
        chosen = [r for r in runs if len(set(r.modalities)) == biggest]
    return chosen


def compare_runs(a: RunResult, b: RunResult, metric: str = "accuracy") -> SignificanceRow:
    """Paired fold tests on ``metric`` and McNemar on the pooled predictions of two runs.

    Parameters
    ----------
    a, b
        Runs under the same protocol and folds.
    metric
        Dotted key into the fold metric dicts (``accuracy``, ``macro.sensitivity`` ...).

    Returns
    -------
    SignificanceRow
        McNemar fields are None (with a note) when the pooled ``y_true`` (or
        ``sample_ids``, when both runs have them) differ, i.e. the samples cannot
        be paired.

    Raises
    ------
    DataError
        Different fold counts or a missing metric key.
    """
    if len(a.fold_metrics) != len(b.fold_metrics):
        raise DataError(None, f"{a.name} has {len(a.fold_metrics)} folds, {b.name} {len(b.fold_metrics)}")
    try:
        sa = [_metric_value(m, metric) for m in a.fold_metrics]
        sb = [_metric_value(m, metric) for m in b.fold_metrics]
    except (KeyError, TypeError):
        raise DataError(
            None, f"metric {metric!r} missing from the fold metrics of {a.name} or {b.name}"
        ) from None
    t = paired_fold_tests(sa, sb)
    row = SignificanceRow(
        model_a=a.model,
        model_b=b.model,
        modalities=tuple(_sorted_modalities(a.modalities)),
        protocol=a.protocol,
        metric=metric,
        n_folds=t["n"],
        mean_diff=t["mean_diff"],
        wilcoxon_p=t["wilcoxon_p"],
        wilcoxon_method=t["wilcoxon_method"],
        ttest_p=t["ttest_p"],
        notes=list(t["notes"]),
    )
    if set(a.modalities) != set(b.modalities):
        row.notes.append(f"different modalities: {a.modality_text} vs {b.modality_text}")
    # Equal ids (when both runs have them) and equal labels are needed to pair the samples.
    same_ids = not (a.sample_ids and b.sample_ids) or list(a.sample_ids) == list(b.sample_ids)
    if same_ids and list(a.y_true) == list(b.y_true):
        m = mcnemar(a.y_true, a.y_pred, b.y_pred)
        row.mcnemar_b, row.mcnemar_c = m["b"], m["c"]
        row.mcnemar_exact_p, row.mcnemar_chi2_p = m["exact_p"], m["chi2_p"]
        if (
            a.speakers
            and len(a.speakers) == len(a.y_true)
            and list(a.speakers) == list(b.speakers or a.speakers)
        ):
            sp = speaker_level_test(a.y_true, a.y_pred, b.y_pred, a.speakers)
            row.n_speakers, row.speaker_mean_diff = sp["n_speakers"], sp["mean_diff"]
            row.speaker_wilcoxon_p, row.speaker_wilcoxon_method = sp["wilcoxon_p"], sp["wilcoxon_method"]
            row.speaker_diff_ci = sp["diff_ci"]
            row.speakers_a_better, row.speakers_b_better = sp["a_better"], sp["b_better"]
    else:
        row.notes.append("pooled test samples differ in order or content: McNemar skipped")
    return row


# --------------------------------------------------------------------------- document model


@dataclass
class _Table:
    stem: str | None  # CSV file stem; None = only in report.md/html
    title: str
    headers: list[str]
    rows: list[list[str]]
    csv_fields: list[str]
    csv_rows: list[dict[str, Any]]
    notes: list[str] = field(default_factory=list)


@dataclass
class _Figure:
    filename: str
    caption: str
    png: bytes


Block = tuple[str, Any]  # ("h2"|"p"|"ul"|"banner-warn"|"banner-leak"|"table"|"figure", payload)


def _corpus_label(data: ReportData) -> str:
    return f"{data.corpus} [SYNTHETIC]" if data.is_synthetic else data.corpus


def _metric_cells(summary: dict[str, Any]) -> tuple[list[str], dict[str, Any]]:
    cells, csv_vals = [], {}
    for _, key in METRIC_COLUMNS:
        s = _get(summary, key)
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


def _table_modalities(data: ReportData) -> _Table:
    runs = sorted(_by_name(data.runs, data.primary_model), key=lambda r: _modality_key(r.modalities))
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
    return _Table(
        "table1_modalities",
        f"Table 1 — modality ablation, {data.primary_model} (corpus: {_corpus_label(data)}; "
        f"protocol: {data.protocol})",
        headers,
        rows,
        ["corpus", "protocol", "model", "modalities", "folds", *_metric_csv_fields(), "paper_accuracy_pct"],
        csv_rows,
        notes,
    )


def _speaker_ci(r: RunResult) -> tuple[float, float] | None:
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


def _table_models(data: ReportData) -> _Table:
    runs = _full_modality_runs(data.runs)
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
        ci = _speaker_ci(r)
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
    return _Table(
        "table3_models",
        f"Table 3 — models on all modalities (corpus: {_corpus_label(data)}; protocol: {data.protocol})",
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


def _table_ablation(data: ReportData) -> _Table | None:
    """RMLSTM ablation: residual gate only, residual layers only, both, neither, paper's gate order."""
    runs = [r for r in _full_modality_runs(data.runs) if r.model in ABLATION_MODELS]
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
        acc = _get(summarise_folds(r.fold_metrics), "accuracy")
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
    return _Table(
        "table_ablation",
        f"Ablation — what makes RMLSTM (corpus: {_corpus_label(data)}; protocol: {data.protocol})",
        headers,
        rows,
        list(csv_rows[0]) if csv_rows else [],
        csv_rows,
        ["Each row is tuned by the same nested selection with the same budget."],
    )


def _table_front_ends(data: ReportData) -> _Table | None:
    """Front-end ablation: the same models on the same folds with each feature front end."""
    if not data.front_ends:
        return None
    models = list(dict.fromkeys(r.model for r in data.front_ends))
    runs = [r for r in _full_modality_runs(data.runs) if r.model in models] + list(data.front_ends)
    headers = ["Front end", "Model", "Modalities", "Accuracy (%)", "Macro sensitivity (%)"]
    rows, csv_rows = [], []
    for r in runs:
        s = summarise_folds(r.fold_metrics)
        acc, sens = _get(s, "accuracy"), _get(s, "macro.sensitivity")
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
    return _Table(
        "table_front_ends",
        f"Front ends — the same models and folds with each feature stack (protocol: {data.protocol})",
        headers,
        rows,
        list(csv_rows[0]),
        csv_rows,
        ["Every row is tuned by the same nested selection; only the per-sample features differ."],
    )


def _table_selection(data: ReportData) -> _Table | None:
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
    return _Table(
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


def _table_timing(data: ReportData) -> _Table:
    runs = _full_modality_runs(data.runs)
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
    return _Table(
        "table5_timing",
        f"Table 5 — training and test time (corpus: {_corpus_label(data)}; protocol: {data.protocol})",
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


def _table_paper(data: ReportData) -> _Table:
    paper_acc = paper.paper_rmlstm_accuracy(data.corpus)
    headers = ["Source", "Method", "Corpus", "Protocol", "Accuracy (%)", "Ours − paper RMLSTM (pp)"]
    rows, csv_rows = [], []
    protocols = [data.main()] + ([data.second] if data.second else [])
    for pr in protocols:
        for r in _by_name(_full_modality_runs(pr.runs), data.primary_model):
            s = summarise_folds(r.fold_metrics)["accuracy"]
            diff = s["mean"] * 100 - paper_acc if paper_acc is not None else None
            rows.append(
                [
                    "this run (mmfer)",
                    f"{r.model} [{r.modality_text}]",
                    _corpus_label(data),
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
    return _Table(
        "table6_paper_vs_ours",
        f"Table 6 — our accuracy beside the paper's (corpus: {_corpus_label(data)}; protocol: {data.protocol}"
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


def _table_significance(data: ReportData) -> _Table:
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
                "+".join(_sorted_modalities(s.modalities)),
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
    return _Table(
        "significance",
        f"Significance tests (corpus: {_corpus_label(data)}; protocol: {data.protocol}"
        + (f" and {data.second.protocol}" if data.second else "")
        + ")",
        headers,
        rows,
        list(_SIG_FIELDS),
        csv_rows,
        notes,
    )


def _per_fold(data: ReportData) -> tuple[_Table, _Table]:
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
    csv_table = _Table("per_fold", "per fold", fields, [], fields, csv_rows)
    md_table = _Table(
        None,
        f"Accuracy (%) per fold (corpus: {_corpus_label(data)}; protocol: {data.protocol}"
        + (f" and {data.second.protocol}" if data.second else "")
        + ")",
        ["Protocol", "Model", "Modalities", *(f"Fold {i + 1}" for i in range(k_max))],
        md_rows,
        [],
        [],
    )
    return csv_table, md_table


def _table_protocols(data: ReportData) -> _Table | None:
    if data.second is None:
        return None
    main, second = data.main(), data.second
    main_ind, _ = _resolve_independent(main)
    second_ind, _ = _resolve_independent(second)
    # Inflation = speaker-dependent minus speaker-independent accuracy, whichever is the main protocol.
    sign = -1.0 if (main_ind is False and second_ind is True) else 1.0
    diff_name = "Inflation (pp)" if main_ind != second_ind else "Difference (pp)"
    other = {(r.model, frozenset(r.modalities)): r for r in second.runs}
    rows, csv_rows = [], []
    for r in sorted(main.runs, key=lambda r: (r.model, _modality_key(r.modalities))):
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
    return _Table(
        "protocol_comparison",
        f"Protocol comparison — accuracy (%) under {main.protocol} vs {second.protocol} "
        f"(corpus: {_corpus_label(data)})",
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


# --------------------------------------------------------------------------- leakage


def audit_findings(pr: ProtocolResults) -> tuple[list[str], list[str]]:
    """Leaks and informational lines of one protocol's leakage audit.

    Returns
    -------
    tuple[list[str], list[str]]
        ``(leaks, info)``; every leak string starts with ``"LEAK"``.
    """
    independent, info = _resolve_independent(pr)
    leaks: list[str] = []
    audit = pr.leakage
    if audit is None:
        return [], [
            *info,
            f"No leakage audit supplied for {pr.protocol}: train/test separation is unverified.",
        ]
    overlap = [int(x) for x in audit.speaker_overlap]
    bad = [(i + 1, n) for i, n in enumerate(overlap) if n > 0]
    if bad and independent:
        where = ", ".join(f"fold {i}: {n}" for i, n in bad)
        leaks.append(
            f"LEAK: speakers present in both train and test under the speaker-independent protocol "
            f"{pr.protocol!r} ({where})"
        )
    elif bad:
        info.append(
            f"Speakers shared between train and test in {len(bad)}/{len(overlap)} folds "
            f"(expected: {pr.protocol} is speaker-dependent)."
        )
    else:
        info.append(f"Speaker overlap between train and test: 0 in all {len(overlap)} folds.")
    seq_bad = [(i + 1, n) for i, n in enumerate(audit.sequence_overlap) if n > 0]
    if seq_bad:
        where = ", ".join(f"fold {i}: {n}" for i, n in seq_bad)
        leaks.append(f"LEAK: recording sequences with rows in both train and test ({where})")
    elif audit.sequence_overlap:
        info.append(f"Recording sequences split between train and test: 0 in all {len(overlap)} folds.")
    for comp in audit.components:
        if comp.leaked:
            leaks.append(
                f"LEAK: {comp.component} was fitted on {comp.test_rows_seen} test row(s) of its own fold"
            )
        elif comp.fits == 0:
            info.append(f"{comp.component}: {comp.note or 'not fitted'}.")
        else:
            info.append(
                f"{comp.component}: fitted {comp.fits} times on {comp.rows_fitted} rows in all, "
                "0 of them test rows of the same fold (counted from the recorded ids)."
            )
    if audit.duplicate_clips_across_splits > 0:
        leaks.append(
            f"LEAK: {audit.duplicate_clips_across_splits} clip(s) with identical content in both train "
            "and test splits"
        )
    else:
        info.append("Identical clips (content hash) across train/test: 0.")
    info.extend(audit.notes)
    return leaks, info


# --------------------------------------------------------------------------- figures


def _render(fig: Figure) -> bytes:
    FigureCanvasAgg(fig)  # Agg canvas explicitly: no pyplot, no global backend state
    buf = io.BytesIO()
    # No "Software" tag: keeps the PNG free of the matplotlib URL and byte-stable across versions.
    fig.savefig(buf, format="png", dpi=_FIG_DPI, bbox_inches="tight", metadata={"Software": None})
    return buf.getvalue()


def _wrap(title: str, width: int = 70) -> str:
    return "\n".join(textwrap.wrap(title, width))


def _fig_confusion(r: RunResult, data: ReportData) -> _Figure:
    c = len(r.labels)
    cm = np.zeros((c, c), dtype=np.float64)  # (true, pred)
    np.add.at(cm, (np.asarray(r.y_true, dtype=np.int64), np.asarray(r.y_pred, dtype=np.int64)), 1.0)
    rows = cm.sum(axis=1, keepdims=True)  # (C, 1)
    norm = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)  # empty classes stay 0, no warning
    size = max(4.0, 0.55 * c + 2.5)
    fig = Figure(figsize=(size + 1.0, size))
    ax = fig.add_subplot()
    im = ax.imshow(norm, vmin=0.0, vmax=1.0, cmap="Blues")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="fraction of true class")
    ax.set_xticks(range(c), r.labels, rotation=45, ha="right")
    ax.set_yticks(range(c), r.labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(c):
        for j in range(c):
            ax.text(
                j,
                i,
                f"{norm[i, j] * 100:.0f}",
                ha="center",
                va="center",
                fontsize=8,
                color="white" if norm[i, j] > 0.5 else "black",
            )
    title = (
        f"Confusion (row-normalised %, pooled over folds): {r.name} — corpus {_corpus_label(data)} — "
        f"protocol: {data.protocol}"
    )
    ax.set_title(_wrap(title, 60), fontsize=9)
    return _Figure(f"confusion_{_slug(r.model)}_{_slug(r.modality_text)}.png", title, _render(fig))


def _fig_fold_accuracy(runs: Sequence[RunResult], data: ReportData) -> _Figure:
    k = max(len(r.fold_metrics) for r in runs)
    width = 0.8 / len(runs)
    # Capped width: a 24-speaker LOSO must still fit a page; labels rotate instead.
    fig = Figure(figsize=(min(16.0, max(6.0, (0.25 * len(runs) + 0.3) * k + 2)), 4.0))
    ax = fig.add_subplot()
    for j, r in enumerate(runs):
        acc = [m["accuracy"] * 100 for m in r.fold_metrics]  # (k,)
        x = np.arange(len(acc)) + (j - (len(runs) - 1) / 2) * width
        ax.bar(x, acc, width=width, label=r.model)
    ax.set_xticks(range(k), [f"fold {i + 1}" for i in range(k)], rotation=45 if k > 8 else 0)
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # outside: never hides bars or ticks
    title = f"Per-fold accuracy (all modalities) — corpus {_corpus_label(data)} — protocol: {data.protocol}"
    ax.set_title(_wrap(title, 80), fontsize=9)
    return _Figure("fold_accuracy.png", title, _render(fig))


def _fig_training(r: RunResult, data: ReportData) -> _Figure | None:
    if not any(r.history):
        return None
    fig = Figure(figsize=(7.0, 4.0))
    ax = fig.add_subplot()
    per_fold_legend = len(r.history) <= _MAX_LEGEND_FOLDS
    for i, hist in enumerate(r.history):
        col = f"C{i % 10}"
        epochs = [h.get("epoch", e + 1) for e, h in enumerate(hist)]
        ax.plot(
            epochs,
            [h.get("train_loss", math.nan) for h in hist],
            color=col,
            label=f"fold {i + 1} train" if per_fold_legend else None,
        )
        if any("val_loss" in h for h in hist):
            ax.plot(
                epochs,
                [h.get("val_loss", math.nan) for h in hist],
                color=col,
                linestyle="--",
                label=f"fold {i + 1} val" if per_fold_legend else None,
            )
    if not per_fold_legend:  # too many folds to name: explain the line styles only
        ax.plot([], [], color="grey", label=f"train ({len(r.history)} folds)")
        ax.plot([], [], color="grey", linestyle="--", label="validation")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.legend(fontsize=7, ncols=2)
    title = (
        f"Training curves, {r.name} (solid train, dashed validation) — corpus {_corpus_label(data)} — "
        f"protocol: {data.protocol}"
    )
    ax.set_title(_wrap(title, 80), fontsize=9)
    return _Figure(f"training_curves_{_slug(r.model)}.png", title, _render(fig))


# --------------------------------------------------------------------------- rendering


def _csv_text(t: _Table) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=t.csv_fields, lineterminator="\n", extrasaction="raise")
    w.writeheader()
    for row in t.csv_rows:
        w.writerow({k: ("" if v is None else v) for k, v in row.items()})
    return buf.getvalue()


def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _to_markdown(blocks: list[Block]) -> str:
    out: list[str] = []
    for kind, payload in blocks:
        if kind == "h1":
            out.append(f"# {payload}\n")
        elif kind == "h2":
            out.append(f"## {payload}\n")
        elif kind == "p":
            out.append(f"{payload}\n")
        elif kind == "ul":
            out.append("\n".join(f"- {_md_cell(x)}" for x in payload) + "\n")
        elif kind in ("banner-warn", "banner-leak"):
            out.append(f"> **⚠ {payload}**\n")
        elif kind == "table":
            t: _Table = payload
            out.append(f"### {_md_cell(t.title)}\n")
            if t.rows:
                out.append("| " + " | ".join(_md_cell(h) for h in t.headers) + " |")
                out.append("|" + "|".join("---" for _ in t.headers) + "|")
                out.extend("| " + " | ".join(_md_cell(c) for c in row) + " |" for row in t.rows)
                out.append("")
            else:
                out.append("_(no rows)_\n")
            out.extend(f"_{_md_cell(n)}_\n" for n in t.notes)
        elif kind == "figure":
            f: _Figure = payload
            # Unescaped brackets would end the alt text early.
            alt = _md_cell(f.caption).replace("[", "\\[").replace("]", "\\]")
            out.append(f"![{alt}]({f.filename})\n\n_{_md_cell(f.caption)}_\n")
    return "\n".join(out)


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1200px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.45}
h1{border-bottom:2px solid #444}h2{margin-top:2em;border-bottom:1px solid #bbb}h3{font-size:1.02em}
table{border-collapse:collapse;margin:.5em 0 1em;font-size:.88em}
th,td{border:1px solid #bbb;padding:.25em .55em;text-align:right}th{background:#eee}
td:first-child,th:first-child{text-align:left}
.banner{padding:.8em 1em;margin:1em 0;font-weight:bold;font-size:1.1em;border-radius:4px}
.warn{background:#fff3cd;border:2px solid #c99a00}
.leak{background:#f8d7da;border:3px solid #b00020;color:#7a0010}
.note{font-style:italic;color:#555;font-size:.9em;margin:.2em 0}
figure{margin:1em 0}figcaption{font-size:.88em;color:#444}img{max-width:100%}
"""


def _to_html(blocks: list[Block], title: str) -> str:
    e = html.escape
    out = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f"<title>{e(title)}</title>",
        f"<style>{_CSS}</style>",
        "</head>",
        "<body>",
    ]
    for kind, payload in blocks:
        if kind == "h1":
            out.append(f"<h1>{e(payload)}</h1>")
        elif kind == "h2":
            out.append(f"<h2>{e(payload)}</h2>")
        elif kind == "p":
            out.append(f"<p>{e(payload)}</p>")
        elif kind == "ul":
            out.append("<ul>" + "".join(f"<li>{e(x)}</li>" for x in payload) + "</ul>")
        elif kind == "banner-warn":
            out.append(f'<div class="banner warn">⚠ {e(payload)}</div>')
        elif kind == "banner-leak":
            out.append(f'<div class="banner leak">⚠ {e(payload)}</div>')
        elif kind == "table":
            t: _Table = payload
            out.append(f"<h3>{e(t.title)}</h3>")
            if t.rows:
                out.append(
                    "<table><caption hidden>"
                    + e(t.title)
                    + "</caption><thead><tr>"
                    + "".join(f"<th>{e(h)}</th>" for h in t.headers)
                    + "</tr></thead><tbody>"
                )
                out.extend("<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>" for row in t.rows)
                out.append("</tbody></table>")
            else:
                out.append('<p class="note">(no rows)</p>')
            out.extend(f'<p class="note">{e(n)}</p>' for n in t.notes)
        elif kind == "figure":
            f: _Figure = payload
            b64 = base64.b64encode(f.png).decode("ascii")
            out.append(
                f'<figure><img src="data:image/png;base64,{b64}" alt="{e(f.caption)}">'
                f"<figcaption>{e(f.caption)}</figcaption></figure>"
            )
    out += ["</body>", "</html>", ""]
    return "\n".join(out)


# --------------------------------------------------------------------------- entry point


def _validate(data: ReportData) -> None:
    protocols = [data.main()] + ([data.second] if data.second else [])
    if not data.runs:
        raise DataError(None, "ReportData.runs is empty: nothing to report")
    for pr in protocols:
        for r in pr.runs:
            where = f"run {r.name} ({pr.protocol})"
            if not r.fold_metrics:
                raise DataError(None, f"{where}: no fold metrics")
            if len(r.y_true) != len(r.y_pred):
                raise DataError(None, f"{where}: y_true has {len(r.y_true)} samples, y_pred {len(r.y_pred)}")
            if not r.labels:
                raise DataError(None, f"{where}: no class labels")
            c = len(r.labels)
            bad = [v for v in (*r.y_true, *r.y_pred) if not 0 <= int(v) < c]
            if bad:
                raise DataError(None, f"{where}: class index {bad[0]} outside 0..{c - 1} ({c} labels)")
            if r.train_seconds and len(r.train_seconds) != len(r.fold_metrics):
                raise DataError(
                    None, f"{where}: {len(r.train_seconds)} training times for {len(r.fold_metrics)} folds"
                )
            for i, m in enumerate(r.fold_metrics):
                if "accuracy" not in m or "macro" not in m or "mcc_multiclass" not in m:
                    raise DataError(
                        None, f"{where}: fold {i + 1} metrics are not a classification_metrics dict"
                    )


def write_report(results: ReportData, out_dir: str | Path) -> dict[str, Path]:
    """Write report.md, report.html, the table CSVs and the PNG plots into ``out_dir``.

    Parameters
    ----------
    results
        What to report (see :class:`ReportData`).
    out_dir
        Output folder (created if missing). Existing files of the same name are
        replaced atomically.

    Returns
    -------
    dict[str, Path]
        File name -> path of every file written: ``report.md``, ``report.html``,
        ``table1_modalities.csv``, ``table3_models.csv``, ``table5_timing.csv``,
        ``table6_paper_vs_ours.csv``, ``significance.csv``, ``per_fold.csv``,
        ``protocol_comparison.csv`` (with a second protocol), ``confusion_*.png``,
        ``fold_accuracy.png`` and ``training_curves_<model>.png`` (when the
        primary model has a training history).

    Raises
    ------
    DataError
        No runs, or a run whose predictions, labels, timings or metrics are inconsistent.
    """
    data = results
    _validate(data)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}

    # ---- leakage first: it decides the banners at the top
    protocols = [data.main()] + ([data.second] if data.second else [])
    leaks: list[str] = []
    audit_lines: list[tuple[str, list[str], list[str]]] = []
    for pr in protocols:
        lk, info = audit_findings(pr)
        leaks += lk
        audit_lines.append((pr.protocol, lk, info))

    # ---- tables and figures
    t1, t3, t5, t6 = _table_modalities(data), _table_models(data), _table_timing(data), _table_paper(data)
    tsig = _table_significance(data)
    per_fold_csv, per_fold_md = _per_fold(data)
    tproto = _table_protocols(data)
    full_runs = _full_modality_runs(data.runs)
    figures = [_fig_confusion(r, data) for r in full_runs]
    figures.append(_fig_fold_accuracy(full_runs, data))
    primary_full = _by_name(full_runs, data.primary_model)
    curves = _fig_training(primary_full[0], data) if primary_full else None

    # ---- document
    blocks: list[Block] = [("h1", f"{data.title} — {_corpus_label(data)}")]
    if data.is_synthetic:
        blocks.append(("banner-warn", SYNTHETIC_WARNING + "."))
    for lk in leaks:
        blocks.append(("banner-leak", lk + " — the affected numbers are not trustworthy."))
    blocks.append(
        (
            "ul",
            [
                f"Corpus: {_corpus_label(data)}",
                f"Protocol: {data.protocol}"
                + (f"; second protocol: {data.second.protocol}" if data.second else ""),
                f"Models: {', '.join(dict.fromkeys(r.model for r in data.runs))}",
                f"Classes: {', '.join(data.runs[0].labels)}",
                *data.notes,
            ],
        )
    )
    blocks += [("h2", "Results"), ("table", t1), ("table", t3)]
    t_abl, t_sel, t_fe = _table_ablation(data), _table_selection(data), _table_front_ends(data)
    if t_abl is not None:
        blocks.append(("table", t_abl))
    if t_fe is not None:
        blocks.append(("table", t_fe))
    if tproto is not None:
        blocks.append(("table", tproto))
    if t_sel is not None:
        blocks.append(("table", t_sel))
    blocks += [
        ("table", t5),
        ("h2", "Comparison with the paper"),
        ("table", t6),
        ("h2", "Significance"),
        ("table", tsig),
        ("h2", "Per fold"),
        ("table", per_fold_md),
        ("h2", "Figures"),
    ]
    blocks += [("figure", f) for f in figures]
    if curves is not None:
        blocks.append(("figure", curves))
    else:
        blocks.append(("p", f"No training history for {data.primary_model}: no training-curve plot."))
    blocks.append(("h2", "Leakage audit"))
    for proto, lk, info in audit_lines:
        blocks.append(("p", f"Protocol: {proto}"))
        blocks.append(("ul", lk + info))
    if data.is_synthetic:
        blocks.append(("banner-warn", SYNTHETIC_WARNING + "."))

    # ---- write (PNGs and CSVs first, so report.md never points to a missing file)
    for f in [*figures, *([curves] if curves else [])]:
        written[f.filename] = atomic_write_bytes(out / f.filename, f.png)
    extra_tables = [t for t in (tproto, t_abl, t_sel, t_fe) if t is not None]
    for t in (t1, t3, t5, t6, tsig, per_fold_csv, *extra_tables):
        if t.stem is None:  # pragma: no cover - every table listed here has a CSV stem
            continue
        written[f"{t.stem}.csv"] = atomic_write_text(out / f"{t.stem}.csv", _csv_text(t))
    written["report.md"] = atomic_write_text(out / "report.md", _to_markdown(blocks))
    written["report.html"] = atomic_write_text(
        out / "report.html", _to_html(blocks, f"{data.title} — {data.corpus}")
    )
    return written
