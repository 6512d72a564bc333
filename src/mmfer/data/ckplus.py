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
from mmfer.data.table import FRAME_IMAGES, join_frame_images
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
_FRAME = re.compile(r"^(?P<subject>S\d+)_(?P<seq>\d+)_(?P<frame>\d+)$")
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
                    # no ``frames`` column: the face extractor prefers a frames folder over the
                    # image, so every peak (and onset) row would get the whole sequence
                    "image": frame,
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


def _frame_number(record: dict[str, object]) -> int | None:
    """Frame number of an image record (``S005_001_00000011`` -> 11), ``None`` for an odd name."""
    m = _FRAME.match(Path(str(record["image"])).stem.strip())
    return None if m is None else int(m["frame"])


def _sequence_problem(seq: str, rows: list[dict[str, object]]) -> tuple[str, str] | None:
    """``(kind, detail)`` of why ``rows`` (sorted by frame number) cannot form ``seq``, or ``None``."""
    numbers = [_frame_number(r) for r in rows]
    odd = [Path(str(r["image"])).name for r, n in zip(rows, numbers, strict=True) if n is None]
    if odd:
        detail = f"{seq}: {odd[0]} does not end in a frame number (S005_001_00000011.png)"
        return "CK+ sequence with an odd frame name", detail
    nums = [n for n in numbers if n is not None]
    if nums != list(range(nums[0], nums[0] + len(nums))):
        missing = sorted(set(range(nums[0], nums[-1] + 1)) - set(nums))
        detail = f"{seq}: frames {', '.join(map(str, nums))} are not consecutive (missing {missing[:5]})"
        return "CK+ sequence with missing frames", detail
    return None


def _group_sequences(frames: list[dict[str, object]], skipped: Skipped) -> list[dict[str, object]]:
    """One record per CK+ sequence from its image records: frames in order in ``frame_images``.

    ``image`` is the last (peak) frame, so the row is also a valid still-image sample
    (duplicate checks hash it); the face features come from ``frame_images``. A sequence
    with an odd frame name or a gap in its frame numbers is not taken (each of its files
    is listed with the reason).

    Raises
    ------
    DataError
        The frames of one sequence carry different emotions (two class folders).
    """
    by_seq: dict[str, list[dict[str, object]]] = {}
    for r in frames:
        by_seq.setdefault(str(r["sequence"]), []).append(r)
    records = Records()
    for seq, rows in by_seq.items():
        # odd names (None) sort last; they make the sequence unusable anyway
        rows = sorted(rows, key=lambda r: (_frame_number(r) is None, _frame_number(r) or 0))
        problem = _sequence_problem(seq, rows)
        if problem is not None:
            for r in rows:
                skipped.add(Path(str(r["image"])), *problem)
            continue
        emotions = {str(r["emotion"]) for r in rows}
        if len(emotions) > 1:
            where = ", ".join(str(r["image"]) for r in rows)
            raise DataError(
                Path(str(rows[-1]["image"])),
                f"frames of CK+ sequence {seq} carry different emotions {sorted(emotions)}: {where}",
            )
        last = rows[-1]
        records.add(
            {
                "id": seq,
                "speaker": last["speaker"],
                "emotion": last["emotion"],
                "image": last["image"],
                FRAME_IMAGES: join_frame_images([str(r["image"]) for r in rows]),
                "sequence": seq,
                "n_frames": len(rows),
            },
            Path(str(last["image"])),
        )
    return records.values()


def _check_options(layout: str, last_n: int, include_neutral: bool, as_sequences: bool) -> None:
    """ConfigError on a bad :func:`load_ckplus` option."""
    if layout not in ("auto", "original", "folders"):
        raise ConfigError(f"ckplus layout must be auto, original or folders; got {layout!r}")
    if not isinstance(last_n, int) or last_n < 1:
        raise ConfigError(f"ckplus last_n must be an integer >= 1; got {last_n!r}")
    if as_sequences and include_neutral:
        raise ConfigError(
            "ckplus as_sequences: the neutral onset is a frame of the sequence, not a sample;"
            " drop include_neutral"
        )


@CORPORA.register("ckplus")
def load_ckplus(
    root: str | Path,
    *,
    layout: Literal["auto", "original", "folders"] = "auto",
    last_n: int = 1,
    include_neutral: bool = False,
    as_sequences: bool = False,
) -> pd.DataFrame:
    """Load CK+ into a sample table: one still image per row, or one sequence per row.

    Two layouts, detected automatically:

    - ``original``: ``cohn-kanade-images/Sxxx/nnn/Sxxx_nnn_xxxxxxxx.png``
      and ``Emotion/Sxxx/nnn/Sxxx_nnn_xxxxxxxx_emotion.txt`` (both may sit one
      or two folders below ``root``). Only labelled sequences are used: their
      last ``last_n`` frames (the expression peak) become samples with the
      sequence folder in ``frames``; with ``include_neutral`` the first frame
      is also a ``neutral`` sample.
    - ``folders`` (CK+48 and similar): ``<root>/<emotion>/<Sxxx_nnn_...>.png``,
      the folder name being the emotion.

    With ``as_sequences`` every sequence becomes ONE sample whose face is its images in
    frame order (``frame_images`` column, one time step per image, each image's features
    the same as in the one-image-per-row table): CK+48's three frames, or the last
    ``last_n`` frames of an original-layout sequence. Set ``fusion.steps`` to the number
    of frames so a recurrent model sees the change of expression.

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
    as_sequences
        One sample per sequence (see above); not with ``include_neutral``.

    Returns
    -------
    pandas.DataFrame
        Sample table, shape ``(n_images, 11)``; speaker is the subject
        (``S005``), id the image stem. Extras ``sequence`` (``S005_001``) and
        ``frame_role`` (``peak`` / ``onset``). With ``as_sequences``: shape
        ``(n_sequences, 12)``, id the sequence (``S005_001``), ``image`` its last
        frame, extras ``frame_images``, ``sequence``, ``n_frames``.

    Raises
    ------
    ConfigError
        Bad ``layout`` or ``last_n``, or ``as_sequences`` with ``include_neutral``.
    DataError
        Missing root, label file with an unknown code or not a number, a
        labelled sequence without images, duplicate image id, or no image
        taken. Images that cannot be used (unknown class folder, name without
        subject id, Git LFS pointer, unreadable, empty; with ``as_sequences``
        every frame of a sequence with an odd frame name or a gap in its frame
        numbers) are reported in one
        warning line (each file at DEBUG, ``mmfer -v``) and listed in
        ``table.attrs["skipped"]``.
    """
    _check_options(layout, last_n, include_neutral, as_sequences)
    base = corpus_root(root, "CK+")
    skipped = Skipped("CK+")
    images = _find_dir(base, "cohn-kanade-images")
    if layout == "original" or (layout == "auto" and images is not None):
        if images is None:
            raise DataError(base, "no cohn-kanade-images/ folder (CK+ original layout)")
        records = _load_sequences(base, images, last_n, include_neutral, skipped)
    else:
        records = _load_folders(base, skipped)
    taken = len(records)
    if as_sequences:
        records = _group_sequences(records, skipped)
        taken = sum(int(r["n_frames"]) for r in records)
    return finish_table(records, corpus="ckplus", name="CK+", root=base, skipped=skipped, taken=taken)
