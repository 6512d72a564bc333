"""The EfficientNet network in plain torch (paper section 2.3.1): specs, MBConv blocks, pooled features.

The paper extracts visual features with EfficientNet-B0: MBConv blocks with
squeeze-excitation and swish, global average pooling to a 1280-d vector.
EfficientNet-Lite0 keeps B0's stage layout and 1280-d head but uses ReLU6 and
no SE. Both are one :class:`EfficientNet` module with its own parameter names;
this module owns the architecture only. Foreign weight layouts are translated
by :mod:`mmfer.features.face.efficientnet_weights`, and the ready-to-use
backbones (shipped Lite0 weights, seeded random B0) are built by
:mod:`mmfer.features.face.backbones`.

Examples
--------
>>> net = EfficientNet(LITE0_SPEC).eval()  # doctest: +SKIP
>>> net.forward_features(torch.zeros(2, 3, 224, 224)).shape  # doctest: +SKIP
torch.Size([2, 1280])
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from mmfer.errors import ConfigError

__all__ = [
    "B0_SPEC",
    "B0_STAGES",
    "B0_TF_SPEC",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "LITE0_SPEC",
    "LITE_MEAN",
    "LITE_STD",
    "EfficientNet",
    "EfficientNetSpec",
    "StageSpec",
]

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
