"""What extraction works on and produces: :class:`Unit` (one sample x modality job), :class:`SampleFeatures`.

The data model shared by the orchestration (:mod:`mmfer.features.extract`) and the
three wings (face, voice, words), which receive :class:`Unit` objects and return
their arrays. :func:`plan_units` turns a sample table into units;
:func:`record_arrays` puts a unit's arrays (fresh or cached) into its sample.
This module imports no wing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

__all__ = ["AUGMENTED_KIND", "SampleFeatures", "Unit", "plan_augmented", "plan_units", "record_arrays"]

#: ``Unit.kind`` of an augmented copy of an audio clip (``Unit.variant`` = the copy index).
AUGMENTED_KIND = "audio_aug"

#: Face source columns in order of preference (the first non-empty one is used).
_FACE_SOURCES: tuple[str, ...] = ("video", "frames", "image")


@dataclass
class SampleFeatures:
    """Features of one sample; a missing modality is ``None`` with its reason in ``issues``.

    Attributes
    ----------
    face
        ``(T_v, D_v)`` float32 per-frame backbone features (``T_v = 1`` for a still image).
    audio
        ``(T_a, D_a)`` float32 MFCC frames (+ deltas).
    text
        Cleaned transcript (eq. 2); TF-IDF is fitted later, per fold. ``""`` when
        cleaning leaves no word but the raw transcript has a sentence embedding.
    issues
        Modality -> why it is missing/masked (only for failures, not for absent columns).
    text_emb
        ``(D_t,)`` float32 sentence embedding of the raw transcript (only when
        ``TextConfig.representation`` is ``embedding`` or ``both``).
    """

    face: np.ndarray | None = None
    audio: np.ndarray | None = None
    text: str | None = None
    issues: dict[str, str] = field(default_factory=dict)
    text_emb: np.ndarray | None = None
    #: Modality -> remark about a modality that *is* present, e.g. the face-detection
    #: outcome ``"face found in 14/16 frames"`` (``issues`` holds only masked modalities).
    notes: dict[str, str] = field(default_factory=dict)
    #: Dialogue corpora: embeddings of the earlier utterances of the same dialogue, oldest
    #: first, and ``(K,)`` whether each was said by this sample's speaker
    #: (:func:`mmfer.features.words.dialogue.attach_dialogue_context`; not cached).
    text_ctx: tuple[np.ndarray, ...] = ()
    text_ctx_same: np.ndarray | None = None
    #: Train-time augmentation (``features.augment.copies > 0``): copy index ``k >= 1`` ->
    #: ``(T_k, D_a)`` float32 frames of the k-th augmented copy of this clip's audio, from
    #: the same backend as ``audio``. Only training rows read them
    #: (:mod:`mmfer.augmented_rows`); a copy that failed is absent (``notes["audio_aug"]``).
    audio_aug: dict[int, np.ndarray] = field(default_factory=dict)


@dataclass(frozen=True)
class Unit:
    """One (sample, modality) extraction job.

    ``kind`` is the input form: ``video``/``frames``/``image`` (face), ``audio``,
    ``transcript_file``, ``transcript_text``, ``asr`` (text transcribed from the
    audio/video file ``source``) or ``audio_aug`` (:data:`AUGMENTED_KIND`, an augmented
    copy of the audio file ``source``); ``source`` is a path or the inline text.
    ``variant`` > 0 names the ``variant``-th derived version of the same input (the copy
    index of ``audio_aug``); it is part of the cache key.
    """

    sample_id: str
    modality: str
    kind: str
    source: str
    key: str = ""
    variant: int = 0

    @property
    def path(self) -> str | None:
        """The input file/folder, ``None`` for inline text."""
        return None if self.kind == "transcript_text" else self.source


def record_arrays(
    sf: SampleFeatures, modality: str, arrays: dict[str, np.ndarray], *, variant: int = 0
) -> None:
    """Put one unit's arrays (fresh or cached) into its :class:`SampleFeatures`.

    Parameters
    ----------
    sf
        The sample's features (changed in place).
    modality
        ``face``, ``audio`` or ``text``.
    arrays
        The unit's arrays: ``face (T_v, D_v)`` / ``audio (T_a, D_a)`` (+ a 0-d ``<modality>_note``
        string), or ``text`` (0-d string) and optionally ``text_emb (D_t,)``.
    variant
        ``> 0``: the arrays of augmented copy ``variant`` of the audio (``sf.audio_aug``).
    """
    if variant > 0:
        sf.audio_aug[variant] = np.asarray(arrays[modality], dtype=np.float32)  # (T_k, D_a)
        return
    if modality == "text":
        sf.text = str(arrays["text"])
        if "text_emb" in arrays:
            sf.text_emb = np.asarray(arrays["text_emb"], dtype=np.float32)  # (D_t,)
    else:
        setattr(sf, modality, np.asarray(arrays[modality], dtype=np.float32))
        if f"{modality}_note" in arrays:
            sf.notes[modality] = str(arrays[f"{modality}_note"])


def _cell(row: pd.Series, col: str) -> str | None:
    """A table cell as a non-empty string, or ``None`` (missing column, None, NaN, "")."""
    if col not in row.index:
        return None
    v = row[col]
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return None
    s = str(v)
    return s if s.strip() else None


def _looks_like_transcript_file(value: str) -> bool:
    """Whether a transcript cell is a path to a ``.txt`` file (otherwise it holds the words)."""
    return value.lower().endswith(".txt") and not any(ch.isspace() for ch in value.strip())


def plan_units(table: pd.DataFrame, modalities: Sequence[str], *, asr: bool = False) -> list[Unit]:
    """The extraction units of a sample table (keys not yet filled in).

    Face comes from ``video``, else ``frames``, else ``image``; audio from
    ``audio`` (which may be a video whose track is decoded); text from
    ``transcript`` (inline text, or a path to a UTF-8 ``.txt`` file), or, with
    ``asr`` and no transcript, transcribed from ``audio``, else ``video``.
    """
    units: list[Unit] = []
    for _, row in table.iterrows():
        sid = str(row["id"])
        if "face" in modalities:
            for col in _FACE_SOURCES:
                src = _cell(row, col)
                if src is not None:
                    units.append(Unit(sid, "face", col, src))
                    break
        if "audio" in modalities:
            src = _cell(row, "audio")
            if src is not None:
                units.append(Unit(sid, "audio", "audio", src))
        if "text" in modalities:
            src = _cell(row, "transcript")
            if src is not None:
                kind = "transcript_file" if _looks_like_transcript_file(src) else "transcript_text"
                units.append(Unit(sid, "text", kind, src))
            elif asr:
                speech = _cell(row, "audio") or _cell(row, "video")
                if speech is not None:
                    units.append(Unit(sid, "text", "asr", speech))
    return units


def plan_augmented(units: Sequence[Unit], copies: int) -> list[Unit]:
    """The augmented-copy units of the audio units among ``units``: ``copies`` per clip.

    Parameters
    ----------
    units
        Planned units (:func:`plan_units`); only ``audio`` ones are copied.
    copies
        Copies per clip (``features.augment.copies``); copy ``k`` is ``variant = k``, 1-based.

    Returns
    -------
    list[Unit]
        ``kind = AUGMENTED_KIND`` units, clip by clip (keys not yet filled in).
    """
    return [
        Unit(u.sample_id, "audio", AUGMENTED_KIND, u.source, variant=k)
        for u in units
        if u.modality == "audio" and u.kind == "audio"
        for k in range(1, copies + 1)
    ]
