"""Synthetic speakers: the per-speaker look and voice drawn from ``(seed, index)``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# Separate random streams so that, e.g., changing the voice does not change faces.
STREAM_IDENTITY, STREAM_CLIP, STREAM_TEXT = 0, 1, 2
# Least skin/background luma contrast, so OpenCV's Haar cascade finds the head outline.
BG_CONTRAST = 60


@dataclass(frozen=True)
class SpeakerIdentity:
    """Everything that makes one synthetic speaker recognisable across clips.

    Colours are RGB tuples in 0-255; geometric sizes are fractions (of the
    frame for the head, of the head half-width for facial parts).
    """

    index: int
    skin: tuple[int, int, int]
    hair: tuple[int, int, int]
    background: tuple[int, int, int]
    shirt: tuple[int, int, int]
    #: Head half-width as a fraction of the frame size.
    head_width: float
    #: Head height / width.
    head_aspect: float
    #: Horizontal eye offset from the face centre, fraction of head half-width.
    eye_spacing: float
    eye_size: float
    mouth_width: float
    brow_thickness: float
    #: Resting-face biases added to every expression (idiosyncrasy).
    mouth_bias: float
    brow_bias: float
    #: How strongly this speaker expresses emotions (face and voice), ~0.7-1.1.
    expressiveness: float
    #: Base fundamental frequency (Hz) and vocal-tract formant scale.
    f0: float
    formant_scale: float
    #: Speaking-rate multiplier, loudness offset (dB) and spectral-tilt offset.
    rate: float
    loudness_db: float
    tilt: float


_SKIN_TONES = (
    (255, 224, 189),
    (241, 194, 125),
    (224, 172, 105),
    (198, 134, 66),
    (141, 85, 36),
    (101, 67, 33),
)
_HAIR_COLOURS = ((25, 20, 20), (70, 45, 25), (120, 80, 40), (205, 170, 100), (150, 150, 150), (160, 60, 30))


def _luma(rgb: Sequence[float]) -> float:
    return 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]


def _jitter_colour(rng: np.random.Generator, rgb: Sequence[int], amount: float) -> tuple[int, int, int]:
    c = np.clip(np.asarray(rgb, dtype=float) + rng.normal(0.0, amount, 3), 0, 255)
    return (int(c[0]), int(c[1]), int(c[2]))


def speaker_identity(seed: int, index: int) -> SpeakerIdentity:
    """Draw the identity of synthetic speaker ``index`` (0-based) for ``seed``.

    The identity depends only on ``(seed, index)``, not on how many speakers
    or emotions the corpus has, so adding speakers never changes old ones.
    """
    import cv2

    rng = np.random.default_rng([seed, STREAM_IDENTITY, index])
    skin = _jitter_colour(rng, _SKIN_TONES[int(rng.integers(len(_SKIN_TONES)))], 8.0)
    hair = _jitter_colour(rng, _HAIR_COLOURS[int(rng.integers(len(_HAIR_COLOURS)))], 6.0)
    # A background close to the skin in brightness hides the head outline (from
    # viewers and face detectors alike): redraw until the contrast is clear.
    for _ in range(100):
        hsv = np.array([[[rng.integers(0, 180), rng.integers(40, 160), rng.integers(40, 250)]]], np.uint8)
        bg = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0].astype(float)
        if abs(_luma(bg) - _luma(skin)) >= BG_CONTRAST:
            break
    shirt = _jitter_colour(rng, rng.integers(20, 230, 3).tolist(), 0.0)
    low_voice = bool(rng.random() < 0.5)
    return SpeakerIdentity(
        index=index,
        skin=skin,
        hair=hair,
        background=(int(bg[0]), int(bg[1]), int(bg[2])),
        shirt=shirt,
        head_width=float(rng.uniform(0.25, 0.31)),
        head_aspect=float(rng.uniform(1.15, 1.38)),
        eye_spacing=float(rng.uniform(0.34, 0.48)),
        eye_size=float(rng.uniform(0.85, 1.15)),
        mouth_width=float(rng.uniform(0.85, 1.15)),
        brow_thickness=float(rng.uniform(0.8, 1.3)),
        mouth_bias=float(rng.normal(0.0, 0.08)),
        brow_bias=float(rng.normal(0.0, 0.15)),
        expressiveness=float(rng.uniform(0.7, 1.1)),
        f0=float(rng.uniform(95, 140) if low_voice else rng.uniform(170, 235)),
        formant_scale=float(rng.uniform(0.92, 1.02) if low_voice else rng.uniform(1.08, 1.2)),
        rate=float(rng.uniform(0.85, 1.15)),
        loudness_db=float(rng.normal(0.0, 1.5)),
        tilt=float(rng.normal(0.0, 0.12)),
    )
