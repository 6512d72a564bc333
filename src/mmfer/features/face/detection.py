"""Face detection: the largest face box per frame, and fallback boxes for frames without one.

Two detectors (:data:`DETECTORS`, ``FaceConfig.detector``): OpenCV's frontal-face Haar
cascade and dlib's HOG detector (``none`` skips detection). Both run on a grayscale
copy rescaled so its short side lies in ``[min_side, max_side]``
(:class:`RescalingDetector`). A frame where no face is found borrows the box of the
nearest frame of the same clip (:func:`fallback_boxes`, :func:`fallback_boxes_of`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from mmfer.errors import ConfigError
from mmfer.features.face.landmarks import require_dlib

__all__ = [
    "DETECTORS",
    "Box",
    "DlibHogDetector",
    "HaarFaceDetector",
    "RescalingDetector",
    "detect_face",
    "fallback_boxes",
    "fallback_boxes_of",
]

#: ``(x, y, w, h)`` in frame pixels.
Box = tuple[int, int, int, int]
DETECTORS: tuple[str, ...] = ("haar", "dlib_hog", "none")
#: A detector: ``(H, W, 3)`` uint8 RGB frame -> largest face box or ``None``.
Detector = Callable[[np.ndarray], "Box | None"]


def _gray_for_detection(frame_rgb: np.ndarray, min_side: int, max_side: int) -> tuple[np.ndarray, float]:
    """Grayscale copy rescaled so its short side lies in ``[min_side, max_side]``, and the scale.

    Tiny crops (CK+ 48x48) are upsampled so the detector window fits; large frames are
    downsampled for speed. Boxes found on the copy are divided by ``scale``.

    Returns
    -------
    gray, scale
        ``(H', W')`` uint8 and the factor ``H' / H``.
    """
    gray = frame_rgb if frame_rgb.ndim == 2 else cv2.cvtColor(frame_rgb, cv2.COLOR_RGB2GRAY)  # (H, W)
    short = min(gray.shape[:2])
    scale = 1.0
    if short < min_side:
        scale = min_side / short
    elif short > max_side:
        scale = max_side / short
    if scale != 1.0:
        interp = cv2.INTER_LINEAR if scale > 1 else cv2.INTER_AREA
        gray = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=interp)
    return gray, scale


class RescalingDetector:
    """A detector that works on a grayscale copy with its short side in ``[min_side, max_side]``.

    Subclasses find boxes on the copy (:meth:`_largest_on`) and name their own settings
    (:meth:`_own_params`); the rescaling, its settings and the call are shared.
    """

    min_side: int
    max_side: int

    def _own_params(self) -> dict[str, Any]:
        raise NotImplementedError

    def _largest_on(self, gray: np.ndarray, scale: float, frame_hw: tuple[int, int]) -> Box | None:
        """Largest face on the rescaled ``gray`` ``(H', W')``, in frame pixels (``frame_hw``)."""
        raise NotImplementedError

    def params(self) -> dict[str, Any]:
        """Settings that change detections (part of the feature cache key)."""
        return {**self._own_params(), "min_side": self.min_side, "max_side": self.max_side}

    def __call__(self, frame_rgb: np.ndarray) -> Box | None:
        """Largest face ``(x, y, w, h)`` in frame pixels, or ``None``.

        Parameters
        ----------
        frame_rgb
            ``(H, W, 3)`` uint8 RGB (or ``(H, W)`` grayscale).
        """
        gray, scale = _gray_for_detection(frame_rgb, self.min_side, self.max_side)
        h_img, w_img = frame_rgb.shape[:2]
        return self._largest_on(gray, scale, (h_img, w_img))


class HaarFaceDetector(RescalingDetector):
    """OpenCV frontal-face Haar cascade (shipped in the opencv-python wheel).

    Detection runs on a grayscale, histogram-equalised copy rescaled so its short side
    is between ``min_side`` and ``max_side`` pixels: tiny face crops (CK+ 48x48) are
    upsampled so the 24x24 cascade window fits, large frames downsampled for speed.

    Parameters
    ----------
    cascade
        File name inside ``cv2.data.haarcascades`` or a path to a cascade XML.
    min_face_frac
        Smallest face searched, as a fraction of the short side of the frame.
    """

    def __init__(
        self,
        cascade: str = "haarcascade_frontalface_default.xml",
        *,
        scale_factor: float = 1.1,
        min_neighbors: int = 5,
        min_face_frac: float = 0.1,
        min_side: int = 96,
        max_side: int = 360,
    ) -> None:
        path = Path(cascade)
        if not path.is_file():
            path = Path(cv2.data.haarcascades) / cascade
        self.classifier = cv2.CascadeClassifier(str(path))
        if self.classifier.empty():
            raise ConfigError(f"{path}: cannot load the OpenCV Haar cascade")
        self.cascade = path.name
        self.scale_factor = scale_factor
        self.min_neighbors = min_neighbors
        self.min_face_frac = min_face_frac
        self.min_side = min_side
        self.max_side = max_side

    def _own_params(self) -> dict[str, Any]:
        return {
            "cascade": self.cascade,
            "scale_factor": self.scale_factor,
            "min_neighbors": self.min_neighbors,
            "min_face_frac": self.min_face_frac,
        }

    def _largest_on(self, gray: np.ndarray, scale: float, frame_hw: tuple[int, int]) -> Box | None:
        gray = cv2.equalizeHist(gray)
        min_px = max(24, round(self.min_face_frac * min(gray.shape[:2])))
        faces = self.classifier.detectMultiScale(
            gray, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors, minSize=(min_px, min_px)
        )
        if len(faces) == 0:
            return None
        x, y, w, h = max(faces, key=lambda b: int(b[2]) * int(b[3]))  # largest face = the speaker
        return (round(x / scale), round(y / scale), round(w / scale), round(h / scale))


class DlibHogDetector(RescalingDetector):
    """dlib's built-in HOG + linear SVM frontal face detector (no model file; needs dlib).

    Like :class:`HaarFaceDetector`, detection runs on a grayscale copy rescaled so its
    short side lies in ``[min_side, max_side]`` (dlib's HOG window is 80x80 px, so a
    48x48 face crop must be upsampled).

    Raises
    ------
    ConfigError
        dlib is not installed (``pip install 'mmfer[landmarks]'``).
    """

    def __init__(self, *, upsample: int = 0, min_side: int = 192, max_side: int = 360) -> None:
        dlib = require_dlib("face.detector=dlib_hog")
        self._detector = dlib.get_frontal_face_detector()
        self.upsample = upsample
        self.min_side = min_side
        self.max_side = max_side

    def _own_params(self) -> dict[str, Any]:
        return {"detector": "dlib_hog", "upsample": self.upsample}

    def _largest_on(self, gray: np.ndarray, scale: float, frame_hw: tuple[int, int]) -> Box | None:
        h_img, w_img = frame_hw
        rects = self._detector(np.ascontiguousarray(gray), self.upsample)
        if len(rects) == 0:
            return None
        r = max(rects, key=lambda b: b.width() * b.height())  # largest face = the speaker
        # dlib boxes may reach past the border; clip so crops and landmark boxes stay inside.
        x0, y0 = max(0, round(r.left() / scale)), max(0, round(r.top() / scale))
        x1, y1 = min(w_img, round((r.right() + 1) / scale)), min(h_img, round((r.bottom() + 1) / scale))
        if x1 <= x0 or y1 <= y0:
            return None
        return (x0, y0, x1 - x0, y1 - y0)


_default_detector: HaarFaceDetector | None = None


def detect_face(frame_rgb: np.ndarray, detector: HaarFaceDetector | None = None) -> Box | None:
    """Largest face ``(x, y, w, h)`` in ``frame_rgb`` ``(H, W, 3)`` uint8 RGB, or ``None``.

    Uses a process-wide default :class:`HaarFaceDetector` unless one is given.
    """
    global _default_detector
    if detector is None:
        if _default_detector is None:
            _default_detector = HaarFaceDetector()
        detector = _default_detector
    return detector(frame_rgb)


def fallback_boxes(
    detector: Detector | None, frames: Sequence[np.ndarray]
) -> tuple[list[Box | None], list[Box | None], int]:
    """Detected boxes, crop boxes (fallbacks filled in) and the no-face count of a clip.

    Parameters
    ----------
    detector
        The detector, or ``None`` (``detector: none``: every box is ``None``).
    frames
        ``T`` frames ``(H, W, 3)`` uint8 RGB.

    Returns
    -------
    found, crop_boxes, no_face
        ``T`` detected boxes (``None`` = no face), ``T`` crop boxes (a frame without a face
        takes the nearest frame's box when all frames have one size) and the count of
        frames without a face.
    """
    det = detector
    if det is None:
        none: list[Box | None] = [None] * len(frames)
        return none, list(none), 0
    found = [det(f) for f in frames]
    hits = [i for i, b in enumerate(found) if b is not None]
    boxes: list[Box | None] = list(found)
    same_size = len({f.shape[:2] for f in frames}) == 1
    if hits and same_size:
        # A face missed in one frame is almost always where it was in the nearest frame.
        for i, b in enumerate(found):
            if b is None:
                boxes[i] = found[min(hits, key=lambda j: abs(j - i))]
    return found, boxes, len(found) - len(hits)


def fallback_boxes_of(
    detector: Detector | None, frames: Sequence[np.ndarray], used: Sequence[int]
) -> tuple[list[Box | None], list[Box | None], int]:
    """:func:`fallback_boxes` for the frames ``used`` only, with the same crop boxes.

    The fallback of a frame without a face is the nearest frame with one (the earlier
    on a tie, as ``min`` in :func:`fallback_boxes`); it is searched outward from the frame, so
    detection runs on other frames only when a used frame has no face.

    Returns
    -------
    found, crop_boxes, no_face
        As :func:`fallback_boxes`, with ``len(used)`` entries.
    """
    det = detector
    if det is None:
        none: list[Box | None] = [None] * len(used)
        return none, list(none), 0
    memo: dict[int, Box | None] = {}

    def found_at(j: int) -> Box | None:
        if j not in memo:
            memo[j] = det(frames[j])
        return memo[j]

    same_size = len({f.shape[:2] for f in frames}) == 1
    found = [found_at(i) for i in used]
    boxes = list(found)
    for k, i in enumerate(used):
        if found[k] is not None or not same_size:
            continue
        for d in range(1, len(frames)):
            hit = next((found_at(j) for j in (i - d, i + d) if 0 <= j < len(frames) and found_at(j)), None)
            if hit is not None:
                boxes[k] = hit
                break
    return found, boxes, sum(b is None for b in found)
