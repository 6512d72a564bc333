"""Leakage audit from instrumentation: what each fitted component was actually fitted on.

Every component fitted inside the cross-validation loop (the Fuser's TF-IDF
and standardisers, the estimator, and the same pieces inside the nested
selection) records the ids of the rows it saw (:class:`FitRecord`). The audit
intersects those ids with each fold's test ids, and counts speakers, recording
sequences and identical files shared between train and test. Results are
typed (:class:`ComponentFit`), not prose.

Label-free statistics taken from the rows themselves (per-speaker
normalisation) are fitted components too: their records carry ``label_free``,
and when they used test rows of their own fold (a test speaker normalised with
its own scored clips) the audit counts that as transductive use.

The policy that turns an audit into report lines lives here too
(:func:`audit_findings`): what counts as a ``LEAK`` depends on whether the
protocol keeps speakers apart, declared by the caller or recorded in the audit
when the split was made (:attr:`LeakageAudit.speaker_independent`, from
:func:`mmfer.data.splits.is_speaker_independent`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

__all__ = [
    "AUGMENTED_SEP",
    "ComponentFit",
    "FitRecord",
    "LeakageAudit",
    "audit_findings",
    "audit_folds",
    "merge_audits",
    "resolve_speaker_independent",
    "source_id",
]

#: Id of an augmented training row: ``<sample id>#aug<k>`` (:mod:`mmfer.augmented_rows`).
AUGMENTED_SEP = "#aug"


def source_id(row_id: str) -> str:
    """The sample a fitted row came from: ``"a#aug2" -> "a"``; a real row's id is its own.

    The audit maps augmented rows to their sample, so a copy of a test clip would count as
    that test row seen.
    """
    return row_id.split(AUGMENTED_SEP, 1)[0]


@dataclass(frozen=True)
class FitRecord:
    """One fitted component of one outer fold and the row ids it was fitted on.

    Attributes
    ----------
    fold
        Outer fold index (0-based).
    component
        What was fitted, e.g. ``"fuser"``, ``"estimator"``, ``"inner fuser"``.
    ids
        Ids of the rows it saw while fitting.
    label_free
        A label-free statistic of the rows themselves (per-speaker normalisation):
        test rows among ``ids`` mean transductive use rather than fitting on labels.
    """

    fold: int
    component: str
    ids: frozenset[str]
    label_free: bool = False


@dataclass
class ComponentFit:
    """Audit of one component over all folds.

    Attributes
    ----------
    component
        Name (as in :class:`FitRecord`), or a frozen/stateless part such as a
        pretrained encoder.
    fits
        How many times it was fitted (0 = frozen or stateless).
    rows_fitted
        Total rows seen over those fits.
    test_rows_seen
        Test rows of the same outer fold among them (must be 0).
    note
        For frozen parts: what they are (e.g. "pretrained, frozen").
    label_free
        Label-free statistics (per-speaker normalisation): test rows seen are
        transductive use (see :attr:`transductive`).
    """

    component: str
    fits: int
    rows_fitted: int
    test_rows_seen: int
    note: str = ""
    label_free: bool = False

    @property
    def leaked(self) -> bool:
        """Test rows of the same fold went into it (labels or not)."""
        return self.test_rows_seen > 0

    @property
    def transductive(self) -> bool:
        """Label-free statistics computed from test rows of the same fold."""
        return self.leaked and self.label_free


@dataclass
class LeakageAudit:
    """What was counted about train/test separation, per fold.

    Attributes
    ----------
    speaker_overlap
        Per fold, speakers present in both train and test (0 required by a
        speaker-independent protocol).
    components
        One :class:`ComponentFit` per fitted (or frozen) component.
    duplicate_clips_across_splits
        Test samples whose file content hash also occurs in the training split.
    sequence_overlap
        Per fold, recording sequences with rows on both sides (empty when the
        corpus has no sequence ids).
    notes
        Free-text remarks, shown verbatim.
    speaker_independent
        Whether the splitter keeps every speaker on one side of each fold, recorded
        when the split was made (None = not recorded, e.g. an older saved audit).
    """

    speaker_overlap: list[int]
    components: list[ComponentFit] = field(default_factory=list)
    duplicate_clips_across_splits: int = 0
    sequence_overlap: list[int] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    speaker_independent: bool | None = None

    @property
    def leaking_components(self) -> list[ComponentFit]:
        return [c for c in self.components if c.leaked]


def audit_folds(
    table: pd.DataFrame,
    splits: Sequence[tuple[np.ndarray, np.ndarray]],
    records: Iterable[FitRecord],
    *,
    hashes: Sequence[str | None] | None = None,
    frozen: Sequence[tuple[str, str]] = (),
    speaker_independent: bool | None = None,
) -> LeakageAudit:
    """Count, per fold, shared speakers / sequences / identical files and test rows fitted on.

    Parameters
    ----------
    table
        Sample table (``id``, ``speaker``, optional ``sequence``).
    splits
        Outer ``(train_idx, test_idx)`` positional indices per fold.
    records
        What each component was fitted on (:class:`FitRecord`), any fold.
    hashes
        Per-row content hash of the media file (``None`` = unknown) for the
        duplicate-clip count; ``None`` skips that check (said in ``notes``).
    frozen
        ``(component, note)`` of parts that are not fitted at all (pretrained
        encoders, stateless MFCC), listed for completeness.
    speaker_independent
        Whether the splitter that made ``splits`` keeps speakers apart, kept in the
        audit for :func:`audit_findings`.
    """
    from mmfer.data.splits import sequence_groups

    spk = table["speaker"].astype(str).to_numpy()
    ids = table["id"].astype(str).to_numpy()
    seqs = sequence_groups(table)
    test_ids = [set(ids[te]) for _, te in splits]
    overlap = [len(set(spk[tr]) & set(spk[te])) for tr, te in splits]
    seq_overlap = [] if seqs is None else [len(set(seqs[tr]) & set(seqs[te])) for tr, te in splits]
    dups = 0
    if hashes is not None:
        for tr, te in splits:
            tr_h = {hashes[i] for i in tr if hashes[i]}
            dups += sum(1 for i in te if hashes[i] and hashes[i] in tr_h)
    by_comp: dict[str, ComponentFit] = {}
    for r in records:
        c = by_comp.setdefault(r.component, ComponentFit(r.component, 0, 0, 0, label_free=r.label_free))
        c.fits += 1
        c.rows_fitted += len(r.ids)  # augmented rows included
        c.test_rows_seen += len({source_id(i) for i in r.ids} & test_ids[r.fold])
    comps = list(by_comp.values()) + [ComponentFit(name, 0, 0, 0, note) for name, note in frozen]
    return LeakageAudit(
        speaker_overlap=overlap,
        components=comps,
        duplicate_clips_across_splits=dups,
        sequence_overlap=seq_overlap,
        notes=[] if hashes is not None else ["duplicate-clip check skipped (no media hashes)"],
        speaker_independent=speaker_independent,
    )


def merge_audits(audits: Sequence[LeakageAudit]) -> LeakageAudit | None:
    """One audit for several runs over the same folds: fit counts summed per component,
    the worst per-fold overlaps kept."""
    if not audits:
        return None
    comps: dict[str, ComponentFit] = {}
    for a in audits:
        for c in a.components:
            m = comps.setdefault(c.component, ComponentFit(c.component, 0, 0, 0, c.note, c.label_free))
            m.fits += c.fits
            m.rows_fitted += c.rows_fitted
            m.test_rows_seen += c.test_rows_seen

    def worst(lists: list[list[int]]) -> list[int]:
        return [max(v) for v in zip(*lists, strict=True)] if lists and lists[0] else []

    return LeakageAudit(
        speaker_overlap=worst([a.speaker_overlap for a in audits]),
        components=list(comps.values()),
        duplicate_clips_across_splits=max(a.duplicate_clips_across_splits for a in audits),
        sequence_overlap=worst([a.sequence_overlap for a in audits]),
        notes=list(dict.fromkeys(n for a in audits for n in a.notes)),
        speaker_independent=flags.pop()
        if len(flags := {a.speaker_independent for a in audits}) == 1
        else None,
    )


# --------------------------------------------------------------------------- policy


def resolve_speaker_independent(
    protocol: str, declared: bool | None, audit: LeakageAudit | None = None
) -> tuple[bool, list[str]]:
    """Whether ``protocol`` keeps speakers apart: ``declared`` if given, else what the
    audit recorded when the split was made.

    Returns
    -------
    tuple[bool, list[str]]
        The answer and notes; when neither says, the protocol counts as
        speaker-independent (strict), with a note saying so.
    """
    if declared is not None:
        return declared, []
    if audit is not None and audit.speaker_independent is not None:
        return audit.speaker_independent, []
    # Unknown: be strict, so a mislabelled speaker-dependent run cannot pass as independent.
    return True, [
        f"protocol {protocol!r}: speaker independence neither declared nor recorded with the split; "
        "speaker overlap is treated as a leak"
    ]


def audit_findings(
    audit: LeakageAudit | None, protocol: str, speaker_independent: bool | None = None
) -> tuple[list[str], list[str]]:
    """Leaks and informational lines of one protocol's leakage audit.

    Parameters
    ----------
    audit
        The audit (None = not audited: said so, not a leak).
    protocol
        Protocol description, named in the lines.
    speaker_independent
        Whether the protocol keeps speakers apart; None = as recorded in the audit
        (:func:`resolve_speaker_independent`).

    Returns
    -------
    tuple[list[str], list[str]]
        ``(leaks, info)``; every leak string starts with ``"LEAK"``.
    """
    independent, info = resolve_speaker_independent(protocol, speaker_independent, audit)
    leaks: list[str] = []
    if audit is None:
        return [], [
            *info,
            f"No leakage audit supplied for {protocol}: train/test separation is unverified.",
        ]
    overlap = [int(x) for x in audit.speaker_overlap]
    bad = [(i + 1, n) for i, n in enumerate(overlap) if n > 0]
    if bad and independent:
        where = ", ".join(f"fold {i}: {n}" for i, n in bad)
        leaks.append(
            f"LEAK: speakers present in both train and test under the speaker-independent protocol "
            f"{protocol!r} ({where})"
        )
    elif bad:
        info.append(
            f"Speakers shared between train and test in {len(bad)}/{len(overlap)} folds "
            f"(expected: {protocol} is speaker-dependent)."
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
        if comp.transductive:
            leaks.append(
                f"LEAK (transductive, label-free): {comp.component} used {comp.test_rows_seen} scored test "
                "row(s) of its own fold (each test speaker normalised with its own scored clips)"
            )
        elif comp.leaked:
            leaks.append(
                f"LEAK: {comp.component} was fitted on {comp.test_rows_seen} test row(s) of its own fold"
            )
        elif comp.fits == 0:
            info.append(f"{comp.component}: {comp.note or 'not fitted'}.")
        elif comp.label_free:
            info.append(
                f"{comp.component}: label-free statistics computed {comp.fits} times from {comp.rows_fitted} "
                "rows in all, 0 of them scored test rows of the same fold (counted from the recorded ids)."
            )
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
