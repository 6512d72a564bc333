"""Learning-rate schedules of the training loop (``train.scheduler``)."""

from __future__ import annotations

import math
from typing import Any

import torch

from mmfer.config import TrainConfig

__all__ = ["lr_factor", "make_scheduler", "step_scheduler"]

#: Lowest lr of the cosine schedules, as a fraction of ``train.lr``.
FLOOR = 1e-2


def lr_factor(cfg: TrainConfig, epoch: int) -> float:
    """Multiplier of ``cfg.lr`` during epoch ``epoch + 1`` under ``warmup_cosine``.

    A linear warm-up over ``w = max(1, round(cfg.warmup_frac * cfg.epochs))`` epochs
    (``(epoch + 1) / w``), then a cosine decay from 1 to :data:`FLOOR` at ``cfg.epochs``.

    Parameters
    ----------
    cfg
        Training settings (``epochs``, ``warmup_frac``).
    epoch
        0-based epoch index (the number of scheduler steps taken).
    """
    warm = max(1, round(cfg.warmup_frac * cfg.epochs))
    if epoch < warm:
        return (epoch + 1) / warm
    span = max(1, cfg.epochs - warm)
    t = min(1.0, (epoch - warm) / span)
    return FLOOR + (1.0 - FLOOR) * 0.5 * (1.0 + math.cos(math.pi * t))


def make_scheduler(cfg: TrainConfig, optimizer: torch.optim.Optimizer) -> Any:
    """The scheduler ``cfg.scheduler`` names for ``optimizer`` (None for ``"none"``).

    ``cosine`` anneals over ``cfg.epochs`` to 1 % of ``cfg.lr``; ``warmup_cosine`` warms
    up linearly first (:func:`lr_factor`); ``plateau`` halves the lr after
    ``max(1, patience // 2)`` epochs without improvement (2 without early stopping).
    The schedules span ``cfg.epochs`` even when ``cfg.stop_epoch`` ends training earlier.
    """
    if cfg.scheduler == "cosine":
        # Floor at 1% of the base lr so the last epochs still learn something.
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.epochs, eta_min=cfg.lr * FLOOR)
    if cfg.scheduler == "warmup_cosine":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda e: lr_factor(cfg, e))
    if cfg.scheduler == "plateau":
        patience = max(1, cfg.patience // 2) if cfg.patience > 0 else 2
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="min", factor=0.5, patience=patience
        )
    return None


def step_scheduler(cfg: TrainConfig, scheduler: Any, monitored_loss: float) -> None:
    """Advance ``scheduler`` by one epoch (``plateau`` watches ``monitored_loss``)."""
    if cfg.scheduler in ("cosine", "warmup_cosine"):
        scheduler.step()
    elif cfg.scheduler == "plateau":
        scheduler.step(monitored_loss)
