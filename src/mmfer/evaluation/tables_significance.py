"""The significance table: speaker-level (primary, Holm-adjusted) and fold/clip-level comparisons."""

from __future__ import annotations

from typing import Any

from mmfer.evaluation import paper
from mmfer.evaluation.metrics import HEADLINE_METRICS
from mmfer.evaluation.results import ReportData, SignificanceRow, sorted_modalities
from mmfer.evaluation.significance import holm
from mmfer.evaluation.table_base import Table, fmt_p, protocols_text

__all__ = ["SIG_FIELDS", "SIG_HEADERS", "table_significance"]

#: CSV columns of significance.csv, one row per comparison.
SIG_FIELDS: tuple[str, ...] = (
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

#: Column headings of the significance table in report.md/html.
SIG_HEADERS: tuple[str, ...] = (
    "Model A",
    "Model B",
    "Modalities",
    "Protocol",
    "Metric",
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
)

#: Display names of the compared metrics (fold-metric keys).
_METRIC_NAMES: dict[str, str] = {**HEADLINE_METRICS, "macro.sensitivity": "UAR (macro sensitivity)"}

_NOTES = (
    "Primary test: the speaker is the unit. Each speaker's pooled test score (accuracy, or UAR over the "
    "classes that speaker has) under A and B forms one pair (Wilcoxon signed-rank over speakers); the "
    "interval resamples whole speakers (cluster bootstrap, 2000 draws). Holm adjusts the speaker-level p "
    "over all rows of the same metric. For UAR the mean over speakers (of per-speaker UARs) and the "
    "interval (of the pooled UAR difference) are different quantities and need not agree.",
    "Secondary, optimistic: fold-level Wilcoxon (few folds, overlapping training sets) and McNemar "
    "on pooled clips (b = A right and B wrong, c = A wrong and B right), which treats clips of one "
    "speaker as independent.",
)


def _cells(s: SignificanceRow, adj: float) -> list[str]:
    """The report.md/html cells of one comparison (``adj``: its Holm-adjusted primary p)."""
    has_speakers = s.n_speakers is not None
    ci = s.speaker_diff_ci
    speaker_p = s.speaker_wilcoxon_p
    return [
        s.model_a,
        s.model_b,
        "+".join(sorted_modalities(s.modalities)),
        s.protocol,
        _METRIC_NAMES.get(s.metric, s.metric),
        str(s.n_speakers) if has_speakers else "n/a",
        f"{s.speaker_mean_diff * 100:.2f}" if s.speaker_mean_diff is not None else "n/a",
        f"[{ci[0] * 100:.1f}, {ci[1] * 100:.1f}]" if ci else "n/a",
        f"{s.speakers_a_better} / {s.speakers_b_better}" if has_speakers else "n/a",
        f"{fmt_p(speaker_p)} ({s.speaker_wilcoxon_method})" if speaker_p is not None else "n/a",
        fmt_p(adj),
        str(s.n_folds),
        f"{fmt_p(s.wilcoxon_p)} ({s.wilcoxon_method})",
        f"{s.mcnemar_b} / {s.mcnemar_c}" if s.mcnemar_b is not None else "n/a",
        fmt_p(s.mcnemar_exact_p),
        "; ".join(s.notes),
    ]


def _csv_row(s: SignificanceRow, adj: float) -> dict[str, Any]:
    """The significance.csv row of one comparison (differences in percentage points)."""
    ci = s.speaker_diff_ci
    return {
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


def _notes(data: ReportData, sig: list[SignificanceRow]) -> list[str]:
    """How to read the table, the paper's stated p-value, and an empty-table remark."""
    notes = list(_NOTES)
    if data.corpus.lower() in paper.PAPER_P_VALUES:
        notes.append(
            f"The paper states p = {paper.PAPER_P_VALUES[data.corpus.lower()]} for this corpus "
            "without naming the test or the comparison."
        )
    if not sig:
        notes.append("No significance tests supplied.")
    return notes


def _holm_by_metric(sig: list[SignificanceRow]) -> list[float]:
    """Holm-adjusted primary p of every row, adjusted within the rows of the same metric.

    The primary p is the speaker-level one; the fold-level one where no speakers were recorded.
    """
    primary = [s.speaker_wilcoxon_p if s.speaker_wilcoxon_p is not None else s.wilcoxon_p for s in sig]
    adjusted = [0.0] * len(sig)
    for metric in dict.fromkeys(s.metric for s in sig):
        idx = [i for i, s in enumerate(sig) if s.metric == metric]
        for i, p in zip(idx, holm([primary[i] for i in idx]), strict=True):
            adjusted[i] = p
    return adjusted


def table_significance(data: ReportData) -> Table:
    """Speaker-level (primary, Holm-adjusted) and fold/clip-level (secondary) comparisons, per metric."""
    given = list(data.significance) + (list(data.second.significance) if data.second else [])
    sig = [row for s in given for row in s.with_other_metrics()]  # each comparison: accuracy, then UAR
    pairs = list(zip(sig, _holm_by_metric(sig), strict=True))
    return Table(
        "significance",
        f"Significance tests: accuracy and UAR ({protocols_text(data)})",
        list(SIG_HEADERS),
        [_cells(s, adj) for s, adj in pairs],
        list(SIG_FIELDS),
        [_csv_row(s, adj) for s, adj in pairs],
        _notes(data, sig),
    )
