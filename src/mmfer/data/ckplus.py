"""CK+ (Extended Cohn-Kanade) loader: original sequences or CK+48 class folders.

Each CK+ sequence goes from a neutral face (first frame) to the peak of one
expression (last frame); 327 of the 593 sequences carry an emotion label.
There is no audio and no transcript: CK+ gives the face modality only.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Literal

import pandas as pd

from mmfer.data.corpora import Records, Skipped, corpus_root, finish_table, image_files, read_text
from mmfer.emotions import canonical_emotion
from mmfer.errors import ConfigError, DataError
from mmfer.registry import CORPORA

#: CK+ ``*_emotion.txt`` code -> emotion.
CODES: dict[int, str] = {
    0: "neutral",
    1: "anger",
    2: "contempt",
    3: "disgust",
    4: "fear",
    5: "happy",
    6: "sadness",
    7: "surprise",
}
_SUBJECT = re.compile(r"^(?P<subject>S\d+)_(?P<seq>\d+)")
_LABEL = re.compile(r"^(?P<subject>S\d+)_(?P<seq>\d+)_\d+_emotion$", re.IGNORECASE)


def _find_dir(base: Path, name: str, depth: int = 2) -> Path | None:
    """First folder called ``name`` (case-insensitive) at most ``depth`` levels under ``base``."""
    level = [base]
    for _ in range(depth + 1):
        for d in level:
            if d.name.lower() == name.lower() and d.is_dir():
                return d
        level = sorted(c for d in level for c in d.iterdir() if c.is_dir() and not c.name.startswith("."))
    return None


def _read_label(path: Path) -> str:
    """Emotion of one ``*_emotion.txt`` (a float such as ``3.0000000e+00``)."""
    text = read_text(path).strip()
    try:
        value = float(text)
    except ValueError:
        raise DataError(path, f"expected one number 0-7 (CK+ emotion code), got {text[:40]!r}") from None
    if not math.isfinite(value) or value != int(value) or int(value) not in CODES:
        raise DataError(path, f"unknown CK+ emotion code {text!r} (valid: 0-7)")
    return canonical_emotion(CODES[int(value)], source=path)


def _load_sequences(
    base: Path, images: Path, last_n: int, include_neutral: bool, skipped: Skipped
) -> list[dict[str, object]]:
    labels = _find_dir(base, "Emotion")
    if labels is None:
        raise DataError(
            base, "CK+ original layout needs an Emotion/ folder of *_emotion.txt next to cohn-kanade-images/"
        )
    records = Records()
    for path in sorted(labels.rglob("*_emotion.txt")):
        m = _LABEL.match(path.stem)
        if m is None:
            raise DataError(path, "CK+ label file name must look like S005_001_00000011_emotion.txt")
        subject, seq = m["subject"], m["seq"]
        emotion = _read_label(path)
        seq_dir = images / subject / seq
        frames = image_files(seq_dir) if seq_dir.is_dir() else []
        if not frames:
            raise DataError(path, f"labelled CK+ sequence has no images in {seq_dir}")
        # With include_neutral the onset frame is the neutral sample, never a peak.
        pool = frames[1:] if include_neutral and len(frames) > 1 else frames
        chosen = [(f, emotion, "peak") for f in pool[-last_n:]]
        if include_neutral and emotion != "neutral":
            chosen.insert(0, (frames[0], "neutral", "onset"))
        for frame, emo, role in chosen:
            if not skipped.usable(frame):
                continue
            records.add(
                {
                    "id": frame.stem,
                    "speaker": subject,
                    "emotion": emo,
                    "image": frame,
                    "frames": seq_dir,
                    "sequence": f"{subject}_{seq}",
                    "frame_role": role,
                },
                frame,
            )
    return records.values()


def _load_folders(base: Path, skipped: Skipped) -> list[dict[str, object]]:
    records = Records()
    for class_dir in sorted(d for d in base.iterdir() if d.is_dir() and not d.name.startswith(".")):
        images = image_files(class_dir)
        if not images:
            continue
        try:
            emotion = canonical_emotion(class_dir.name.strip(), source=class_dir)
        except DataError as e:
            for img in images:
                skipped.add(img, "unknown CK+ class folder", e.problem)
            continue
        for img in images:
            if not skipped.usable(img):
                continue
            m = _SUBJECT.match(img.stem.strip())
            if m is None:
                skipped.add(
                    img, "not a CK+ image name", "must start with the subject and sequence (S005_001_...)"
                )
                continue
            records.add(
                {
                    "id": img.stem,
                    "speaker": m["subject"],
                    "emotion": emotion,
                    "image": img,
                    "sequence": f"{m['subject']}_{m['seq']}",
                    "frame_role": "peak",
                },
                img,
            )
    return records.values()


@CORPORA.register("ckplus")
def load_ckplus(
    root: str | Path,
    *,
    layout: Literal["auto", "original", "folders"] = "auto",
    last_n: int = 1,
    include_neutral: bool = False,
) -> pd.DataFrame:
    """Load CK+ into a sample table (one still image per row).

    Two layouts, detected automatically:

    - ``original``: ``cohn-kanade-images/Sxxx/nnn/Sxxx_nnn_xxxxxxxx.png``
      and ``Emotion/Sxxx/nnn/Sxxx_nnn_xxxxxxxx_emotion.txt`` (both may sit one
      or two folders below ``root``). Only labelled sequences are used: their
      last ``last_n`` frames (the expression peak) become samples with the
      sequence folder in ``frames``; with ``include_neutral`` the first frame
      is also a ``neutral`` sample.
    - ``folders`` (CK+48 and similar): ``<root>/<emotion>/<Sxxx_nnn_...>.png``,
      the folder name being the emotion.

    Parameters
    ----------
    root
        CK+ folder.
    layout
        ``auto``, ``original`` or ``folders``.
    last_n
        Peak frames taken per labelled sequence (original layout), >= 1.
    include_neutral
        Add each labelled sequence's first frame as a neutral sample.

    Returns
    -------
    pandas.DataFrame
        Sample table, shape ``(n_images, 11)``; speaker is the subject
        (``S005``), id the image stem. Extras ``sequence`` (``S005_001``) and
        ``frame_role`` (``peak`` / ``onset``).

    Raises
    ------
    ConfigError
        Bad ``layout`` or ``last_n``.
    DataError
        Missing root, label file with an unknown code or not a number, a
        labelled sequence without images, duplicate image id, or no image
        taken. Images that cannot be used (unknown class folder, name without
        subject id, Git LFS pointer, unreadable, empty) are reported in one
        warning line (each file at DEBUG, ``mmfer -v``) and listed in
        ``table.attrs["skipped"]``.
    """
    if layout not in ("auto", "original", "folders"):
        raise ConfigError(f"ckplus layout must be auto, original or folders; got {layout!r}")
    if not isinstance(last_n, int) or last_n < 1:
        raise ConfigError(f"ckplus last_n must be an integer >= 1; got {last_n!r}")
    base = corpus_root(root, "CK+")
    skipped = Skipped("CK+")
    images = _find_dir(base, "cohn-kanade-images")
    if layout == "original" or (layout == "auto" and images is not None):
        if images is None:
            raise DataError(base, "no cohn-kanade-images/ folder (CK+ original layout)")
        records = _load_sequences(base, images, last_n, include_neutral, skipped)
    else:
        records = _load_folders(base, skipped)
    return finish_table(records, corpus="ckplus", name="CK+", root=base, skipped=skipped)
