"""Types shared by the inference modules: :class:`Prediction` and input resolution.

Both :mod:`mmfer.inference.predictor` and :mod:`mmfer.inference.compose` build
on this module instead of importing each other; it depends on nothing in
mmfer but :mod:`mmfer.errors`.

The kind of each input is read from its extension:

=========  ==================================  =====================================
kind       extensions                          modalities it can give
=========  ==================================  =====================================
video      mp4 avi flv mkv webm mov m4v        face frames, its audio track, text*
audio      wav flac ogg mp3 m4a                audio, text*
image      png jpg jpeg bmp tif tiff webp      face, text*
text       txt                                 text
=========  ==================================  =====================================

\\* text comes from the ``transcript`` argument, else from a sidecar ``.txt``
file with the same stem next to the input (``clip.mp4`` + ``clip.txt``).
"""

from __future__ import annotations

import dataclasses
import glob
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmfer.errors import DataError

__all__ = [
    "AUDIO_EXTENSIONS",
    "IMAGE_EXTENSIONS",
    "KIND_MODALITIES",
    "SUPPORTED_EXTENSIONS",
    "TEXT_EXTENSIONS",
    "VIDEO_EXTENSIONS",
    "Prediction",
    "has_glob",
    "input_kind",
    "resolve_inputs",
    "supported_list",
    "without_path",
]

VIDEO_EXTENSIONS: frozenset[str] = frozenset({".mp4", ".avi", ".flv", ".mkv", ".webm", ".mov", ".m4v"})
AUDIO_EXTENSIONS: frozenset[str] = frozenset({".wav", ".flac", ".ogg", ".mp3", ".m4a"})
IMAGE_EXTENSIONS: frozenset[str] = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"})
TEXT_EXTENSIONS: frozenset[str] = frozenset({".txt"})
SUPPORTED_EXTENSIONS: frozenset[str] = (
    VIDEO_EXTENSIONS | AUDIO_EXTENSIONS | IMAGE_EXTENSIONS | TEXT_EXTENSIONS
)

#: Modalities each input kind can provide (text only when a transcript is found/given).
KIND_MODALITIES: dict[str, tuple[str, ...]] = {
    "video": ("face", "audio", "text"),
    "audio": ("audio", "text"),
    "image": ("face", "text"),
    "text": ("text",),
}


def input_kind(path: str | Path) -> str | None:
    """``"video"``, ``"audio"``, ``"image"``, ``"text"`` from the extension, ``None`` if unsupported."""
    ext = Path(path).suffix.lower()
    for kind, exts in (
        ("video", VIDEO_EXTENSIONS),
        ("audio", AUDIO_EXTENSIONS),
        ("image", IMAGE_EXTENSIONS),
        ("text", TEXT_EXTENSIONS),
    ):
        if ext in exts:
            return kind
    return None


# --------------------------------------------------------------------------- results


@dataclass
class Prediction:
    """The prediction for one input.

    Attributes
    ----------
    path
        The input file (or ``"<text>"`` for :meth:`Predictor.predict_text`).
    label
        Most probable emotion; ``None`` when ``error`` is set.
    probabilities
        Emotion -> probability (sums to 1), in the checkpoint's label order; empty on error.
    modalities_used
        Modalities of the model that this input provided (e.g. ``["audio", "text"]``).
    modalities_missing
        Modality of the model -> why it was masked for this input.
    modalities_ignored
        Modalities the input has but the model was not trained on (not extracted).
    partial
        Some modality of the model was masked (the prediction rests on fewer cues).
    error
        Why no prediction could be made (names the file), else ``None``.
    notes
        Remarks that do not mask anything: ``face`` -> detection outcome ("face found
        in 14/16 frames"), ``speaker_norm`` -> which statistics normalised the clip,
        ``fusion`` -> how a composed model combined its parts.
    """

    path: str
    label: str | None = None
    probabilities: dict[str, float] = field(default_factory=dict)
    modalities_used: list[str] = field(default_factory=list)
    modalities_missing: dict[str, str] = field(default_factory=dict)
    modalities_ignored: list[str] = field(default_factory=list)
    partial: bool = False
    error: str | None = None
    notes: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """A prediction was made (``error`` is ``None``)."""
        return self.error is None

    @property
    def confidence(self) -> float | None:
        """Probability of :attr:`label`, ``None`` on error."""
        return None if self.label is None else self.probabilities[self.label]

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict of every field."""
        return dataclasses.asdict(self)


def without_path(message: str, path: str | Path | None) -> str:
    """Drop a leading ``"<path>: "`` from an error message (the Prediction already names the file)."""
    if path is not None:
        prefix = f"{path}: "
        if message.startswith(prefix):
            return message[len(prefix) :]
    return message


# --------------------------------------------------------------------------- inputs


def has_glob(text: str) -> bool:
    """The text holds a glob wildcard (``*``, ``?`` or ``[``)."""
    return any(ch in text for ch in "*?[")


def _folder_files(folder: Path) -> list[Path]:
    """Supported files of a folder (not recursive), minus ``.txt`` sidecars of media files."""
    files = sorted(p for p in folder.iterdir() if p.is_file() and input_kind(p) is not None)
    media_stems = {p.with_suffix("") for p in files if input_kind(p) != "text"}
    return [p for p in files if input_kind(p) != "text" or p.with_suffix("") not in media_stems]


def resolve_inputs(inputs: str | Path | Iterable[str | Path]) -> list[Path]:
    """Expand inputs into a list of files.

    Parameters
    ----------
    inputs
        A path, a folder (its supported files, sidecar transcripts excluded), a
        glob pattern (``"clips/*.mp4"``, ``"**"`` recursive), or a list of these.

    Returns
    -------
    list[pathlib.Path]
        Files in the given order (each folder/glob sorted), duplicates removed.
        Paths that do not exist, and patterns or folders that match nothing, are
        kept as they are so that :meth:`Predictor.predict` reports them as errors.

    Raises
    ------
    DataError
        No input at all.
    """
    items = [inputs] if isinstance(inputs, (str, Path)) else list(inputs)
    if not items:
        raise DataError(None, "no input given: pass a file, a folder, a glob pattern or a list of them")
    out: list[Path] = []
    for item in items:
        p = Path(item).expanduser()
        if p.is_dir():
            out += _folder_files(p) or [p]
        elif not p.exists() and has_glob(str(item)):
            matched = [Path(m) for m in sorted(glob.glob(str(p), recursive=True))]
            files = [m for m in matched if m.is_file() and input_kind(m) is not None]
            # a pattern like *.* also picks up sidecar transcripts: drop those beside media
            media_stems = {m.with_suffix("") for m in files if input_kind(m) != "text"}
            files = [m for m in files if input_kind(m) != "text" or m.with_suffix("") not in media_stems]
            out += files or [p]
        else:
            out.append(p)
    return list(dict.fromkeys(out))


def supported_list() -> str:
    """``"supported: avi bmp ..."``: the accepted extensions, for error messages."""
    return "supported: " + " ".join(sorted(e.lstrip(".") for e in SUPPORTED_EXTENSIONS))
