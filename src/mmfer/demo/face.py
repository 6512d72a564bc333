"""The cartoon face renderer: expressions, poses and the frames of one clip (OpenCV drawing)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from mmfer.demo.blend import Blendable
from mmfer.demo.identity import SpeakerIdentity


@dataclass(frozen=True)
class Expression(Blendable):
    """Facial action parameters at full intensity (neutral = all at rest).

    ``mouth_curve`` > 0 lifts the mouth corners (smile), < 0 drops them
    (frown), in units of the mouth half-width; ``mouth_open`` opens the lips
    (fraction of the mouth half-width); ``brow_tilt`` > 0 lowers the inner
    brow ends (anger), < 0 raises them (sadness, fear); ``brow_raise`` lifts
    both brows; ``eye_open`` scales the eye height; ``mouth_width`` scales the
    mouth width; ``asym`` lifts one mouth corner only (contempt).
    """

    mouth_curve: float = 0.0
    mouth_open: float = 0.05
    brow_tilt: float = 0.0
    brow_raise: float = 0.0
    eye_open: float = 1.0
    mouth_width: float = 1.0
    asym: float = 0.0


#: Apex expression of each canonical emotion (FACS-inspired, cartoon-scaled).
EXPRESSIONS: dict[str, Expression] = {
    "neutral": Expression(),
    "calm": Expression(mouth_curve=0.12, mouth_open=0.0, eye_open=0.8),
    "happy": Expression(mouth_curve=0.6, mouth_open=0.35, brow_raise=0.15, eye_open=0.75, mouth_width=1.2),
    "sad": Expression(
        mouth_curve=-0.45, mouth_open=0.03, brow_tilt=-0.9, brow_raise=0.1, eye_open=0.75, mouth_width=0.9
    ),
    "angry": Expression(
        mouth_curve=-0.15, mouth_open=0.12, brow_tilt=1.0, brow_raise=-0.6, eye_open=0.7, mouth_width=0.85
    ),
    "fearful": Expression(
        mouth_curve=-0.15, mouth_open=0.5, brow_tilt=-0.6, brow_raise=0.7, eye_open=1.45, mouth_width=1.15
    ),
    "disgust": Expression(
        mouth_curve=-0.3,
        mouth_open=0.12,
        brow_tilt=0.5,
        brow_raise=-0.3,
        eye_open=0.65,
        mouth_width=0.95,
        asym=0.15,
    ),
    "surprised": Expression(mouth_curve=0.0, mouth_open=1.0, brow_raise=1.0, eye_open=1.55, mouth_width=0.7),
    "contempt": Expression(mouth_curve=0.05, mouth_open=0.0, eye_open=0.9, asym=0.45),
}


@dataclass(frozen=True)
class Pose:
    """Where the head is in one frame: centre (pixels), scale, in-plane angle (degrees)."""

    cx: float
    cy: float
    scale: float = 1.0
    angle: float = 0.0


# Drawing uses OpenCV's fixed-point coordinates (``shift``) for sub-pixel shapes,
# so small expression changes are visible even at 48-96 px.
_SHIFT = 4
_ONE = 1 << _SHIFT
# Face lighting (fractions toward white / black), eye-white colour and the least
# skin/background luma contrast: tuned so OpenCV's frontal-face Haar cascade finds
# ~95 % of faces across skin tones (flat cartoon faces are found far less often);
# the contrast is identity.BG_CONTRAST.
_LIT = 0.35
_DARK = 0.5
_WHITE = (200, 200, 195)
_IRIS = 0.6


def _fp(x: float, y: float) -> tuple[int, int]:
    return (round(x * _ONE), round(y * _ONE))


def _ellipse(
    img: np.ndarray,
    centre: tuple[float, float],
    axes: tuple[float, float],
    colour: Sequence[float] | float,
    *,
    arc: tuple[int, int] = (0, 360),
    thickness: int = -1,
) -> None:
    """Anti-aliased sub-pixel ellipse (filled unless ``thickness`` > 0), drawn in place."""
    import cv2

    cv2.ellipse(img, _fp(*centre), _fp(*axes), 0, arc[0], arc[1], colour, thickness, cv2.LINE_AA, _SHIFT)


def render_face(
    identity: SpeakerIdentity,
    expression: Expression,
    pose: Pose,
    *,
    size: int,
    talk: float = 0.0,
    gaze: tuple[float, float] = (0.0, 0.0),
) -> np.ndarray:
    """Draw one noise-free cartoon face frame.

    Parameters
    ----------
    identity
        The speaker (colours, head shape, eye spacing, ...).
    expression
        Facial parameters of this frame (already blended by intensity).
    pose
        Head centre (pixels), scale and in-plane rotation.
    size
        Frame width and height in pixels.
    talk
        Extra mouth opening from speech in this frame, 0-1.
    gaze
        Pupil offset as a fraction of the eye radius (x, y).

    Returns
    -------
    numpy.ndarray
        ``(size, size, 3)`` uint8 RGB frame.
    """
    import cv2

    img = np.empty((size, size, 3), np.uint8)
    img[:] = identity.background
    cx, cy = pose.cx, pose.cy
    a = identity.head_width * size * pose.scale  # head half-width (px)
    b = a * identity.head_aspect  # head half-height (px)
    _draw_head(img, identity, cx, cy, a, b)

    e = expression
    shade = tuple(int(v * 0.78) for v in identity.skin)
    eye_y = cy - 0.12 * b
    ex = identity.eye_spacing * a
    _shade_face(img, cx, cy, a, b, eye_y, ex)
    dark = tuple(int(v * 0.35) for v in identity.hair)
    ew = _draw_eyes(img, identity, e, (cx, eye_y), ex, a, gaze, dark)
    _draw_brows(
        img,
        identity,
        e,
        (cx, eye_y),
        (ex, ew),
        b,
        round(size / 40 * identity.brow_thickness * pose.scale),
        dark,
    )

    # Nose: a shaded wedge (also gives a cascade detector its bright-ridge cue).
    nose = np.array(
        [_fp(cx, cy - 0.02 * b), _fp(cx - 0.12 * a, cy + 0.22 * b), _fp(cx + 0.1 * a, cy + 0.24 * b)]
    )
    cv2.fillPoly(img, [nose], shade, cv2.LINE_AA, _SHIFT)
    _draw_mouth(img, identity, e, (cx, cy + 0.5 * b), a, talk)

    if pose.angle:
        m = cv2.getRotationMatrix2D((cx, cy), pose.angle, 1.0)
        img = cv2.warpAffine(img, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return img


def _draw_head(img: np.ndarray, identity: SpeakerIdentity, cx: float, cy: float, a: float, b: float) -> None:
    """Shoulders first so the head overlaps them; hair is a larger ellipse behind the face."""
    _ellipse(img, (cx, cy + b * 1.75), (a * 1.9, b * 0.9), identity.shirt)
    _ellipse(img, (cx, cy + b * 0.85), (a * 0.38, b * 0.4), identity.skin)
    _ellipse(img, (cx, cy - b * 0.12), (a * 1.07, b * 0.98), identity.hair)
    _ellipse(img, (cx, cy), (a, b), identity.skin)
    _ellipse(img, (cx, cy - b * 0.62), (a * 0.92, b * 0.42), identity.hair, arc=(180, 360))


def _draw_eyes(
    img: np.ndarray,
    identity: SpeakerIdentity,
    e: Expression,
    centre: tuple[float, float],
    ex: float,
    a: float,
    gaze: tuple[float, float],
    dark: tuple[int, ...],
) -> float:
    """Eyes (white, iris, pupil, upper lid) ``ex`` px either side of ``centre``; returns their half-width.

    The eye height carries ``eye_open``.
    """
    import cv2

    cx, eye_y = centre
    ew = 0.19 * a * identity.eye_size
    eh = max(0.08 * ew, 0.55 * ew * e.eye_open)
    for side in (-1.0, 1.0):
        x = cx + side * ex
        _ellipse(img, (x, eye_y), (ew, eh), _WHITE)
        r = min(_IRIS * ew, 0.95 * eh)
        ix, iy = x + gaze[0] * 0.35 * ew, eye_y + gaze[1] * 0.25 * eh
        cv2.circle(img, _fp(ix, iy), round(r * _ONE), (60, 45, 35), -1, cv2.LINE_AA, _SHIFT)
        cv2.circle(img, _fp(ix, iy), round(0.5 * r * _ONE), (10, 10, 10), -1, cv2.LINE_AA, _SHIFT)
        # Upper lid line: makes narrowed eyes read as narrowed, not just small.
        _ellipse(img, (x, eye_y), (ew, eh), dark, arc=(180, 360), thickness=1)
    return ew


def _draw_brows(
    img: np.ndarray,
    identity: SpeakerIdentity,
    e: Expression,
    centre: tuple[float, float],
    eye: tuple[float, float],
    b: float,
    thickness: int,
    dark: tuple[int, ...],
) -> None:
    """Brows above the eyes (``eye`` = spacing, half-width): the inner end goes down with
    ``brow_tilt`` > 0 (anger), up with < 0 (sadness)."""
    import cv2

    cx, eye_y = centre
    ex, ew = eye
    tilt = e.brow_tilt + identity.brow_bias
    brow_y = eye_y - 0.2 * b - e.brow_raise * 0.09 * b
    thick = max(1, thickness)
    for side in (-1.0, 1.0):
        inner = (cx + side * (ex - 0.55 * ew), brow_y + tilt * 0.075 * b)
        outer = (cx + side * (ex + 1.25 * ew), brow_y - tilt * 0.02 * b)
        cv2.line(img, _fp(*inner), _fp(*outer), dark, thick, cv2.LINE_AA, _SHIFT)


def _draw_mouth(
    img: np.ndarray,
    identity: SpeakerIdentity,
    e: Expression,
    centre: tuple[float, float],
    a: float,
    talk: float,
) -> None:
    """The mouth at ``centre``: the upper lip is a parabola through the centre whose corners
    rise with ``mouth_curve``; the lower lip lies below it by the opening."""
    import cv2

    cx, my = centre
    size = img.shape[0]
    mw = 0.42 * a * identity.mouth_width * e.mouth_width
    curve = e.mouth_curve + identity.mouth_bias
    opening = max(0.0, e.mouth_open + talk) * 0.75 * mw
    xs = np.linspace(-1.0, 1.0, 17)
    lift = (curve + e.asym * (xs > 0)) * 0.45 * mw * xs**2  # corner height, px
    gape = np.sqrt(1 - xs**2)  # elliptic profile: an open mouth reads as an "O"
    upper_y = my - lift - 0.3 * opening * gape
    lower_y = my - lift + (0.7 * opening + 0.8) * gape + 0.6
    pts_up = [_fp(cx + x * mw, y) for x, y in zip(xs, upper_y, strict=True)]
    pts_lo = [_fp(cx + x * mw, y) for x, y in zip(xs[::-1], lower_y[::-1], strict=True)]
    poly = np.array(pts_up + pts_lo, np.int32)
    cv2.fillPoly(img, [poly], (70, 15, 25), cv2.LINE_AA, _SHIFT)
    lip = (
        min(255, int(identity.skin[0] * 0.8 + 40)),
        int(identity.skin[1] * 0.55),
        int(identity.skin[2] * 0.55),
    )
    cv2.polylines(img, [poly], True, lip, max(1, round(size / 80)), cv2.LINE_AA, _SHIFT)


def _shade_face(img: np.ndarray, cx: float, cy: float, a: float, b: float, eye_y: float, ex: float) -> None:
    """Soft lighting on the face, in place: lit forehead, nose ridge and cheeks, shaded eye sockets.

    Real faces are read (by people and by Haar cascades) from this light/dark
    layout; flat cartoon skin, especially dark skin, lacks it.
    """
    import cv2

    size = img.shape[0]
    light = np.zeros((size, size), np.float32)  # +: toward white, -: toward black
    _ellipse(light, (cx, cy - 0.35 * b), (0.6 * a, 0.2 * b), _LIT)  # forehead
    _ellipse(light, (cx, cy + 0.05 * b), (0.11 * a, 0.3 * b), _LIT)  # nose ridge
    for side in (-1.0, 1.0):
        _ellipse(light, (cx + side * 0.55 * a, cy + 0.22 * b), (0.25 * a, 0.16 * b), 0.7 * _LIT)  # cheek
        _ellipse(light, (cx + side * ex, eye_y), (0.3 * a, 0.16 * b), -_DARK)  # eye socket
    light = cv2.GaussianBlur(light, (0, 0), max(0.8, 0.09 * a))
    head = np.zeros((size, size), np.float32)
    _ellipse(head, (cx, cy), (a, b), 1.0)
    light = (light * head)[..., None]  # (size, size, 1)
    out = img.astype(np.float32)
    out = np.where(light > 0, out + (255.0 - out) * light, out * (1.0 + light))
    img[:] = np.clip(out, 0, 255).astype(np.uint8)


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def expression_track(
    identity: SpeakerIdentity,
    emotion: str,
    *,
    intensity: float,
    times: np.ndarray,
    seconds: float,
    rng: np.random.Generator,
) -> list[Expression]:
    """Per-frame expressions of one clip: neutral until an onset, then a smooth rise to the apex.

    Parameters
    ----------
    identity
        Speaker; its ``expressiveness`` scales the apex.
    emotion
        Canonical emotion whose :data:`EXPRESSIONS` prototype is the apex.
    intensity
        Clip intensity, 0-1.
    times
        ``(T,)`` frame times in seconds.
    seconds
        Clip length; onset and rise time are drawn as fractions of it.
    rng
        Random stream of this clip (onset, rise, per-clip deviation of the apex).

    Returns
    -------
    list of Expression
        ``T`` expressions, the first ones neutral.
    """
    # Real clips start near neutral and reach the apex part-way through.
    onset = rng.uniform(0.05, 0.35) * seconds
    rise = rng.uniform(0.2, 0.4) * seconds
    ramp = _smoothstep((np.asarray(times) - onset) / rise) * intensity * identity.expressiveness  # (T,)
    # Per-clip deviation from the prototype keeps classes overlapping a little.
    apex = Expression(**{k: v + rng.normal(0.0, 0.07) for k, v in asdict(EXPRESSIONS[emotion]).items()})
    base = EXPRESSIONS["neutral"]
    return [base.blend(apex, float(w)) for w in ramp]


def render_clip_frames(
    identity: SpeakerIdentity,
    emotion: str,
    *,
    intensity: float,
    envelope: np.ndarray,
    seconds: float,
    fps: int,
    size: int,
    sample_rate: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """Frames of one clip: expression ramps onset -> apex, the head moves, noise is added.

    Returns
    -------
    numpy.ndarray
        ``(T, size, size, 3)`` uint8 RGB, ``T = round(seconds * fps)``.
    """
    n_frames = max(1, round(seconds * fps))
    t = np.arange(n_frames) / fps  # (T,) seconds
    track = expression_track(identity, emotion, intensity=intensity, times=t, seconds=seconds, rng=rng)
    # Head placement and slow motion (sway + nod + roll).
    cx0 = size / 2 + rng.normal(0.0, 0.05 * size)
    cy0 = size * 0.46 + rng.normal(0.0, 0.04 * size)
    scale0 = rng.uniform(0.85, 1.1)
    amp = rng.uniform(0.005, 0.03) * size
    freq, phase = rng.uniform(0.2, 0.9), rng.uniform(0, 2 * np.pi)
    roll0, roll_amp = rng.normal(0.0, 4.0), rng.uniform(0.0, 4.0)
    gaze = (float(rng.normal(0.0, 0.4)), float(rng.normal(0.0, 0.3)))
    noise_sigma = rng.uniform(2.0, 7.0)
    gain = rng.uniform(0.85, 1.12)
    # Mouth follows the voice: sample the envelope (0-1) at frame times.
    idx = np.minimum((t * sample_rate).astype(int), len(envelope) - 1)
    talk = 0.35 * envelope[idx]  # (T,)

    frames = np.empty((n_frames, size, size, 3), np.uint8)
    for i in range(n_frames):
        s = np.sin(2 * np.pi * freq * t[i] + phase)
        pose = Pose(
            cx=cx0 + amp * s,
            cy=cy0 + 0.5 * amp * np.sin(2 * np.pi * 1.7 * freq * t[i]),
            scale=scale0 * (1 + 0.02 * s),
            angle=roll0 + roll_amp * np.sin(2 * np.pi * 0.6 * freq * t[i] + 1.0),
        )
        img = render_face(identity, track[i], pose, size=size, talk=float(talk[i]), gaze=gaze).astype(
            np.float32
        )
        img = img * gain + rng.normal(0.0, noise_sigma, img.shape).astype(np.float32)
        frames[i] = np.clip(img, 0, 255).astype(np.uint8)
    return frames
