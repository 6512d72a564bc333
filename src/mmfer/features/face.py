"""Face branch: detect and crop the face, normalise it (eq. 1), pool EfficientNet features.

Per frame: OpenCV Haar cascade -> largest face box -> square crop with a margin,
resized to ``image_size`` -> min-max normalisation to [0, 1] (paper eq. 1,
``x_n = (x - x_min) / (x_max - x_min)``) -> the backbone's own mean/std
normalisation -> EfficientNet pooled features (1280-d). Frames go through the
backbone in batches of ``cfg.batch_size`` under ``torch.inference_mode``.

When no face is found in a frame, the crop falls back to the box found in the
nearest frame of the same clip, or to the centre square of the frame when the
clip has none; such frames are counted (:attr:`FaceResult.no_face`) and one
warning is logged per file.

Examples
--------
>>> ext = FaceFeatureExtractor(FaceConfig())  # doctest: +SKIP
>>> ext.extract_video("clip.mp4").shape  # doctest: +SKIP
(16, 1280)
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from mmfer.config import FaceConfig
from mmfer.errors import ConfigError, FeatureError
from mmfer.features.efficientnet import BACKBONES, EfficientNet, create_backbone
from mmfer.features.video import IMAGE_EXTENSIONS, evenly_spaced, read_image, read_video_frames

logger = logging.getLogger(__name__)

__all__ = [
    "DETECTORS",
    "FaceFeatureExtractor",
    "FaceResult",
    "HaarFaceDetector",
    "crop_face",
    "detect_face",
    "minmax_normalise",
    "to_backbone_input",
]

Box = tuple[int, int, int, int]
DETECTORS: tuple[str, ...] = ("haar", "none")
#: Bump when the preprocessing changes in a way that changes features (invalidates caches).
FEATURE_VERSION = 1


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
        gray = frame_rgb if frame_rgb.ndim == 2 else cv2.cvtColor(frame_rgb, cv2.COLOR_RGB2GRAY)  # (H, W)
        short = min(gray.shape[:2])
        scale = 1.0
        if short < self.min_side:
            scale = self.min_side / short
        elif short > self.max_side:
            scale = self.max_side / short
        if scale != 1.0:
            interp = cv2.INTER_LINEAR if scale > 1 else cv2.INTER_AREA
            gray = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=interp)
        gray = cv2.equalizeHist(gray)
        min_px = max(24, round(self.min_face_frac * min(gray.shape[:2])))
        faces = self.classifier.detectMultiScale(
            gray, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors, minSize=(min_px, min_px)
        )
        if len(faces) == 0:
            return None
        x, y, w, h = max(faces, key=lambda b: int(b[2]) * int(b[3]))  # largest face = the speaker
        return (round(x / scale), round(y / scale), round(w / scale), round(h / scale))


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
        ``(T, D)`` float32 pooled backbone features, one row per frame.
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


def _natural_key(p: Path) -> list[Any]:
    # frame_2 sorts before frame_10.
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", p.name)]


class FaceFeatureExtractor:
    """Frames/video/image/folder -> ``(T, 1280)`` float32 face features.

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

    def __init__(self, cfg: FaceConfig, *, backbone: EfficientNet | None = None) -> None:
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
        self.cfg = cfg
        self._backbone = backbone
        self._detector: HaarFaceDetector | None = None
        self._weights_digest: str | None = None

    # -- lazy parts ---------------------------------------------------------------------------

    @property
    def backbone(self) -> EfficientNet:
        """The EfficientNet, built on first use (eval mode)."""
        if self._backbone is None:
            self._backbone = create_backbone(self.cfg.backbone, self.cfg.weights).eval()
        return self._backbone

    @property
    def detector(self) -> HaarFaceDetector | None:
        """The face detector, or ``None`` for ``detector: none``."""
        if self.cfg.detector == "haar" and self._detector is None:
            self._detector = HaarFaceDetector()
        return self._detector

    def __getstate__(self) -> dict[str, Any]:
        # cv2.CascadeClassifier cannot be pickled and the backbone is 20 MB: rebuild in the worker.
        return {"cfg": self.cfg}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.cfg = state["cfg"]
        self._backbone = None
        self._detector = None
        self._weights_digest = None

    @property
    def dim(self) -> int:
        """Feature width D (1280 for both registered backbones)."""
        return 1280 if self._backbone is None else self._backbone.num_features

    def config_dict(self) -> dict[str, Any]:
        """Everything that determines the features, for cache keys (JSON-serialisable)."""
        cfg = self.cfg
        if cfg.weights and self._weights_digest is None:
            p = Path(cfg.weights)
            if not p.is_file():
                raise ConfigError(f"face.weights: {p}: file not found")
            # Content hash, not the path: the same file moved keeps its cache, a retrained one does not.
            h = hashlib.sha256()
            with open(p, "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    h.update(chunk)
            self._weights_digest = h.hexdigest()
        return {
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

    # -- core ---------------------------------------------------------------------------------

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

    def preprocess(
        self, frames: Sequence[np.ndarray] | np.ndarray
    ) -> tuple[torch.Tensor, list[Box | None], int]:
        """Detect, crop, eq.-1 normalise and mean/std normalise.

        Returns
        -------
        x : torch.Tensor
            ``(T, 3, S, S)`` float32 backbone input.
        boxes : list
            Detected box per frame (``None`` = not found).
        no_face : int
            Frames without a detected face.
        """
        frames = list(frames)
        if not frames:
            raise ValueError("no frames given")
        for f in frames:
            if f.ndim != 3 or f.shape[2] != 3 or f.dtype != np.uint8:
                raise ValueError(f"frames must be (H, W, 3) uint8 RGB, got {f.shape} {f.dtype}")
        found, crop_boxes, no_face = self._boxes(frames)
        size = self.cfg.image_size
        crops = np.stack(
            [
                minmax_normalise(crop_face(f, b, self.cfg.crop_margin, size))
                for f, b in zip(frames, crop_boxes, strict=True)
            ]
        )  # (T, S, S, 3) in [0, 1]
        return to_backbone_input(crops, self.backbone.mean, self.backbone.std), found, no_face

    def embed(self, x: torch.Tensor) -> np.ndarray:
        """Backbone features of preprocessed input ``(T, 3, S, S)`` -> ``(T, D)`` float32, batched."""
        net = self.backbone
        bs = self.cfg.batch_size
        out = []
        with torch.inference_mode():
            for i in range(0, x.shape[0], bs):
                out.append(net.forward_features(x[i : i + bs]))  # (b, D)
        return torch.cat(out).numpy().astype(np.float32, copy=False)  # (T, D)

    def run_frames(
        self, frames: Sequence[np.ndarray] | np.ndarray, source: str | Path | None = None
    ) -> FaceResult:
        """Features plus detection bookkeeping for ``(T, H, W, 3)`` uint8 RGB frames.

        Logs one warning per call (i.e. per file) when some frames had no detected face.
        """
        x, boxes, no_face = self.preprocess(frames)
        res = FaceResult(self.embed(x), boxes, no_face, None if source is None else str(source))
        if no_face:
            logger.warning(
                "%s: no face found in %d/%d frames; used the nearest frame's face box or the centre square",
                source or "<frames>",
                no_face,
                res.frames,
            )
        return res

    def run_video(self, path: str | Path) -> FaceResult:
        """:meth:`run_frames` on frames sampled with ``cfg.fps`` / ``cfg.max_frames``."""
        frames, _ = read_video_frames(path, fps=self.cfg.fps, max_frames=self.cfg.max_frames)
        return self.run_frames(frames, path)

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
