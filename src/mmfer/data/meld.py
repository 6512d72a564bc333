"""MELD (Multimodal EmotionLines Dataset, Poria et al. 2019) text loader.

MELD holds utterances from the TV series *Friends*, grouped into dialogues,
in an official ``train``/``dev``/``test`` split, one CSV per split:
``<root>/{train,dev,test}_sent_emo.csv`` with (at least) the columns
``Utterance, Speaker, Emotion, Dialogue_ID, Utterance_ID`` (``Sentiment``
is kept when present). Only the text is loaded: every sample has an inline
``transcript`` and no media.

Encoding
--------
The published CSVs are UTF-8 (a byte-order mark is accepted). Older copies
circulate in Windows-1252; a file that is not valid UTF-8 is decoded as
Windows-1252 instead, with a warning naming it. Two text repairs are applied
to every utterance (and to context lines):

* typographic apostrophes inside a word (``don’t``) become ASCII ``'``, which
  is what the sentence-embedding tokeniser was trained on;
* apostrophes lost in the source encoding, written as ``?`` between a letter
  and a contraction suffix (``I?ve``, ``that?s``, ``we?re``), are restored.

Context format
--------------
With ``context=k`` the transcript of an utterance is the previous ``k``
utterances of the same dialogue (same split, ordered by ``Utterance_ID``),
oldest first, one per line as ``<Speaker>: <utterance>``, followed by a last
line holding the utterance itself (no speaker prefix, so ``k = 0`` gives the
bare utterance)::

    Chandler: That I did. That I did.
    The Interviewer: So let's talk a little bit about your duties.
    My duties?  All right.

The first utterances of a dialogue have fewer (or no) context lines. The
labels are never part of the context.
"""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from mmfer.data.corpora import Records, check_readable, corpus_root
from mmfer.data.table import make_table
from mmfer.emotions import canonical_emotion
from mmfer.errors import ConfigError, DataError
from mmfer.registry import CORPORA

log = logging.getLogger(__name__)

#: Official split names, in the order they are loaded.
SPLITS: tuple[str, ...] = ("train", "dev", "test")
#: Columns every split file must have (official MELD names).
REQUIRED_COLUMNS: tuple[str, ...] = ("Utterance", "Speaker", "Emotion", "Dialogue_ID", "Utterance_ID")
#: MELD's seven labels and their canonical mmfer names (see :mod:`mmfer.emotions`).
EMOTIONS: dict[str, str] = {
    "neutral": "neutral",
    "joy": "happy",
    "surprise": "surprised",
    "anger": "angry",
    "sadness": "sad",
    "disgust": "disgust",
    "fear": "fearful",
}

_INNER_TYPOGRAPHIC = re.compile(r"(?<=\w)[\u2019\u2018\u02bc](?=\w)")
# "I?ve", "that?s": a lost apostrophe before a contraction suffix that ends the word
_LOST_APOSTROPHE = re.compile(r"(?<=[A-Za-z])\?(?=(?:s|ve|re|ll|d|m|t)\b)")


def split_file(root: Path, split: str) -> Path:
    """The CSV of one official split: ``<root>/<split>_sent_emo.csv``."""
    return root / f"{split}_sent_emo.csv"


def repair_text(text: str) -> str:
    """Undo MELD's encoding damage to apostrophes and strip the ends.

    Examples
    --------
    >>> repair_text("I?ve got some bad news. You must\u2019ve known?")
    "I've got some bad news. You must've known?"
    """
    text = _INNER_TYPOGRAPHIC.sub("'", text)
    return _LOST_APOSTROPHE.sub("'", text).strip()


def read_split_csv(path: Path) -> pd.DataFrame:
    """Read one MELD split file as strings (UTF-8, falling back to Windows-1252).

    Every cell is read as text and nothing is turned into NaN, so an utterance
    such as ``"NA"`` or ``"None"`` stays what it is.

    Raises
    ------
    DataError
        Missing/unreadable file, not a CSV, or a required column absent.
    """
    check_readable(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise DataError(path, f"cannot be read: {e.strerror or e}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        log.warning("%s: not UTF-8 (byte %d); decoding it as Windows-1252", path, e.start)
        text = raw.decode("cp1252", errors="replace")
    try:
        df = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        raise DataError(path, f"is not a readable MELD CSV: {e}") from None
    df.columns = [str(c).strip() for c in df.columns]
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise DataError(
            path,
            f"MELD CSV lacks columns {missing} (has {list(df.columns)}); expected {list(REQUIRED_COLUMNS)}",
        )
    return df


def _int_cell(value: str, path: Path, line: int, column: str) -> int:
    try:
        return int(str(value).strip())
    except ValueError:
        raise DataError(path, f"line {line}: {column} must be an integer, got {value!r}") from None


def _with_context(utterance: str, previous: list[tuple[str, str]]) -> str:
    """Transcript in the documented context format: ``Speaker: words`` lines, then the utterance."""
    lines = [f"{speaker}: {words}" for speaker, words in previous]
    return "\n".join([*lines, utterance])


def _check_options(context: int, splits: Sequence[str]) -> Sequence[str]:
    """Validate ``context`` and ``splits`` (a single name becomes a list); returns the splits."""
    if isinstance(context, bool) or not isinstance(context, int) or context < 0:
        raise ConfigError(f"data.options.context: must be an integer >= 0, got {context!r}")
    if isinstance(splits, str):
        splits = [splits]
    bad = [s for s in splits if s not in SPLITS]
    if bad or not splits:
        raise ConfigError(
            f"data.options.splits: {list(splits)!r} must be a non-empty subset of {list(SPLITS)}"
        )
    return splits


def _split_rows(df: pd.DataFrame, path: Path, split: str) -> list[dict[str, object]]:
    """One record per non-empty utterance of a split file (``text`` repaired, no ``transcript`` yet)."""
    has_sentiment = "Sentiment" in df.columns
    rows: list[dict[str, object]] = []
    for i, r in enumerate(df.itertuples(index=False)):
        line = i + 2  # 1-based, after the header line
        cells = r._asdict()
        words = repair_text(str(cells["Utterance"]))
        dialogue = _int_cell(cells["Dialogue_ID"], path, line, "Dialogue_ID")
        utterance = _int_cell(cells["Utterance_ID"], path, line, "Utterance_ID")
        if not words:
            log.warning("%s: line %d (dialogue %d, utterance %d) has an empty Utterance; skipped",
                        path, line, dialogue, utterance)  # fmt: skip
            continue
        label = str(cells["Emotion"]).strip().lower()
        emotion = canonical_emotion(EMOTIONS.get(label, label), source=f"{path} (line {line})")
        rows.append(
            {
                "id": f"{split}_d{dialogue}_u{utterance}",
                "speaker": str(cells["Speaker"]).strip() or "unknown",
                "emotion": emotion,
                "text": words,
                "split": split,
                "dialogue": dialogue,
                "utterance": utterance,
                "sentiment": str(cells["Sentiment"]).strip().lower() if has_sentiment else None,
            }
        )
    return rows


def _add_context(rows: list[dict[str, object]], context: int) -> None:
    """Set each record's ``transcript``: up to ``context`` earlier utterances of the same
    dialogue (by ``Utterance_ID``, which may have gaps), then the utterance itself."""
    by_dialogue: dict[int, list[dict[str, object]]] = {}
    for rec in rows:
        by_dialogue.setdefault(int(rec["dialogue"]), []).append(rec)  # type: ignore[call-overload]
    for turns in by_dialogue.values():
        turns.sort(key=lambda rec: int(rec["utterance"]))  # type: ignore[call-overload]
        for j, rec in enumerate(turns):
            prev = turns[max(0, j - context) : j] if context else []
            rec["transcript"] = _with_context(
                str(rec["text"]), [(str(p["speaker"]), str(p["text"])) for p in prev]
            )


@CORPORA.register("meld")
def load_meld(root: str | Path, *, context: int = 0, splits: Sequence[str] = SPLITS) -> pd.DataFrame:
    """Load MELD's text into a sample table.

    Parameters
    ----------
    root
        Folder holding ``{train,dev,test}_sent_emo.csv``.
    context
        Number ``k >= 0`` of previous utterances of the same dialogue prepended
        to each transcript (format in the module docstring).
    splits
        Official splits to load (any of ``train``, ``dev``, ``test``).

    Returns
    -------
    pandas.DataFrame
        Sample table, shape ``(n_utterances, 14)``: ids ``<split>_d<dialogue>_u<utterance>``
        (unique across splits), ``speaker`` (the character's name), canonical
        ``emotion``, inline ``transcript``, no media, and extras ``split``,
        ``dialogue``, ``utterance`` (ints), ``sentiment`` (``None`` when the
        file has no such column) and ``text`` (the repaired utterance without
        context).

    Raises
    ------
    ConfigError
        Negative ``context`` or an unknown split name.
    DataError
        Missing root or split file, missing column, non-integer id, duplicate
        (dialogue, utterance) in a split, or an unknown emotion label.
    """
    splits = _check_options(context, splits)
    base = corpus_root(root, "MELD")
    records = Records()
    for split in dict.fromkeys(splits):
        path = split_file(base, split)
        if not path.exists():
            raise DataError(path, f"MELD {split} split file not found (expected {path.name} in {base})")
        rows = _split_rows(read_split_csv(path), path, split)
        _add_context(rows, context)
        for rec in rows:
            records.add(rec, path)
    return make_table(records.values(), corpus="meld", root=base)
