"""Modality dropout: train a fused model to cope with a missing modality.

While training, each *present* modality of a sample is dropped with probability ``p``:
its block of the fused vector and its presence flag are zeroed, which is exactly what
the Fuser produces for a sample that lacks that modality (a standardised block is zero
at the training mean, the flag is 0). At least one present modality of every sample is
kept, so no sample becomes all-zero. It runs as a :class:`~mmfer.training.loop.Hook` of
the one training loop, whose :meth:`~mmfer.training.loop.Hook.transform_batch` is called
on training batches only: validation and prediction always see the input unchanged.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from mmfer.errors import ConfigError
from mmfer.fusion.layout import FusedLayout
from mmfer.training.loop import Hook

if TYPE_CHECKING:
    from mmfer.training.loop import Trainer

__all__ = ["ModalityDropout", "drop_modalities"]


def drop_modalities(
    x: torch.Tensor, layout: FusedLayout, p: float, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero random present modalities of ``x (B, T, F)``; returns ``(x', dropped (B, M))``.

    Each present modality (flag set at step 0) is dropped independently with probability
    ``p``; when that would drop every present modality of a sample, one of them, chosen
    at random, is kept. Samples with a single present modality are never changed. ``x``
    itself is not modified.
    """
    if not 0.0 <= p < 1.0:
        raise ConfigError(f"train.modality_dropout: must lie in [0, 1), got {p}")
    b, m = x.shape[0], len(layout.modalities)
    flags = torch.as_tensor(layout.flags, dtype=torch.long)
    present = x[:, 0, flags] > 0.5  # (B, M)
    dropped = (torch.rand(b, m, generator=generator) < p) & present  # (B, M)
    wiped = present.any(1) & ~(present & ~dropped).any(1)  # (B,) every present modality dropped
    if wiped.any():
        # keep one present modality of those samples, uniformly among the present ones
        score = torch.rand(b, m, generator=generator).masked_fill(~present, -1.0)  # (B, M)
        keep = score.argmax(1)  # (B,)
        dropped[wiped, keep[wiped]] = False
    if not dropped.any():
        return x, dropped
    out = x.clone()
    for j, (start, stop) in enumerate(layout.blocks):
        rows = dropped[:, j]  # (B,)
        if rows.any():
            out[rows, :, start:stop] = 0.0
            out[rows, :, layout.flags[j]] = 0.0
    return out, dropped


class ModalityDropout(Hook):
    """Training-loop hook applying :func:`drop_modalities` to every training batch.

    Parameters
    ----------
    layout
        Column map of the fused input (:meth:`mmfer.fusion.Fuser.layout`).
    p
        Drop probability of each present modality (``train.modality_dropout``).
    seed
        The draws depend only on ``(seed, epoch, batch)``, so a resumed run replays the
        same drops as an uninterrupted one.

    Attributes
    ----------
    dropped
        Number of (sample, modality) drops so far, for logging and tests.
    """

    def __init__(self, layout: FusedLayout, p: float, seed: int = 0) -> None:
        if not 0.0 <= p < 1.0:
            raise ConfigError(f"train.modality_dropout: must lie in [0, 1), got {p}")
        self.layout = layout
        self.p = float(p)
        self.seed = int(seed)
        self.dropped = 0
        self._batch = 0

    def on_epoch_start(self, trainer: Trainer) -> None:
        self._batch = 0

    def transform_batch(
        self, trainer: Trainer, x: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if self.p == 0.0 or len(self.layout.modalities) < 2:
            return x, mask
        # distinct streams per (seed, epoch, batch, rank); 64-bit mixing keeps them apart
        key = (self.seed * 1_000_003 + (trainer.epoch + 1)) * 100_003 + self._batch
        gen = torch.Generator().manual_seed((key * 31 + trainer.rank) % (2**63))
        self._batch += 1
        out, dropped = drop_modalities(x.cpu(), self.layout, self.p, gen)
        self.dropped += int(dropped.sum())
        return out.to(x.device), mask
