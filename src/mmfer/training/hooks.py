"""Hooks of the training loop (logging, checkpointing, anything else) and its result.

A :class:`Hook` sees the :class:`~mmfer.training.loop.Trainer` at fixed points
of :meth:`~mmfer.training.loop.Trainer.fit`; the built-in ones write
``log.csv`` (:class:`CSVLogger`) and the safetensors checkpoints
(:class:`CheckpointHook`).
"""

from __future__ import annotations

import csv
import io
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmfer.io import atomic_write_text

if TYPE_CHECKING:
    import torch
    from torch import nn

    from mmfer.training.loop import Trainer

__all__ = ["BEST", "LAST", "LOG", "LOG_COLUMNS", "CSVLogger", "CheckpointHook", "Hook", "TrainResult"]

#: Columns of ``log.csv``, in order.
LOG_COLUMNS: tuple[str, ...] = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds")

#: File names inside a training output folder.
LAST = "last.safetensors"
BEST = "best.safetensors"
LOG = "log.csv"


class Hook:
    """Callbacks around the training loop; override any subset.

    Hooks run on every rank in data-parallel training (check
    ``trainer.is_main`` before writing files). A hook may call
    :meth:`Trainer.request_stop`; the loop stops after the current epoch.
    """

    def on_fit_start(self, trainer: Trainer, model: nn.Module) -> None:
        """Before the first epoch (after any resume); ``model`` is the unwrapped module."""

    def on_epoch_start(self, trainer: Trainer) -> None:
        """Before epoch ``trainer.epoch + 1``."""

    def transform_batch(
        self, trainer: Trainer, x: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Training batches only (never validation or prediction): return the ``x (B, T, F)``,
        ``mask (B, T)`` the model is fed, e.g. augmented (modality dropout). Must not modify
        its inputs in place (they may be views of the training set)."""
        return x, mask

    def on_batch_end(self, trainer: Trainer, loss: float) -> None:
        """After ``optimizer.step()``; parameter ``.grad`` still holds this batch's clipped gradients."""

    def on_epoch_end(self, trainer: Trainer, metrics: dict[str, Any]) -> None:
        """After validation, scheduling and early-stopping bookkeeping of an epoch."""

    def on_fit_end(self, trainer: Trainer, result: TrainResult) -> None:
        """After the best weights were restored."""


class CSVLogger(Hook):
    """Rewrite ``path`` atomically from ``trainer.history`` after every epoch (rank 0).

    Rewriting the whole (small) file rather than appending keeps it consistent
    with the history restored on resume, even when epochs after the last
    checkpoint are replayed.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def on_epoch_end(self, trainer: Trainer, metrics: dict[str, Any]) -> None:
        if not trainer.is_main:
            return
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(LOG_COLUMNS), lineterminator="\n")
        writer.writeheader()
        for row in trainer.history:
            writer.writerow({k: "" if row.get(k) is None else row[k] for k in LOG_COLUMNS})
        atomic_write_text(self.path, buf.getvalue())


class CheckpointHook(Hook):
    """Save the training state to ``out_dir/last.safetensors`` every ``every`` epochs.

    The last epoch (or an early stop) is always saved; when validating, the
    best weights go to ``out_dir/best.safetensors`` whenever validation improves.
    """

    def __init__(self, out_dir: str | Path, every: int = 1) -> None:
        self.out_dir = Path(out_dir)
        self.every = max(1, every)

    def on_epoch_end(self, trainer: Trainer, metrics: dict[str, Any]) -> None:
        # The decision must be identical on every rank: save_state is a collective.
        if trainer.epoch % self.every == 0 or trainer.finished:
            trainer.save_state(self.out_dir / LAST)
        if trainer.improved and trainer.is_main:
            trainer.save_best(self.out_dir / BEST)


# --------------------------------------------------------------------------- results


@dataclass
class TrainResult:
    """What :meth:`Trainer.fit` returns.

    Attributes
    ----------
    history
        One dict per epoch with the :data:`LOG_COLUMNS` keys (``val_*`` None without validation).
    best_epoch
        1-based epoch of the lowest validation loss (the last epoch without validation).
    best_val_loss
        That loss, or None without validation.
    train_seconds
        Wall time spent in epochs, summed over resumed sessions.
    epochs_run
        Epochs completed, including those before a resume.
    stopped_early
        True when training ended before ``cfg.epochs`` (early stopping or a hook's request).
    stop_reason
        ``"early_stopping"``, ``"requested"`` or None.
    resumed_from
        Epoch the run resumed after (0 = fresh start).
    world_size
        Data-parallel processes.
    """

    history: list[dict[str, Any]]
    best_epoch: int
    best_val_loss: float | None
    train_seconds: float
    epochs_run: int
    stopped_early: bool
    stop_reason: str | None = None
    resumed_from: int = 0
    world_size: int = 1

    def to_dict(self) -> dict[str, Any]:
        """JSON-able view."""
        return asdict(self)
