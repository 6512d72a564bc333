"""Where a test speaker's normalisation statistics come from: the ``speaker_norm`` conditions.

With per-speaker normalisation the Fuser z-normalises each speaker's face/audio
frames with that speaker's own mean/std. For training speakers these come from
their training rows. For a *test* speaker the evaluation has to say where they
come from, and only some answers are something a user can do:

``none``
    No per-speaker normalisation.
``enrol``
    ``enrol_k`` of the speaker's clips, drawn at random (seeded) without looking at
    their labels, give the statistics; those clips are excluded from scoring.
``neutral_enrol``
    ``enrol_k`` of the speaker's neutral (or calm) clips, what a new user can be
    asked to record; also excluded from scoring.
``transductive``
    All of the speaker's test clips (each scored clip helps normalise itself and the
    others): the old ``speaker_norm=true``, kept for comparison only.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from mmfer.config import FusionConfig
from mmfer.errors import ConfigError, DataError

if TYPE_CHECKING:
    import pandas as pd

    from mmfer.fusion.fuser import Fuser

__all__ = [
    "ENROL_CONDITIONS",
    "NEUTRAL_EMOTIONS",
    "NORM_CONDITIONS",
    "describe_condition",
    "enrolment_rows",
    "enrolment_statistics",
    "norm_condition",
]

log = logging.getLogger(__name__)

#: Every value of ``fusion.speaker_norm`` (besides the ``true``/``false`` aliases).
NORM_CONDITIONS: tuple[str, ...] = ("none", "enrol", "neutral_enrol", "transductive")
#: Conditions whose statistics come from enrolment clips excluded from scoring.
ENROL_CONDITIONS: tuple[str, ...] = ("enrol", "neutral_enrol")
#: Emotions a ``neutral_enrol`` clip may carry, in order of preference.
NEUTRAL_EMOTIONS: tuple[str, ...] = ("neutral", "calm")

_ALIASES_ANNOUNCED: set[bool] = set()


def norm_condition(cfg: FusionConfig, *, announce: bool = False) -> str:
    """The named normalisation condition of ``cfg.speaker_norm``.

    ``True``/``False`` map to ``"transductive"``/``"none"``; with ``announce`` the alias
    is explained once per process (a log warning for ``True``).

    Raises
    ------
    ConfigError
        Not a known condition, or ``enrol_k < 1`` under an enrolment condition.
    """
    value: Any = cfg.speaker_norm
    if isinstance(value, bool):
        if announce and value not in _ALIASES_ANNOUNCED:
            _ALIASES_ANNOUNCED.add(value)
            if value:
                log.warning(
                    "fusion.speaker_norm=true is read as 'transductive': each test speaker is normalised "
                    "with all of its own test clips, which no user can do and which inflates accuracy; "
                    "use fusion.speaker_norm=enrol or neutral_enrol for a deployable condition"
                )
        return "transductive" if value else "none"
    if value not in NORM_CONDITIONS:
        raise ConfigError(f"fusion.speaker_norm: {value!r} is not one of {[*NORM_CONDITIONS, True, False]}")
    if value in ENROL_CONDITIONS and cfg.enrol_k < 1:
        raise ConfigError(f"fusion.enrol_k: must be >= 1 under speaker_norm={value}, got {cfg.enrol_k}")
    return str(value)


def describe_condition(cfg: FusionConfig) -> str:
    """Protocol-description suffix of the condition (``""`` for ``none``)."""
    cond = norm_condition(cfg)
    if cond == "transductive":
        return ", per-speaker normalisation (transductive: from each test speaker's own unlabelled clips)"
    if cond == "enrol":
        return (
            f", per-speaker normalisation from {cfg.enrol_k} unlabelled enrolment clips per test speaker "
            "(drawn at random, excluded from scoring)"
        )
    if cond == "neutral_enrol":
        return (
            f", per-speaker normalisation from {cfg.enrol_k} neutral/calm enrolment clips per test speaker "
            "(excluded from scoring)"
        )
    return ""


def enrolment_rows(
    table: pd.DataFrame, test_rows: np.ndarray, condition: str, k: int, *, seed: int = 0
) -> np.ndarray:
    """The enrolment clips of every test speaker (a subset of ``test_rows``).

    Parameters
    ----------
    table
        Sample table (``speaker``; ``emotion`` is read only under ``neutral_enrol``, to
        pick clips a user could record on request).
    test_rows
        ``(n,)`` positional indices of one fold's test rows.
    condition
        ``enrol`` (``k`` clips drawn at random, at most all but one of the speaker's,
        labels never read) or ``neutral_enrol`` (``k`` of its clips whose emotion is in
        :data:`NEUTRAL_EMOTIONS`); any other condition has no enrolment rows.
    k
        Clips per speaker.
    seed
        Seeds the draw (speakers in sorted order), so it depends only on which rows
        each speaker has, never on their features.

    Returns
    -------
    np.ndarray
        ``(m,)`` sorted positional indices.

    Raises
    ------
    DataError
        ``neutral_enrol`` and a test speaker without a neutral/calm clip.
    """
    test_rows = np.asarray(test_rows, dtype=np.int64)
    if condition not in ENROL_CONDITIONS or len(test_rows) == 0:
        return np.zeros(0, dtype=np.int64)
    rng = np.random.default_rng(seed)
    spk = table["speaker"].astype(str).to_numpy()[test_rows]  # (n,)
    chosen: list[np.ndarray] = []
    for who in sorted(set(spk.tolist())):
        rows = np.sort(test_rows[spk == who])
        if condition == "enrol":
            pool, n = rows, min(k, len(rows) - 1)  # keep at least one clip to score
        else:
            emo = table["emotion"].astype(str).to_numpy()[rows]
            pool = rows[np.isin(emo, NEUTRAL_EMOTIONS)]
            if len(pool) == 0:
                raise DataError(
                    None,
                    f"speaker_norm=neutral_enrol: test speaker {who!r} has no {'/'.join(NEUTRAL_EMOTIONS)} "
                    "clip to enrol with (is one of them in data.emotions?)",
                )
            n = min(k, len(pool))
        if n > 0:
            chosen.append(rng.choice(pool, size=n, replace=False))
    return np.sort(np.concatenate(chosen)) if chosen else np.zeros(0, dtype=np.int64)


def enrolment_statistics(
    fuser: Fuser, feats: Sequence[Any], speakers: Sequence[str]
) -> dict[str, dict[str, dict[str, Any]]]:
    """Per-speaker statistics of the enrolment clips, for ``Fuser.transform(stats=...)``.

    Parameters
    ----------
    fuser
        The fitted Fuser (its modalities decide which statistics are computed).
    feats, speakers
        The enrolment clips' features and speaker ids (same length).

    Returns
    -------
    dict
        ``{speaker: {modality: {"mean": (D,), "std": (D,), "frames": int}}}``.
    """
    by_speaker: dict[str, list[Any]] = {}
    for f, who in zip(feats, speakers, strict=True):
        by_speaker.setdefault(str(who), []).append(f)
    return {who: fuser.speaker_statistics(clips) for who, clips in by_speaker.items()}
