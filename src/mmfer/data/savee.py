"""SAVEE (Surrey Audio-Visual Expressed Emotion) loader.

Four male speakers (DC, JE, JK, KL) read 15 TIMIT sentences per emotion;
seven emotion codes: ``a`` anger, ``d`` disgust, ``f`` fear, ``h``
happiness, ``n`` neutral (30 clips), ``sa`` sadness, ``su`` surprise.
"""

from __future__ import annotations

import logging
import re
from io import StringIO
from pathlib import Path

import pandas as pd

from mmfer.data.corpora import (
    AUDIO_SUFFIXES,
    VIDEO_SUFFIXES,
    Records,
    Skipped,
    check_readable,
    corpus_root,
    finish_table,
    image_files,
    read_text,
    walk_files,
)
from mmfer.emotions import canonical_emotion
from mmfer.errors import DataError
from mmfer.registry import CORPORA

log = logging.getLogger(__name__)

SPEAKERS: tuple[str, ...] = ("DC", "JE", "JK", "KL")
#: SAVEE emotion code -> the corpus' own emotion word.
CODES: dict[str, str] = {
    "a": "anger",
    "d": "disgust",
    "f": "fear",
    "h": "happiness",
    "n": "neutral",
    "sa": "sadness",
    "su": "surprise",
}
VISUAL_FOLDERS: tuple[str, ...] = ("AudioVisualClip", "VideoData")

# Clip stem: optional "<speaker>_" (flat Kaggle copy, e.g. DC_a01), letters, number.
# The letters are matched loosely so that an unknown code is reported, not skipped.
_CLIP = re.compile(r"^(?:(?P<spk>[A-Za-z]{2})[_/\\-])?(?P<code>[A-Za-z]{1,3})(?P<num>\d{1,3})$")

Key = tuple[str, str, int]  # (speaker, code, sentence number)


def _parse_clip(text: str, source: Path) -> tuple[str | None, str, int] | None:
    """Parse ``a01`` / ``DC_a01`` / ``DC/a01.wav`` into (speaker or None, code, number)."""
    stem = text.strip().replace("\\", "/")
    parts = stem.split("/")
    spk_dir = parts[-2].strip() if len(parts) > 1 else None
    # Stray spaces ("DC_ a01.wav", "a01 .wav") appear in re-packaged copies.
    m = _CLIP.match(re.sub(r"\s+", "", Path(parts[-1]).stem))
    if m is None:
        return None
    code = m["code"].lower()
    if code not in CODES:
        raise DataError(
            source, f"unknown SAVEE emotion code {m['code']!r} in {text!r} (known: {', '.join(CODES)})"
        )
    spk = m["spk"] or spk_dir
    return (spk.upper() if spk else None), code, int(m["num"])


def _speaker_of(path: Path, spk: str | None) -> str | None:
    """The speaker from the name (``DC_a01``) or the folder (``DC/a01``); ``None`` if neither says."""
    speaker = spk or path.parent.name.strip().upper()
    return speaker if re.fullmatch(r"[A-Z]{2}", speaker) else None


def _scan(folder: Path, suffixes: tuple[str, ...], kind: str, skipped: Skipped) -> dict[Key, Path]:
    """Map (speaker, code, number) -> file for every usable SAVEE-named file under ``folder``."""
    found: dict[Key, Path] = {}
    for path in walk_files(folder, suffixes):
        if not skipped.usable(path):
            continue
        try:
            parsed = _parse_clip(path.name, path)
        except DataError as e:  # unknown emotion code
            skipped.add(path, "unknown SAVEE emotion code", e.problem)
            continue
        if parsed is None:
            skipped.add(
                path, "not a SAVEE clip name", f"expected e.g. a01{path.suffix} or DC_a01{path.suffix}"
            )
            continue
        spk, code, num = parsed
        speaker = _speaker_of(path, spk)
        if speaker is None:
            skipped.add(
                path,
                "no SAVEE speaker",
                "expected <speaker>/<code><nn>.<ext> (speaker one of "
                f"{', '.join(SPEAKERS)}) or <speaker>_<code><nn>.<ext>",
            )
            continue
        key = (speaker, code, num)
        if key in found:
            skipped.add(path, f"duplicate {kind} clip", f"same clip as {found[key]}")
            continue
        found[key] = path
    return found


def _scan_frames(folder: Path) -> dict[Key, Path]:
    """Frame folders ``<speaker>/<code><n>/`` holding images, keyed like clips."""
    found: dict[Key, Path] = {}
    for d in sorted(p for p in folder.rglob("*") if p.is_dir()):
        try:
            parsed = _parse_clip(d.name, d) if _CLIP.match(d.name.strip()) else None
        except DataError:
            parsed = None
        if parsed is None or not image_files(d):
            continue
        spk, code, num = parsed
        speaker = _speaker_of(d, spk)
        if speaker is not None:
            found.setdefault((speaker, code, num), d)
    return found


def _transcript_files(root: Path, transcripts: str | Path | None) -> list[Path]:
    if transcripts is not None:
        path = Path(transcripts).expanduser()
        path = path if path.is_absolute() else root / path
        return [check_readable(path)]
    return [
        p
        for p in sorted(root.iterdir())
        if p.is_file() and "transcript" in p.name.lower() and p.suffix.lower() in ("", ".txt", ".csv", ".tsv")
    ]


def _read_transcripts(path: Path) -> dict[tuple[str | None, str, int], str]:
    """Parse one transcript file; see :func:`load_savee` for the formats."""
    text = read_text(path)
    out: dict[tuple[str | None, str, int], str] = {}
    if path.suffix.lower() in (".csv", ".tsv"):
        try:
            df = pd.read_csv(
                StringIO(text), sep="\t" if path.suffix.lower() == ".tsv" else ",", dtype=str
            ).fillna("")
        except (pd.errors.ParserError, pd.errors.EmptyDataError) as e:
            raise DataError(path, f"is not a valid table: {e}") from None
        cols = {c.strip().lower(): c for c in df.columns}
        key_col = next((cols[c] for c in ("file", "clip", "code", "id", "name") if c in cols), None)
        text_col = next((cols[c] for c in ("sentence", "transcript", "text") if c in cols), None)
        if key_col is None or text_col is None:
            raise DataError(
                path, f"needs a file/clip/code column and a sentence column; has {list(df.columns)}"
            )
        spk_col = cols.get("speaker")
        for i, row in df.iterrows():
            parsed = _parse_clip(row[key_col], path)
            if parsed is None:
                raise DataError(path, f"row {int(i) + 2}: {row[key_col]!r} is not a clip name like a01")
            spk, code, num = parsed
            spk = (row[spk_col].strip().upper() or None) if spk_col else spk
            out[(spk, code, num)] = row[text_col].strip()
        return out
    for n, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = re.match(r"^(\S+?)[\s:,;]+(.+)$", line)
        parsed = _parse_clip(m[1], path) if m else None
        if m is None or parsed is None:
            raise DataError(path, f"line {n}: expected '<clip> <sentence>' (e.g. 'a01 She had ...')")
        out[parsed] = m[2].strip().strip("\"'")
    return out


def _scan_media(base: Path, skipped: Skipped) -> tuple[dict[Key, Path], dict[Key, Path], dict[Key, Path]]:
    """Audio files, video files and frame folders under a SAVEE root, each keyed by clip."""
    audio_dir = base / "AudioData" if (base / "AudioData").is_dir() else base
    audio = _scan(audio_dir, AUDIO_SUFFIXES, "audio", skipped)
    video: dict[Key, Path] = {}
    frames: dict[Key, Path] = {}
    for name in VISUAL_FOLDERS:
        if (base / name).is_dir():
            for key, path in _scan(base / name, VIDEO_SUFFIXES, "video", skipped).items():
                video.setdefault(key, path)  # AudioVisualClip (has sound) wins over VideoData
            for key, path in _scan_frames(base / name).items():
                frames.setdefault(key, path)
    return audio, video, frames


def _record(
    key: Key,
    audio: dict[Key, Path],
    video: dict[Key, Path],
    frames: dict[Key, Path],
    sentences: dict[tuple[str | None, str, int], str],
    src: Path,
) -> dict[str, object]:
    """The sample of one clip; a speaker-specific sentence wins over one for every speaker."""
    spk, code, num = key
    return {
        "id": f"{spk}_{code}{num:02d}",
        "speaker": spk,
        "emotion": canonical_emotion(CODES[code], source=src),
        "audio": audio.get(key),
        "video": video.get(key),
        "frames": frames.get(key),
        "transcript": sentences.get(key, sentences.get((None, code, num))),
        "code": code,
        "number": num,
    }


@CORPORA.register("savee")
def load_savee(
    root: str | Path,
    *,
    transcripts: str | Path | None = None,
    require_audio: bool = False,
) -> pd.DataFrame:
    """Load SAVEE into a sample table.

    Accepted layout (paths relative to ``root``)::

        AudioData/<spk>/<code><nn>.wav          audio (or, without AudioData/,
                                                <spk>_<code><nn>.wav anywhere under root)
        AudioVisualClip/<spk>/<code><n>.avi     video (optional)
        VideoData/<spk>/<code><n>.avi           video (optional, if no AudioVisualClip twin)
        VideoData/<spk>/<code><n>/*.jpg|png     frame folder (optional)
        *transcript*[.txt|.csv|.tsv]            sentences (optional)

    Audio and visual files are matched by speaker, code and sentence number
    (``a1`` and ``a01`` are the same clip); a clip with video but no audio is
    kept (unless ``require_audio``).

    Transcript formats. A ``.csv``/``.tsv`` file with a header holding a
    clip column (``file``, ``clip``, ``code``, ``id`` or ``name``; values
    such as ``a01``, ``a01.wav``, ``DC_a01`` or ``DC/a01.wav``), a sentence
    column (``sentence``, ``transcript`` or ``text``) and optionally a
    ``speaker`` column. Any other file: one clip per line,
    ``<clip> <sentence>`` separated by spaces, a tab, ``:`` or ``,``
    (e.g. ``a01 She had your dark suit in greasy wash water all year.``),
    blank and ``#`` lines ignored. A clip without a speaker applies to every
    speaker (SAVEE speakers read the same sentences); a speaker-specific
    entry wins.

    Parameters
    ----------
    root
        SAVEE folder.
    transcripts
        Transcript file (absolute or relative to ``root``); default: every
        file directly in ``root`` whose name contains ``transcript``.
    require_audio
        Drop clips that have no audio file.

    Returns
    -------
    pandas.DataFrame
        Sample table, shape ``(n_clips, 11)``; extras ``code`` (SAVEE
        emotion code) and ``number`` (sentence number). Ids look like ``DC_a01``.

    Raises
    ------
    DataError
        Missing root, malformed transcript file, or no clip taken (the
        message says why). Media files that cannot be used (other names,
        unknown emotion code, no speaker, duplicate, Git LFS pointer,
        unreadable, empty) are not errors: they are reported in one warning
        line (each file at DEBUG, ``mmfer -v``) and listed in
        ``table.attrs["skipped"]``.
    """
    base = corpus_root(root, "SAVEE")
    skipped = Skipped("SAVEE")
    audio, video, frames = _scan_media(base, skipped)
    sentences: dict[tuple[str | None, str, int], str] = {}
    for path in _transcript_files(base, transcripts):
        sentences.update(_read_transcripts(path))
    keys = sorted(set(audio) | (set() if require_audio else set(video) | set(frames)))
    records = Records()
    for key in keys:
        src = audio.get(key) or video.get(key) or frames[key]
        records.add(_record(key, audio, video, frames, sentences, src), src)
    n_files = sum(1 for k in keys if k in audio) + sum(1 for k in keys if k in video)
    return finish_table(
        records.values(), corpus="savee", name="SAVEE", root=base, skipped=skipped, taken=n_files
    )
