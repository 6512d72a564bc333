"""Transcript text before any fitting: reading, cleaning (eq. 2) and which text block is asked for.

Per-sample extraction of the words wing stops at the cleaned string
(:func:`clean_text`); TF-IDF (:mod:`mmfer.features.words.tfidf`) is fitted later,
in fusion, on the training fold only. :data:`CLEAN_VERSION` is part of every text
unit's cache key.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

from mmfer.config import TextConfig
from mmfer.errors import FeatureError, ModalityMissing

#: Bumped whenever cleaning changes, so cached cleaned transcripts are not reused.
CLEAN_VERSION = 1

# Apostrophes inside a word are dropped rather than split on, so "don't" -> "dont"
# instead of the meaningless pair "don", "t".
_APOSTROPHES = "'\u2019\u02bc\u2018"
_INNER_APOSTROPHE = re.compile(rf"(?<=\w)[{_APOSTROPHES}](?=\w)")


def _is_punctuation(ch: str) -> bool:
    # Unicode general category P* covers ASCII and e.g. « » — ¿ 、 。 alike.
    return unicodedata.category(ch).startswith("P")


def clean_text(text: str, *, lowercase: bool = True, remove_stop_words: bool = True) -> str:
    """Remove punctuation and stop words (eq. 2) and normalise whitespace.

    Parameters
    ----------
    text
        Raw transcript.
    lowercase
        Case-fold the result.
    remove_stop_words
        Drop scikit-learn's ``ENGLISH_STOP_WORDS`` (compared case-insensitively).

    Returns
    -------
    str
        Space-joined tokens; ``""`` when nothing is left.

    Examples
    --------
    >>> clean_text("Kids are talking by the door!")
    'kids talking door'
    >>> clean_text("Don't — «stop» now…", remove_stop_words=False)
    'dont stop now'
    """
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    text = unicodedata.normalize("NFKC", text)
    text = _INNER_APOSTROPHE.sub("", text)
    text = "".join(" " if _is_punctuation(ch) else ch for ch in text)
    if lowercase:
        text = text.casefold()
    tokens = text.split()
    if remove_stop_words:
        tokens = [t for t in tokens if t.casefold() not in ENGLISH_STOP_WORDS]
    return " ".join(tokens)


def text_representation(cfg: TextConfig) -> str:
    """The text block ``cfg`` asks for: ``tfidf``, ``embedding`` or ``both``.

    ``auto`` is normally resolved by ``FeatureConfig.profile``; a TextConfig
    used on its own (or saved before the option existed) reads it as ``tfidf``.
    """
    return "tfidf" if cfg.representation == "auto" else cfg.representation


def uses_tfidf(cfg: TextConfig) -> bool:
    """Whether the text block holds TF-IDF weights of the cleaned transcript."""
    return text_representation(cfg) in ("tfidf", "both")


def uses_embedding(cfg: TextConfig) -> bool:
    """Whether the text block holds the sentence embedding of the raw transcript."""
    return text_representation(cfg) in ("embedding", "both")


def read_transcript(path: str | Path) -> str:
    """Read a UTF-8 transcript file (a byte-order mark is accepted and dropped).

    Raises
    ------
    FeatureError
        File missing/unreadable or not valid UTF-8.
    ModalityMissing
        File empty or whitespace only.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise FeatureError(path, f"cannot read transcript: {e.strerror or e}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise FeatureError(path, f"transcript is not valid UTF-8 (byte {e.start})") from None
    if not text.strip():
        raise ModalityMissing(path, "empty transcript")
    return text.strip()
