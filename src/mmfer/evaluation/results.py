"""Evaluation results: the plain data the report renders, and the paired comparison of two runs.

The lowest module of the report stack (``results <- tables, figures <- render <-
report``): the result dataclasses (:class:`RunResult`, :class:`SignificanceRow`,
:class:`ProtocolResults`, :class:`ReportData`), the helpers every layer shares
(modality ordering, metric lookup by dotted key, run selection, the corpus label)
and :func:`compare_runs`. It imports only metrics, significance tests and the
typed leakage audit; nothing here renders anything.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from mmfer.errors import DataError
from mmfer.evaluation.audit import LeakageAudit
from mmfer.evaluation.significance import mcnemar, paired_fold_tests, speaker_level_test

__all__ = [
    "MODALITY_ORDER",
    "SYNTHETIC_WARNING",
    "ConditionRun",
    "ProtocolResults",
    "ReportData",
    "RunResult",
    "SignificanceRow",
    "compare_runs",
    "corpus_label",
    "full_modality_runs",
    "metric_summary",
    "metric_value",
    "modality_key",
    "runs_of_model",
    "sorted_modalities",
]

#: Canonical modality order for sorting rows (mmfer calls the visual modality "face").
MODALITY_ORDER: tuple[str, ...] = ("face", "audio", "text")

SYNTHETIC_WARNING = "SYNTHETIC data — numbers say nothing about real-world performance"


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
        return "+".join(sorted_modalities(self.modalities))

    @property
    def name(self) -> str:
        """``model [modalities]``, unique within one protocol."""
        return f"{self.model} [{self.modality_text}]"


@dataclass
class SignificanceRow:
    """Paired comparison of model A against model B (same folds, same test samples).

    ``mean_diff`` is A - B of ``metric`` (a fraction); p-values are two-sided. The
    speaker-level fields compare per-speaker scores of the same metric (accuracy or
    UAR; None for other metrics). Build it with :func:`compare_runs`.
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
    #: Speaker-level comparison (the primary test): per-speaker pairs of ``metric``.
    n_speakers: int | None = None
    speaker_mean_diff: float | None = None
    speaker_wilcoxon_p: float | None = None
    speaker_wilcoxon_method: str = ""
    #: 95 % cluster-bootstrap interval (speakers resampled) of the pooled difference of ``metric``.
    speaker_diff_ci: tuple[float, float] | None = None
    speakers_a_better: int | None = None
    speakers_b_better: int | None = None
    notes: list[str] = field(default_factory=list)
    #: The same comparison on further metrics (e.g. UAR beside accuracy), one row each,
    #: their speaker-level tests on per-speaker scores of that metric.
    other_metrics: list[SignificanceRow] = field(default_factory=list)

    def with_other_metrics(self) -> list[SignificanceRow]:
        """This row, then its :attr:`other_metrics` rows."""
        return [self, *self.other_metrics]


@dataclass
class ProtocolResults:
    """All runs under one protocol (used for the optional second protocol)."""

    protocol: str
    runs: list[RunResult]
    significance: list[SignificanceRow] = field(default_factory=list)
    leakage: LeakageAudit | None = None
    #: None = as recorded in ``leakage`` when the split was made (:attr:`LeakageAudit.speaker_independent`).
    speaker_independent: bool | None = None


@dataclass
class ConditionRun:
    """One run under a speaker-normalisation condition: the condition, where its statistics come from."""

    condition: str
    source: str
    run: RunResult
    #: The config's own condition (the headline's, Table 3).
    headline: bool = False


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
    #: Runs under other speaker-normalisation conditions on the same folds (:mod:`mmfer.conditions`).
    norm_conditions: list[ConditionRun] = field(default_factory=list)
    #: The config's own ``fusion.speaker_norm`` condition (the headline's), named by that table.
    headline_norm: str = ""
    #: Perturbation-check rows (``model``, ``fold``, ``how``, ``verdict``, ``changed``), one per fold.
    verify: list[dict[str, Any]] = field(default_factory=list)

    #: ``eval.headline_metric``: ``weighted_f1`` adds a leading weighted-F1 column to the tables.
    headline_metric: str = "accuracy"

    @property
    def verify_failed(self) -> list[str]:
        """``<model> fold <k>: <parts>`` of every fold whose perturbation check changed something."""
        return [f"{v['model']} fold {v['fold']}: {v['changed']}" for v in self.verify if v["changed"]]

    def main(self) -> ProtocolResults:
        """The main protocol's results as a :class:`ProtocolResults`."""
        return ProtocolResults(
            self.protocol, self.runs, self.significance, self.leakage, self.speaker_independent
        )


# --------------------------------------------------------------------------- shared helpers


def sorted_modalities(mods: Sequence[str]) -> list[str]:
    """Modality names in :data:`MODALITY_ORDER` (unknown names last, alphabetically)."""
    return sorted(mods, key=lambda m: (MODALITY_ORDER.index(m) if m in MODALITY_ORDER else 99, m))


def modality_key(mods: Sequence[str]) -> tuple[int, list[int], list[str]]:
    """Sort key of a modality set: fewer modalities first, then canonical order."""
    ordered = sorted_modalities(mods)
    return (len(ordered), [MODALITY_ORDER.index(m) if m in MODALITY_ORDER else 99 for m in ordered], ordered)


def metric_summary(summary: dict[str, Any], key: str) -> dict[str, float]:
    """``{"mean", "std", "n"}`` under a dotted ``key`` of a :func:`summarise_folds` dict.

    A missing key gives NaN mean/std and ``n = 0`` (shown as "n/a"), not an error:
    a table column may name a metric some run did not compute.
    """
    node: Any = summary
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return {"mean": math.nan, "std": math.nan, "n": 0}
        node = node[part]
    return node


def metric_value(metrics: dict[str, Any], key: str) -> float:
    """The value under a dotted ``key`` of one fold's metric dict (``KeyError`` if absent)."""
    node: Any = metrics
    for part in key.split("."):
        node = node[part]
    return float(node)


def runs_of_model(runs: Sequence[RunResult], model: str) -> list[RunResult]:
    """The runs of ``model`` (case-insensitive), in their order."""
    return [r for r in runs if r.model.lower() == model.lower()]


def full_modality_runs(runs: Sequence[RunResult]) -> list[RunResult]:
    """Runs on the union of all modalities seen (the "all modalities" setting of Tables 3-4)."""
    if not runs:
        return []
    full = set().union(*(set(r.modalities) for r in runs))
    chosen = [r for r in runs if set(r.modalities) == full]
    if not chosen:  # no run used every modality: take the largest sets
        biggest = max(len(set(r.modalities)) for r in runs)
        chosen = [r for r in runs if len(set(r.modalities)) == biggest]
    return chosen


def corpus_label(data: ReportData) -> str:
    """Corpus name as every title shows it (``[SYNTHETIC]`` appended for generated data)."""
    return f"{data.corpus} [SYNTHETIC]" if data.is_synthetic else data.corpus


#: Fold-metric keys -> the metric the speaker-level test computes per speaker (UAR = macro sensitivity).
_SPEAKER_METRIC: dict[str, str] = {"accuracy": "accuracy", "uar": "uar", "macro.sensitivity": "uar"}


def compare_runs(
    a: RunResult, b: RunResult, metric: str = "accuracy", *, also: Sequence[str] = ("uar",)
) -> SignificanceRow:
    """Paired fold tests, McNemar and the speaker-level test of two runs on ``metric`` (and ``also``).

    Parameters
    ----------
    a, b
        Runs under the same protocol and folds.
    metric
        Dotted key into the fold metric dicts (``accuracy``, ``uar``, ``macro.sensitivity`` ...).
    also
        Further metrics compared the same way, kept in
        :attr:`SignificanceRow.other_metrics` (skipped when a fold dict lacks one,
        e.g. results computed before UAR was recorded).

    Returns
    -------
    SignificanceRow
        McNemar fields are None (with a note) when the pooled ``y_true`` (or
        ``sample_ids``, when both runs have them) differ, i.e. the samples cannot
        be paired. The speaker-level fields are None when the runs carry no
        speakers or the metric is neither accuracy nor UAR.

    Raises
    ------
    DataError
        Different fold counts or a missing ``metric`` key.
    """
    row = _compare_on(a, b, metric)
    for extra in also:
        if extra == metric:
            continue
        try:
            row.other_metrics.append(_compare_on(a, b, extra))
        except DataError:
            row.notes.append(f"{extra} not in the fold metrics: not compared")
    return row


def _compare_on(a: RunResult, b: RunResult, metric: str) -> SignificanceRow:
    """The comparison of two runs on one metric (see :func:`compare_runs`)."""
    if len(a.fold_metrics) != len(b.fold_metrics):
        raise DataError(None, f"{a.name} has {len(a.fold_metrics)} folds, {b.name} {len(b.fold_metrics)}")
    try:
        sa = [metric_value(m, metric) for m in a.fold_metrics]
        sb = [metric_value(m, metric) for m in b.fold_metrics]
    except (KeyError, TypeError):
        raise DataError(
            None, f"metric {metric!r} missing from the fold metrics of {a.name} or {b.name}"
        ) from None
    t = paired_fold_tests(sa, sb)
    row = SignificanceRow(
        model_a=a.model,
        model_b=b.model,
        modalities=tuple(sorted_modalities(a.modalities)),
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
        _speaker_test(row, a, b, metric)
    else:
        row.notes.append("pooled test samples differ in order or content: McNemar skipped")
    return row


def _speaker_test(row: SignificanceRow, a: RunResult, b: RunResult, metric: str) -> None:
    """Fill the speaker-level fields of ``row`` when both runs carry the same speakers."""
    if not (
        a.speakers and len(a.speakers) == len(a.y_true) and list(a.speakers) == list(b.speakers or a.speakers)
    ):
        return
    speaker_metric = _SPEAKER_METRIC.get(metric)
    if speaker_metric is None:
        row.notes.append(f"no speaker-level test for {metric} (only accuracy and UAR)")
        return
    sp = speaker_level_test(a.y_true, a.y_pred, b.y_pred, a.speakers, metric=speaker_metric)
    row.n_speakers, row.speaker_mean_diff = sp["n_speakers"], sp["mean_diff"]
    row.speaker_wilcoxon_p, row.speaker_wilcoxon_method = sp["wilcoxon_p"], sp["wilcoxon_method"]
    row.speaker_diff_ci = sp["diff_ci"]
    row.speakers_a_better, row.speakers_b_better = sp["a_better"], sp["b_better"]
