"""TESS (Toronto Emotional Speech Set) loader.

Two actresses (``OAF`` older, ``YAF`` younger) say "Say the word ___" with
200 target words in seven emotions: angry, disgust, fear, happy, neutral,
ps (pleasant surprise) and sad: 2800 clips, audio only.

The official release (University of Toronto Dataverse; the Kaggle copy has
the same files) has one folder per speaker and emotion, with inconsistent
capitalisation (``OAF_Fear``, ``YAF_fear``, ``OAF_Pleasant_surprise``,
``YAF_pleasant_surprised``) and one misnamed file,
``OAF_neutral/OA_bite_neutral.wav``. When a file sits in such a folder the
folder decides speaker and emotion; the file name gives the word.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pandas as pd

from mmfer.data.corpora import AUDIO_SUFFIXES, Records, Skipped, corpus_root, finish_table, walk_files
from mmfer.emotions import canonical_emotion
from mmfer.errors import DataError
from mmfer.registry import CORPORA

log = logging.getLogger(__name__)

SPEAKERS: tuple[str, ...] = ("OAF", "YAF")
#: Speaker spellings of the release outside the two codes: OA_bite_neutral.wav is OAF's.
SPEAKER_ALIASES: dict[str, str] = {"OA": "OAF"}
N_WORDS = 200
#: Emotion folders/tokens of the release (lower case, spaces as "_") -> emotion word.
_TWO_TOKEN_EMOTIONS: tuple[str, ...] = ("pleasant_surprise", "pleasant_surprised")
# Folder "<speaker>_<emotion>", e.g. OAF_Fear, YAF_pleasant_surprised (any case, stray spaces).
_FOLDER = re.compile(r"^\s*(?P<speaker>[A-Za-z]{2,3})\s*_\s*(?P<emotion>[A-Za-z][A-Za-z_ ]*?)\s*$")
_WORD = re.compile(r"^[a-z][a-z']*$")


def _token(token: str) -> str:
    """``" Pleasant surprise"`` -> ``"pleasant_surprise"``."""
    return re.sub(r"[\s_]+", "_", token.strip()).lower()


def _emotion(token: str) -> str | None:
    """Canonical emotion of a TESS emotion token (``Fear``, ``ps``, ``Pleasant_surprise``), or ``None``."""
    try:
        return canonical_emotion(_token(token))
    except DataError:
        return None


def _folder_labels(folder: Path) -> tuple[str, str] | None:
    """(speaker, canonical emotion) from a folder like ``OAF_Fear``; ``None`` if it is not one."""
    m = _FOLDER.match(folder.name)
    if m is None or m["speaker"].upper() not in SPEAKERS:
        return None
    emotion = _emotion(m["emotion"])
    return (m["speaker"].upper(), emotion) if emotion else None


def _split_name(stem: str) -> tuple[str, str, str] | None:
    """``OAF_back_angry`` -> (speaker token, word, emotion token); tolerant of case and spaces."""
    tokens = [t.strip() for t in stem.strip().split("_") if t.strip()]
    if len(tokens) < 3:
        return None
    tail = "_".join(tokens[-2:]).lower()
    if tail in _TWO_TOKEN_EMOTIONS and len(tokens) >= 4:
        emotion, word_tokens = tail, tokens[1:-2]
    else:
        emotion, word_tokens = tokens[-1], tokens[1:-1]
    word = "_".join(word_tokens).lower()
    return tokens[0], word, emotion


def _labels(path: Path, spk_token: str, emo_token: str, skipped: Skipped) -> tuple[str, str] | None:
    """(speaker, canonical emotion) of one file, from its ``<speaker>_<emotion>`` folder when it is
    in one (the name may abbreviate it but not contradict it), else from its name; ``None``
    (and the file listed in ``skipped``) when neither gives a valid pair."""
    from_folder = _folder_labels(path.parent)
    name_emotion = _emotion(emo_token)
    if from_folder is not None:
        speaker, emotion = from_folder
        # The name may abbreviate the speaker (OA_bite_neutral.wav in OAF_neutral/) but not contradict it.
        if not speaker.startswith(spk_token.upper()):
            skipped.add(
                path, "file name contradicts its folder", f"speaker {spk_token!r} in {path.parent.name}/"
            )
            return None
        if name_emotion is not None and name_emotion != emotion:
            skipped.add(
                path, "file name contradicts its folder", f"emotion {emo_token!r} in {path.parent.name}/"
            )
            return None
        return speaker, emotion
    speaker = SPEAKER_ALIASES.get(spk_token.upper(), spk_token.upper())
    if speaker not in SPEAKERS:
        skipped.add(path, "unknown TESS speaker", f"{spk_token!r} (valid: {', '.join(SPEAKERS)})")
        return None
    if name_emotion is None:
        skipped.add(path, "unknown TESS emotion", repr(emo_token))
        return None
    return speaker, name_emotion


@CORPORA.register("tess")
def load_tess(root: str | Path) -> pd.DataFrame:
    """Load TESS into a sample table.

    Audio files named ``<speaker>_<word>_<emotion>`` (e.g.
    ``OAF_angry/OAF_back_angry.wav``, ``YAF_pleasant_surprised/YAF_bath_ps.wav``)
    are found anywhere under ``root`` (symbolic links followed). Inside a
    ``<speaker>_<emotion>`` folder the folder gives speaker and emotion (so
    ``OAF_neutral/OA_bite_neutral.wav`` is OAF's "bite", neutral); elsewhere
    (a flat copy) the file name does, ``OA`` being read as ``OAF``. Case
    and stray spaces are tolerated.
    Every audio file not taken (other name, file name contradicting its
    folder, duplicate, LFS pointer, unreadable, empty) is reported: one
    warning line, each file at DEBUG (``mmfer -v``).

    Parameters
    ----------
    root
        TESS folder.

    Returns
    -------
    pandas.DataFrame
        Sample table, shape ``(n_clips, 10)``; speaker ``OAF``/``YAF``,
        transcript ``"Say the word <word>"``, extra ``word``. Ids are
        ``<speaker>_<word>_<emotion token>`` (``OAF_back_angry``,
        ``OAF_bite_neutral``, ``YAF_bath_ps``). ``table.attrs["skipped"]``
        lists the files not taken.

    Raises
    ------
    DataError
        Missing root, or no clip taken (the message says why).
    """
    base = corpus_root(root, "TESS")
    skipped = Skipped("TESS")
    records = Records()
    first: dict[str, Path] = {}
    for path in walk_files(base, AUDIO_SUFFIXES):
        if not skipped.usable(path):
            continue
        parts = _split_name(path.stem)
        if parts is None or not _WORD.match(parts[1]):
            skipped.add(
                path, "not a TESS name", "expected <speaker>_<word>_<emotion>, e.g. OAF_back_angry.wav"
            )
            continue
        spk_token, word, emo_token = parts
        labels = _labels(path, spk_token, emo_token, skipped)
        if labels is None:
            continue
        speaker, emotion = labels
        sid = f"{speaker}_{word}_{_token(emo_token)}"
        if sid in first:
            skipped.add(path, "duplicate clip", f"same speaker, word and emotion as {first[sid]}")
            continue
        first[sid] = path
        records.add(
            {
                "id": sid,
                "speaker": speaker,
                "emotion": emotion,
                "audio": path,
                "transcript": f"Say the word {word}",
                "word": word,
            },
            path,
        )
    return finish_table(records.values(), corpus="tess", name="TESS", root=base, skipped=skipped)
