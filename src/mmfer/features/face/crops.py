"""Face crops in each backbone's input format: square crop around a box, normalisation, tensors.

EfficientNet crops are RGB, min-max normalised to [0, 1] (paper eq. 1) then the
backbone's mean/std (:func:`to_backbone_input`); the FER2013 input is grayscale in
``[-1, 1]`` (:func:`mmfer.features.face.fer2013.to_fer_input`). :func:`crop_face`
is shared by both and by the debug crops of :mod:`mmfer.inference.debug`.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import torch

from mmfer.features.face.detection import Box

__all__ = ["crop_face", "minmax_normalise", "to_backbone_input"]


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
