"""What was masked: per-sample issues of an extraction, as a table, counts and one log line.

Reads :class:`~mmfer.features.units.SampleFeatures` only; used by the orchestration
(:func:`mmfer.features.extract.extract_features` logs :func:`log_masked`) and by
reports (:mod:`mmfer.experiment`, :mod:`mmfer.pipeline`).
"""

from __future__ import annotations

import logging

import pandas as pd

from mmfer.config import MODALITIES
from mmfer.features.units import SampleFeatures

log = logging.getLogger(__name__)

__all__ = ["log_masked", "masked_samples", "summarise_issues", "unusable_samples"]


def masked_samples(features: dict[str, SampleFeatures]) -> pd.DataFrame:
    """Every masked (sample, modality) with its reason, for summaries and the report.

    A sample is ``unusable`` when no modality is left at all (every modality it
    had failed: an all-silent clip of an audio-only corpus, an LFS pointer, an
    unreadable file); such a sample carries no evidence, so how it is scored
    (excluded, or counted as an error) must be stated wherever results are.

    Parameters
    ----------
    features
        Output of :func:`extract_features`, keyed by sample id.

    Returns
    -------
    pandas.DataFrame
        Shape ``(n_masked_units, 4)``: columns ``id``, ``modality``, ``reason``
        (the message, naming the file), ``unusable`` (bool: the sample has no
        modality left); sorted by id then modality. Empty (same columns) if
        nothing was masked.
    """
    rows = []
    for sid, sf in features.items():
        left = sf.face is not None or sf.audio is not None or sf.text is not None
        for modality, reason in sorted(sf.issues.items()):
            rows.append({"id": sid, "modality": modality, "reason": reason, "unusable": not left})
    df = pd.DataFrame(rows, columns=["id", "modality", "reason", "unusable"])
    return df.sort_values(["id", "modality"], kind="stable").reset_index(drop=True)


def unusable_samples(features: dict[str, SampleFeatures]) -> list[str]:
    """Ids of samples with at least one masked modality and none left (see :func:`masked_samples`)."""
    masked = masked_samples(features)
    return sorted(set(masked.loc[masked["unusable"], "id"]))


def _short_reason(reason: str) -> str:
    """The problem part of a ``"<path>: <problem>"`` message, for grouping."""
    problem = reason.split(": ", 1)[1] if ": " in reason else reason
    return problem.split(" (")[0][:60]


def log_masked(results: dict[str, SampleFeatures]) -> None:
    """One warning line: how many units were masked, why, and which samples have nothing left.

    Parameters
    ----------
    results
        Output of :func:`~mmfer.features.extract.extract_features`, keyed by sample id.
    """
    masked = masked_samples(results)
    if masked.empty:
        return
    why = masked.groupby(masked["modality"] + ": " + masked["reason"].map(_short_reason)).size()
    reasons = ", ".join(f"{k} x{n}" for k, n in why.sort_values(ascending=False).items())
    unusable = unusable_samples(results)
    shown = ", ".join(unusable[:10]) + (", ..." if len(unusable) > 10 else "")
    log.warning(
        "features: %d modality(ies) of %d sample(s) masked (%s); %d sample(s) have no modality left%s",
        len(masked),
        masked["id"].nunique(),
        reasons,
        len(unusable),
        f": {shown}" if unusable else "",
    )


def summarise_issues(features: dict[str, SampleFeatures]) -> dict[str, int]:
    """Number of samples whose modality was masked, per modality (plus ``samples`` affected).

    Returns
    -------
    dict[str, int]
        ``{"face": n, "audio": n, "text": n, "samples": n_with_any_issue}``.
    """
    counts = dict.fromkeys(MODALITIES, 0)
    n_samples = 0
    for sf in features.values():
        if sf.issues:
            n_samples += 1
        for m in sf.issues:
            counts[m] = counts.get(m, 0) + 1
    counts["samples"] = n_samples
    return counts
