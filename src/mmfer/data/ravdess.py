"""RAVDESS (Ryerson Audio-Visual Database of Emotional Speech and Song) loader.

File names have seven two-digit parts ``MM-VC-EE-II-SS-RR-AA``: modality
(01 full audio-video, 02 video-only, 03 audio-only), vocal channel (01
speech, 02 song), emotion (01 neutral ... 08 surprised), intensity (01
normal, 02 strong; none for neutral), statement (01/02), repetition
(01/02) and actor (01-24; odd = male, even = female).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from mmfer.data.corpora import Records, Skipped, corpus_root, finish_table, walk_files
from mmfer.emotions import canonical_emotion
from mmfer.errors import ConfigError, DataError
from mmfer.registry import CORPORA

log = logging.getLogger(__name__)

MODALITIES: dict[str, str] = {"01": "audio-video", "02": "video", "03": "audio"}
VOCAL_CHANNELS: dict[str, str] = {"01": "speech", "02": "song"}
EMOTIONS: dict[str, str] = {
    "01": "neutral",
    "02": "calm",
    "03": "happy",
    "04": "sad",
    "05": "angry",
    "06": "fearful",
    "07": "disgust",
    "08": "surprised",
}
INTENSITIES: dict[str, str] = {"01": "normal", "02": "strong"}
STATEMENTS: dict[str, str] = {
    "01": "Kids are talking by the door",
    "02": "Dogs are sitting by the door",
}
REPETITIONS: tuple[str, ...] = ("01", "02")
N_ACTORS = 24
SUFFIXES: tuple[str, ...] = (".wav", ".flac", ".mp4")
_NAME = re.compile(r"^\d{2}(?:-\d{2}){6}$")


@dataclass(frozen=True)
class _Take:
    """One parsed RAVDESS file name."""

    path: Path
    modality: str
    channel: str
    emotion: str
    intensity: str
    statement: str
    repetition: str
    actor: str

    @property
    def take(self) -> str:
        """The name without its modality part: identical for the audio and video of a take."""
        parts = (self.channel, self.emotion, self.intensity, self.statement, self.repetition, self.actor)
        return "-".join(parts)


def parse_name(path: Path) -> _Take | None:
    """Parse a RAVDESS file name; ``None`` if it is not a 7-part name.

    Raises
    ------
    DataError
        A 7-part name with an invalid code, or a modality that contradicts
        the file type (audio-only code on an ``.mp4``, video code on audio).
    """
    if not _NAME.match(path.stem):
        return None
    mm, vc, ee, ii, ss, rr, aa = path.stem.split("-")
    checks = (
        ("modality", mm, MODALITIES),
        ("vocal channel", vc, VOCAL_CHANNELS),
        ("emotion", ee, EMOTIONS),
        ("intensity", ii, INTENSITIES),
        ("statement", ss, STATEMENTS),
        ("repetition", rr, REPETITIONS),
    )
    for what, code, valid in checks:
        if code not in valid:
            raise DataError(path, f"invalid RAVDESS {what} code {code!r} (valid: {', '.join(valid)})")
    if not 1 <= int(aa) <= N_ACTORS:
        raise DataError(path, f"invalid RAVDESS actor code {aa!r} (valid: 01-{N_ACTORS})")
    if ee == "01" and ii == "02":
        raise DataError(path, "invalid RAVDESS name: neutral (emotion 01) has no strong intensity (02)")
    is_video = path.suffix.lower() == ".mp4"
    if is_video != (mm in ("01", "02")):
        raise DataError(
            path, f"RAVDESS modality {mm} ({MODALITIES[mm]}) does not match the file type {path.suffix}"
        )
    return _Take(path, mm, vc, ee, ii, ss, rr, aa)


def _record(sid: str, takes: list[_Take]) -> dict[str, object]:
    """One sample from the files of one take (one file, or audio + video files)."""
    by_mod: dict[str, _Take] = {}
    for t in takes:
        if t.modality in by_mod:
            other = by_mod[t.modality].path
            raise DataError(t.path, f"two RAVDESS files of the same take and modality: also {other}")
        by_mod[t.modality] = t
    # The separate audio file is preferred to the mp4's sound track (no demuxing needed).
    audio = by_mod.get("03") or by_mod.get("01")
    video = by_mod.get("01") or by_mod.get("02")
    t = takes[0]
    return {
        "id": sid,
        "speaker": t.actor,
        "emotion": canonical_emotion(EMOTIONS[t.emotion], source=t.path),
        "audio": audio.path if audio else None,
        "video": video.path if video else None,
        "transcript": STATEMENTS[t.statement],
        "intensity": INTENSITIES[t.intensity],
        "statement": int(t.statement),
        "repetition": int(t.repetition),
        "vocal_channel": VOCAL_CHANNELS[t.channel],
        "gender": "male" if int(t.actor) % 2 else "female",
        "modality": "+".join(sorted(MODALITIES[m] for m in by_mod)),
    }


@CORPORA.register("ravdess")
def load_ravdess(
    root: str | Path,
    *,
    merge: bool = True,
    vocal_channel: str = "all",
) -> pd.DataFrame:
    """Load RAVDESS into a sample table.

    Files ``MM-VC-EE-II-SS-RR-AA.(wav|flac|mp4)`` are found anywhere under
    ``root`` (``Actor_XX/``, ``Video_Speech_Actor_XX/Actor_XX/``, ...); other
    files (README, ...) are ignored. Audio-only files fill ``audio``,
    video-only files ``video``, full audio-video mp4 files both (``audio`` is
    the mp4 itself: its sound track).

    Parameters
    ----------
    root
        RAVDESS folder.
    merge
        Merge the files of one take (same vocal channel, emotion, intensity,
        statement, repetition and actor; e.g. an audio-only ``.wav`` and a
        video-only ``.mp4``) into one sample whose id is the 6-part name
        without the modality (``01-05-02-01-01-12``). If ``False`` every file
        is a sample with its full 7-part name as id.
    vocal_channel
        ``"all"``, ``"speech"`` or ``"song"``.

    Returns
    -------
    pandas.DataFrame
        Sample table, shape ``(n_samples, 16)``; speaker is the 2-digit actor
        code, transcript the statement. Extras ``intensity`` (normal/strong),
        ``statement`` (1/2), ``repetition`` (1/2), ``vocal_channel``
        (speech/song), ``gender`` and ``modality`` (e.g. ``audio+video``).

    Raises
    ------
    ConfigError
        Unknown ``vocal_channel``.
    DataError
        Missing root, two files for the same take and modality, or no file
        taken. Files that cannot be used (other names, invalid codes, Git LFS
        pointers, unreadable, empty) are reported in one warning line (each
        file at DEBUG, ``mmfer -v``) and listed in ``table.attrs["skipped"]``.
    """
    if vocal_channel not in ("all", *VOCAL_CHANNELS.values()):
        raise ConfigError(f"ravdess vocal_channel must be all, speech or song; got {vocal_channel!r}")
    base = corpus_root(root, "RAVDESS")
    skipped = Skipped("RAVDESS")
    groups: dict[str, list[_Take]] = {}
    for path in walk_files(base, SUFFIXES):
        if not skipped.usable(path):
            continue
        try:
            take = parse_name(path)
        except DataError as e:
            skipped.add(path, "invalid RAVDESS code", e.problem)
            continue
        if take is None:
            skipped.add(
                path, "not a RAVDESS name", "expected 7 two-digit codes, e.g. 03-01-05-01-01-01-12.wav"
            )
            continue
        if vocal_channel != "all" and VOCAL_CHANNELS[take.channel] != vocal_channel:
            continue
        sid = take.take if merge else path.stem
        groups.setdefault(sid, []).append(take)
    records = Records()
    for sid, takes in groups.items():
        if not merge and len(takes) > 1:
            raise DataError(takes[1].path, f"duplicate sample id {sid!r}: also given by {takes[0].path}")
        records.add(_record(sid, takes), takes[0].path)
    n_files = sum(len(takes) for takes in groups.values())
    return finish_table(
        records.values(), corpus="ravdess", name="RAVDESS", root=base, skipped=skipped, taken=n_files
    )
