"""68-point facial landmarks (dlib) and their normalisation to a 136-d pose-free vector.

Opt-in: ``pip install 'mmfer[landmarks]'`` installs ``dlib-bin`` (dlib's compiled
wheel) and ``face_recognition_models``, which ships
``shape_predictor_68_face_landmarks.dat``.

Licence: that shape predictor was trained on the iBUG 300-W data set, whose licence
excludes commercial use; dlib's own code is Boost-licensed. Features computed with
``features.face.landmarks: true`` therefore carry the 300-W terms.

The predictor file is located with :func:`importlib.util.find_spec` rather than
``face_recognition_models.pose_predictor_model_location()``, which needs
``pkg_resources`` (gone from recent setuptools).

Landmark layout (iBUG 68): jaw 0-16, brows 17-26, nose 27-35, eyes 36-41 (image-left
eye) and 42-47 (image-right eye), mouth 48-67.

Examples
--------
>>> pts = LandmarkPredictor()(gray, (x, y, w, h))  # doctest: +SKIP
>>> normalise_landmarks(pts).shape  # doctest: +SKIP
(136,)
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

import cv2
import numpy as np

from mmfer.errors import ConfigError

__all__ = [
    "LANDMARKS_INSTALL_HINT",
    "N_LANDMARKS",
    "LandmarkPredictor",
    "dlib_available",
    "normalise_landmarks",
    "require_dlib",
    "shape_predictor_path",
]

N_LANDMARKS = 68
LANDMARKS_INSTALL_HINT = "pip install 'mmfer[landmarks]'"
_PREDICTOR_FILE = "shape_predictor_68_face_landmarks.dat"
_LEFT_EYE = slice(36, 42)
_RIGHT_EYE = slice(42, 48)

Box = tuple[int, int, int, int]


def dlib_available() -> bool:
    """Whether ``dlib`` can be imported (without importing it)."""
    return importlib.util.find_spec("dlib") is not None


def require_dlib(what: str) -> ModuleType:
    """Import dlib, or raise a ConfigError saying that ``what`` needs the landmarks extra."""
    try:
        import dlib
    except ImportError:
        raise ConfigError(f"{what} needs dlib, which is not installed: {LANDMARKS_INSTALL_HINT}") from None
    return dlib


def shape_predictor_path() -> Path:
    """Path of the 68-point predictor shipped by ``face_recognition_models``.

    Raises
    ------
    ConfigError
        Package not installed, or the file is missing or a Git LFS pointer.
    """
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            "features.face.landmarks needs face_recognition_models (the 68-point shape predictor), "
            f"which is not installed: {LANDMARKS_INSTALL_HINT}"
        )
    p = Path(next(iter(spec.submodule_search_locations))) / "models" / _PREDICTOR_FILE
    if not p.is_file():
        raise ConfigError(f"{p}: shape predictor file not found (reinstall: {LANDMARKS_INSTALL_HINT})")
    if p.stat().st_size < 1_000_000:  # the real file is ~99 MB; a pointer or stub is tiny
        head = p.read_bytes()[:64]
        what = "a Git LFS pointer" if head.startswith(b"version https://git-lfs") else "truncated"
        raise ConfigError(f"{p}: shape predictor file is {what} (reinstall: {LANDMARKS_INSTALL_HINT})")
    return p


class LandmarkPredictor:
    """dlib 68-point shape predictor on a given face box.

    Parameters
    ----------
    path
        Predictor ``.dat`` file (default: the one shipped by ``face_recognition_models``).
    min_face
        Boxes with a shorter side are fitted on an image upsampled by an integer factor
        so the box is at least this many pixels.

    Raises
    ------
    ConfigError
        dlib or the predictor file is missing, or dlib cannot read the file.
    """

    def __init__(self, path: str | Path | None = None, *, min_face: int = 96) -> None:
        dlib = require_dlib("features.face.landmarks")
        self.min_face = min_face
        self.path = shape_predictor_path() if path is None else Path(path)
        try:
            self._predictor = dlib.shape_predictor(str(self.path))
        except RuntimeError as e:
            raise ConfigError(f"{self.path}: dlib cannot load the shape predictor: {e}") from None
        self._rect = dlib.rectangle
        self._dlib_version = str(getattr(dlib, "__version__", "?"))

    def params(self) -> dict[str, Any]:
        """What determines the landmarks (part of the feature cache key)."""
        return {
            "predictor": self.path.name,
            "predictor_bytes": self.path.stat().st_size,
            "dlib": self._dlib_version,
            "min_face": self.min_face,
            "normalisation": "centroid+eye_roll+interocular",
        }

    def __call__(self, gray: np.ndarray, box: Box) -> np.ndarray:
        """Landmarks ``(68, 2)`` float32 ``(x, y)`` in pixels of ``gray``.

        Parameters
        ----------
        gray
            ``(H, W)`` uint8 image.
        box
            Face box ``(x, y, w, h)``; the predictor always returns 68 points, placed relative
            to this box, so a poor box gives poor (but finite) points.
        """
        x, y, w, h = (int(v) for v in box)
        # dlib places points on integer pixels: on a tiny face (CK+ 48x48) that quantises the
        # shape to a few pixels, so small faces are upsampled and the points scaled back.
        k = max(1, -(-self.min_face // max(1, min(w, h))))
        img = np.ascontiguousarray(gray)  # (H, W)
        if k > 1:
            img = cv2.resize(img, None, fx=k, fy=k, interpolation=cv2.INTER_LINEAR)  # (kH, kW)
        rect = self._rect(k * x, k * y, k * (x + w) - 1, k * (y + h) - 1)
        shape = self._predictor(img, rect)
        return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32) / k  # (68, 2)


def normalise_landmarks(points: np.ndarray) -> np.ndarray:
    """Remove position, scale and roll: ``(..., 68, 2)`` -> ``(..., 136)`` float32.

    Centre on the centroid of the 68 points, rotate so the line from the image-left eye
    centre (points 36-41) to the image-right one (42-47) is horizontal and points to
    +x, and divide by the inter-ocular distance (by the RMS radius when the eye centres
    coincide, e.g. a degenerate fit; all zeros if every point is the same). What is left
    is the face's shape: expression, plus yaw/pitch and identity.

    Parameters
    ----------
    points
        ``(68, 2)`` or ``(N, 68, 2)`` ``(x, y)`` coordinates.

    Returns
    -------
    np.ndarray
        ``(136,)`` or ``(N, 136)``, ordered ``x0, y0, x1, y1, ...``.
    """
    p = np.asarray(points, dtype=np.float64)
    if p.shape[-2:] != (N_LANDMARKS, 2):
        raise ValueError(f"expected (..., {N_LANDMARKS}, 2) landmarks, got {p.shape}")
    lead = p.shape[:-2]
    p = p.reshape(-1, N_LANDMARKS, 2)  # (N, 68, 2)
    c = p - p.mean(axis=1, keepdims=True)  # (N, 68, 2) centred
    eye = c[:, _RIGHT_EYE].mean(1) - c[:, _LEFT_EYE].mean(1)  # (N, 2) eye line
    theta = np.arctan2(eye[:, 1], eye[:, 0])  # (N,) roll
    cos, sin = np.cos(-theta), np.sin(-theta)
    rot = np.stack([np.stack([cos, -sin], -1), np.stack([sin, cos], -1)], -2)  # (N, 2, 2)
    r = np.einsum("nij,nkj->nki", rot, c)  # (N, 68, 2) eye line along +x
    scale = np.linalg.norm(eye, axis=1)  # (N,) inter-ocular distance
    rms = np.sqrt((c**2).sum(-1).mean(-1))  # (N,)
    scale = np.where(scale > 1e-9, scale, rms)
    safe = np.where(scale > 1e-9, scale, 1.0)
    out = np.where(scale[:, None, None] > 1e-9, r / safe[:, None, None], 0.0)  # (N, 68, 2)
    return out.reshape(*lead, 2 * N_LANDMARKS).astype(np.float32)
