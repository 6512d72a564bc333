"""Learning-rate schedules of the training loop (``train.scheduler``)."""

from __future__ import annotations

from typing import Any

import torch

from mmfer.config import TrainConfig

__all__ = ["make_scheduler", "step_scheduler"]


def make_scheduler(cfg: TrainConfig, optimizer: torch.optim.Optimizer) -> Any:
    """The scheduler ``cfg.scheduler`` names for ``optimizer`` (None for ``"none"``).

    ``cosine`` anneals over ``cfg.epochs`` to 1 % of ``cfg.lr``; ``plateau`` halves
    the lr after ``max(1, patience // 2)`` epochs without improvement (2 without
    early stopping).
    """
    if cfg.scheduler == "cosine":
        # Floor at 1% of the base lr so the last epochs still learn something.
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.epochs, eta_min=cfg.lr * 1e-2)
    if cfg.scheduler == "plateau":
        patience = max(1, cfg.patience // 2) if cfg.patience > 0 else 2
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="min", factor=0.5, patience=patience
        )
    return None


def step_scheduler(cfg: TrainConfig, scheduler: Any, monitored_loss: float) -> None:
    """Advance ``scheduler`` by one epoch (``plateau`` watches ``monitored_loss``)."""
    if cfg.scheduler == "cosine":
        scheduler.step()
    elif cfg.scheduler == "plateau":
        scheduler.step(monitored_loss)
