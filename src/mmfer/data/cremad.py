"""CREMA-D (Crowd-sourced Emotional Multimodal Actors Dataset) loader.

91 actors (ids 1001-1091) say 12 sentences in six emotions; file names are
``<ActorID>_<Sentence>_<Emotion>_<Level>`` (e.g. ``1001_DFA_ANG_XX``). The
sentence ``IEO`` is spoken at levels ``LO``/``MD``/``HI`` (neutral: ``XX``),
the others at ``XX`` only. The release holds 7442 audio clips; one of them is
named ``1040_ITH_SAD_X.wav`` (one ``X``), read here as ``1040_ITH_SAD_XX``.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from mmfer.data.corpora import AUDIO_SUFFIXES, Records, Skipped, corpus_root, finish_table, walk_files
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
#: Level spellings seen in copies of the corpus -> official code.
LEVEL_VARIANTS: dict[str, str] = {"X": "XX"}
#: Video folders and the container each holds (Flash video is the original release).
VIDEO_FOLDERS: dict[str, str] = {"VideoFlash": ".flv", "VideoMP4": ".mp4"}
_NAME = re.compile(
    r"^(?P<actor>\d{4})_(?P<sentence>[A-Za-z]{3})_(?P<emotion>[A-Za-z]{3})_(?P<level>[A-Za-z]{1,2})$"
)

Item = tuple[Path, dict[str, str]]


def parse_name(stem: str) -> tuple[dict[str, str] | None, str]:
    """Parse a CREMA-D file stem; tolerant of case, stray spaces and the one-``X`` level.

    Returns
    -------
    tuple
        ``(parts, "")`` with upper-case ``actor``/``sentence``/``emotion``/``level``
        (level normalised to its official code), or ``(None, why)``.
    """
    tokens = [t.strip() for t in stem.strip().split("_")]
    m = _NAME.match("_".join(tokens))
    if m is None:
        return (
            None,
            "not a CREMA-D name (expected <actor>_<sentence>_<emotion>_<level>, e.g. 1001_DFA_ANG_XX)",
        )
    parts = {k: v.upper() for k, v in m.groupdict().items()}
    parts["level"] = LEVEL_VARIANTS.get(parts["level"], parts["level"])
    for what, valid in (("sentence", SENTENCES), ("emotion", EMOTIONS), ("level", LEVELS)):
        if parts[what] not in valid:
            return None, f"unknown CREMA-D {what} code {parts[what]!r} (valid: {', '.join(valid)})"
    return parts, ""


def _scan(folder: Path, suffixes: tuple[str, ...], skipped: Skipped) -> dict[str, Item]:
    """Map the normalised stem (``1040_ITH_SAD_XX``) -> (file, parts) for every usable CREMA-D file."""
    found: dict[str, Item] = {}
    for path in walk_files(folder, suffixes):
        if not skipped.usable(path):
            continue
        parts, why = parse_name(path.stem)
        if parts is None:
            kind = "not a CREMA-D name" if why.startswith("not a") else "unknown CREMA-D code"
            skipped.add(path, kind, why.removeprefix("not a CREMA-D name (").removesuffix(")"))
            continue
        stem = "_".join(parts[k] for k in ("actor", "sentence", "emotion", "level"))
        if stem in found:
            skipped.add(path, "duplicate clip", f"same clip {stem} as {found[stem][0]}")
            continue
        found[stem] = (path, parts)
    return found


@CORPORA.register("cremad")
def load_cremad(root: str | Path, *, require_audio: bool = False) -> pd.DataFrame:
    """Load CREMA-D into a sample table.

    Layout: ``AudioWAV/<stem>.wav`` (or, without ``AudioWAV/``, audio files
    anywhere under ``root``) and optionally ``VideoFlash/<stem>.flv`` or
    ``VideoMP4/<stem>.mp4``, matched by stem. Clips with only video are kept
    unless ``require_audio``. Names are read tolerantly (case, stray spaces,
    ``X`` for ``XX``); every file not taken (other name, unknown code,
    duplicate, Git LFS pointer, unreadable, empty) is reported: one warning
    line, each file at DEBUG (``mmfer -v``).

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
        ``intensity`` (low/medium/high/unspecified). Ids are the official
        stems (``1040_ITH_SAD_XX``); ``table.attrs["skipped"]`` lists the
        files not taken.

    Raises
    ------
    DataError
        Missing root, or no clip taken (the message says why).
    """
    base = corpus_root(root, "CREMA-D")
    audio_dir = base / "AudioWAV" if (base / "AudioWAV").is_dir() else base
    skipped = Skipped("CREMA-D")
    audio = _scan(audio_dir, AUDIO_SUFFIXES, skipped)
    video: dict[str, Item] = {}
    for folder, suffix in VIDEO_FOLDERS.items():
        if (base / folder).is_dir():
            for stem, item in _scan(base / folder, (suffix,), skipped).items():
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
    n_files = len(audio) + sum(1 for stem in stems if stem in video)
    return finish_table(
        records.values(), corpus="cremad", name="CREMA-D", root=base, skipped=skipped, taken=n_files
    )


#: ``summaryTable.csv`` vote columns -> the raters' condition.
RATER_COLUMNS: dict[str, str] = {"VoiceVote": "voice", "FaceVote": "face", "MultiModalVote": "audio-visual"}


def load_rater_votes(path: str | Path) -> pd.DataFrame:
    """The crowd raters' majority labels of every CREMA-D clip (``summaryTable.csv``).

    CREMA-D's release gives, per clip, the label most raters chose when they heard the
    voice only (``VoiceVote``), saw the face only (``FaceVote``) or both
    (``MultiModalVote``); a tie is written ``A:N`` (several codes). This is the human
    reference of the corpus: how often people recover the *intended* emotion.

    Parameters
    ----------
    path
        ``summaryTable.csv`` (columns ``FileName``, ``VoiceVote``, ``FaceVote``, ``MultiModalVote``).

    Returns
    -------
    pandas.DataFrame
        ``(n_clips, 5)``: ``id`` (normalised stem), ``intended`` (canonical emotion) and one
        column per condition of :data:`RATER_COLUMNS` holding the tuple of canonical
        emotions of the majority (two or more on a tie).

    Raises
    ------
    DataError
        Missing file or column, a name that is not a CREMA-D name, an unknown vote code.
    """
    p = Path(path)
    if not p.is_file():
        raise DataError(p, "CREMA-D raters' summary table not found")
    df = pd.read_csv(p, dtype=str, keep_default_na=False)
    missing = [c for c in ("FileName", *RATER_COLUMNS) if c not in df.columns]
    if missing:
        raise DataError(p, f"missing column(s) {missing}")
    codes = {code[0]: name for code, name in EMOTIONS.items()}  # A, D, F, H, N, S
    rows = []
    for n, rec in enumerate(df.to_dict("records"), start=2):  # line 1 is the header
        parts, why = parse_name(rec["FileName"])
        if parts is None:
            raise DataError(p, f"line {n}: {why}")
        row: dict[str, object] = {
            "id": "_".join(parts[k] for k in ("actor", "sentence", "emotion", "level")),
            "intended": EMOTIONS[parts["emotion"]],
        }
        for col, cond in RATER_COLUMNS.items():
            votes = [v.strip().upper() for v in str(rec[col]).split(":") if v.strip()]
            if not votes or any(v not in codes for v in votes):
                raise DataError(p, f"line {n}: unknown {col} {rec[col]!r} (codes: {', '.join(codes)})")
            row[cond] = tuple(codes[v] for v in votes)
        rows.append(row)
    return pd.DataFrame(rows)


def rater_accuracy(votes: pd.DataFrame, *, ties: str = "wrong") -> dict[str, float]:
    """Share of clips whose raters' majority label is the intended emotion, per condition.

    Parameters
    ----------
    votes
        :func:`load_rater_votes`.
    ties
        ``wrong``: a tied majority is not the intended emotion (the usual reading, about
        41.6 % voice / 66.3 % face / 72.2 % audio-visual on the 7442 clips); ``any``: a tie
        that includes the intended emotion counts as right.

    Returns
    -------
    dict[str, float]
        ``{condition: accuracy}`` as fractions, conditions of :data:`RATER_COLUMNS`.
    """
    out = {}
    for cond in RATER_COLUMNS.values():
        if ties == "wrong":
            hit = [v == (e,) for v, e in zip(votes[cond], votes["intended"], strict=True)]
        else:
            hit = [e in v for v, e in zip(votes[cond], votes["intended"], strict=True)]
        out[cond] = float(sum(hit) / max(len(hit), 1))
    return out
