"""Canonical emotion names and the aliases corpora use for them."""

from __future__ import annotations

from mmfer.errors import DataError

#: Canonical label names, in a fixed order used whenever a label set is built.
CANONICAL: tuple[str, ...] = (
    "neutral",
    "calm",
    "happy",
    "sad",
    "angry",
    "fearful",
    "disgust",
    "surprised",
    "contempt",
)

_ALIASES: dict[str, str] = {
    "neutral": "neutral",
    "neu": "neutral",
    "n": "neutral",
    "calm": "calm",
    "happy": "happy",
    "happiness": "happy",
    "hap": "happy",
    "joy": "happy",
    "h": "happy",
    "sad": "sad",
    "sadness": "sad",
    "sa": "sad",
    "angry": "angry",
    "anger": "angry",
    "ang": "angry",
    "a": "angry",
    "fearful": "fearful",
    "fear": "fearful",
    "fea": "fearful",
    "f": "fearful",
    "disgust": "disgust",
    "disgusted": "disgust",
    "dis": "disgust",
    "d": "disgust",
    "surprised": "surprised",
    "surprise": "surprised",
    "sur": "surprised",
    "ps": "surprised",
    "pleasant_surprise": "surprised",
    "pleasant_surprised": "surprised",
    "su": "surprised",
    "contempt": "contempt",
}


def canonical_emotion(name: str, *, source: object = None) -> str:
    """Map a corpus-specific emotion name to its canonical form.

    Parameters
    ----------
    name
        Label as written by the corpus (any case, e.g. ``"Anger"``, ``"ps"``).
    source
        File the label came from, named in the error if it is unknown.

    Raises
    ------
    DataError
        If ``name`` is not a known emotion.
    """
    key = str(name).strip().lower().replace(" ", "_").replace("-", "_")
    try:
        return _ALIASES[key]
    except KeyError:
        raise DataError(source, f"unknown emotion label {name!r}; known: {', '.join(CANONICAL)}") from None


def label_order(labels: list[str] | set[str]) -> list[str]:
    """Sort a set of canonical labels in :data:`CANONICAL` order."""
    return sorted(set(labels), key=lambda e: (CANONICAL.index(e) if e in CANONICAL else 99, e))
