"""CREMA-D (Crowd-sourced Emotional Multimodal Actors Dataset) loader.

91 actors (ids 1001-1091) say 12 sentences in six emotions; file names are
``<ActorID>_<Sentence>_<Emotion>_<Level>`` (e.g. ``1001_DFA_ANG_XX``).
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from mmfer.data.corpora import AUDIO_SUFFIXES, Records, check_readable, corpus_root, walk_files
from mmfer.data.table import make_table
from mmfer.emotions import canonical_emotion
from mmfer.errors import DataError
from mmfer.registry import CORPORA

SENTENCES: dict[str, str] = {
    "IEO": "It's eleven o'clock",
    "TIE": "That is exactly what happened",
    "IOM": "I'm on my way to the meeting",
    "IWW": "I wonder what this is about",
    "TAI": "The airplane is almost full",
    "MTI": "Maybe tomorrow it will be cold",
    "IWL": "I would like a new alarm clock",
    "ITH": "I think I have a doctor's appointment",
    "DFA": "Don't forget a jacket",
    "ITS": "I think I've seen this before",
    "TSI": "The surface is slick",
    "WSI": "We'll stop in a couple of minutes",
}
EMOTIONS: dict[str, str] = {
    "ANG": "angry",
    "DIS": "disgust",
    "FEA": "fearful",
    "HAP": "happy",
    "NEU": "neutral",
    "SAD": "sad",
}
LEVELS: dict[str, str] = {"LO": "low", "MD": "medium", "HI": "high", "XX": "unspecified"}
#: Video folders and the container each holds (Flash video is the original release).
VIDEO_FOLDERS: dict[str, str] = {"VideoFlash": ".flv", "VideoMP4": ".mp4"}
_NAME = re.compile(
    r"^(?P<actor>\d{4})_(?P<sentence>[A-Za-z]{3})_(?P<emotion>[A-Za-z]{3})_(?P<level>[A-Za-z]{2})$"
)


def _parse(path: Path) -> dict[str, str] | None:
    m = _NAME.match(path.stem)
    if m is None:
        return None
    parts = {k: v.upper() for k, v in m.groupdict().items()}
    for what, valid in (("sentence", SENTENCES), ("emotion", EMOTIONS), ("level", LEVELS)):
        if parts[what] not in valid:
            raise DataError(path, f"unknown CREMA-D {what} code {parts[what]!r} (valid: {', '.join(valid)})")
    return parts


def _scan(folder: Path, suffixes: tuple[str, ...]) -> dict[str, tuple[Path, dict[str, str]]]:
    found: dict[str, tuple[Path, dict[str, str]]] = {}
    for path in walk_files(folder, suffixes):
        parts = _parse(path)
        if parts is None:
            continue
        stem = path.stem.upper()
        if stem in found:
            raise DataError(path, f"duplicate sample id {path.stem!r}: also given by {found[stem][0]}")
        found[stem] = (check_readable(path), parts)
    return found


@CORPORA.register("cremad")
def load_cremad(root: str | Path, *, require_audio: bool = False) -> pd.DataFrame:
    """Load CREMA-D into a sample table.

    Layout: ``AudioWAV/<stem>.wav`` (or, without ``AudioWAV/``, audio files
    anywhere under ``root``) and optionally ``VideoFlash/<stem>.flv`` or
    ``VideoMP4/<stem>.mp4``, matched by stem. Clips with only video are kept
    unless ``require_audio``. Files whose names are not CREMA-D names are
    ignored.

    Parameters
    ----------
    root
        CREMA-D folder.
    require_audio
        Drop clips without an audio file.

    Returns
    -------
    pandas.DataFrame
        Sample table, shape ``(n_clips, 11)``; speaker is the actor id,
        transcript the sentence. Extras ``statement`` (sentence code) and
        ``intensity`` (low/medium/high/unspecified).

    Raises
    ------
    DataError
        Missing root, unknown sentence/emotion/level code, duplicate stem,
        unreadable file, or no clip found.
    """
    base = corpus_root(root, "CREMA-D")
    audio_dir = base / "AudioWAV" if (base / "AudioWAV").is_dir() else base
    audio = _scan(audio_dir, AUDIO_SUFFIXES)
    video: dict[str, tuple[Path, dict[str, str]]] = {}
    for folder, suffix in VIDEO_FOLDERS.items():
        if (base / folder).is_dir():
            for stem, item in _scan(base / folder, (suffix,)).items():
                video.setdefault(stem, item)
    stems = sorted(set(audio) | (set() if require_audio else set(video)))
    records = Records()
    for stem in stems:
        path, parts = audio.get(stem) or video[stem]
        records.add(
            {
                "id": stem,
                "speaker": parts["actor"],
                "emotion": canonical_emotion(EMOTIONS[parts["emotion"]], source=path),
                "audio": audio[stem][0] if stem in audio else None,
                "video": video[stem][0] if stem in video else None,
                "transcript": SENTENCES[parts["sentence"]],
                "statement": parts["sentence"],
                "intensity": LEVELS[parts["level"]],
            },
            path,
        )
    return make_table(records.values(), corpus="cremad", root=base)
