"""The full training state of a :class:`~mmfer.training.loop.Trainer` as a safetensors checkpoint.

Exact resume needs everything that shapes the rest of the trajectory: weights,
best weights, AdamW moments, scheduler, early-stopping counters, history and the
torch/numpy/Python RNG streams of every rank.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from mmfer.config import TrainConfig, to_dict
from mmfer.errors import ConfigError, DataError
from mmfer.training.checkpoint import (
    load_checkpoint,
    optimizer_state_from_flat,
    optimizer_state_to_flat,
    save_checkpoint,
    strip_prefix,
    with_prefix,
)
from mmfer.training.data import seed_everything

if TYPE_CHECKING:
    from mmfer.training.loop import Trainer

__all__ = [
    "STATE_KIND",
    "STATE_VERSION",
    "load_train_state",
    "save_best_weights",
    "save_train_state",
    "train_state",
]

#: Checkpoint kind tag; bump the version when the layout changes.
STATE_KIND = "mmfer.train_state"
STATE_VERSION = 1

#: TrainConfig fields that shape the optimisation trajectory: resuming with a
#: different value would silently mix two runs, so it is refused.
_TRAJECTORY_KEYS: tuple[str, ...] = (
    "batch_size",
    "lr",
    "weight_decay",
    "grad_clip",
    "scheduler",
    "class_weighted",
    "seed",
    "modality_dropout",
    "warmup_frac",
    "label_smoothing",
    "ema",
    "input_noise",
)


def _numpy_rng_to_json() -> list[Any]:
    name, keys, pos, has_gauss, cached = np.random.get_state()  # type: ignore[misc]  # noqa: NPY002
    return [name, keys.tolist(), int(pos), int(has_gauss), float(cached)]


def _numpy_rng_from_json(state: list[Any]) -> None:
    name, keys, pos, has_gauss, cached = state
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))  # noqa: NPY002


def _python_rng_to_json() -> list[Any]:
    version, internal, gauss = random.getstate()
    return [version, list(internal), gauss]


def _python_rng_from_json(state: list[Any]) -> None:
    version, internal, gauss = state
    random.setstate((version, tuple(internal), gauss))


def train_state(trainer: Trainer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Tensors and JSON metadata of the full training state (a collective under DDP).

    Tensors: ``model.*`` (current weights), ``best.*`` (best weights, if any),
    ``optim.state.<i>.<name>`` (AdamW moments and step), ``rng.torch.<rank>``.
    Metadata: epoch, config, history, early-stopping counters, optimizer
    ``param_groups``, scheduler state, numpy/Python RNG states per rank.
    """
    assert trainer.model is not None and trainer.optimizer is not None
    rng = trainer.dist.gather(
        {"torch": torch.get_rng_state(), "numpy": _numpy_rng_to_json(), "python": _python_rng_to_json()}
    )
    tensors = with_prefix("model", trainer.model.state_dict())
    if trainer.best_state is not None:
        tensors |= with_prefix("best", trainer.best_state)
    if trainer.ema_state is not None:
        tensors |= with_prefix("ema", trainer.ema_state)
    opt_tensors, opt_meta = optimizer_state_to_flat(trainer.optimizer.state_dict(), prefix="optim")
    tensors |= opt_tensors
    for r, states in enumerate(rng):
        tensors[f"rng.torch.{r}"] = states["torch"]
    meta = {
        "kind": STATE_KIND,
        "version": STATE_VERSION,
        "epoch": trainer.epoch,
        "finished": trainer.finished,
        "num_classes": trainer.num_classes,
        "world_size": trainer.world_size,
        "train": to_dict(trainer.cfg),
        "history": trainer.history,
        "best_epoch": trainer.best_epoch,
        "best_val_loss": trainer.best_val_loss,
        "bad_epochs": trainer.bad_epochs,
        "stop_reason": trainer.stop_reason,
        "train_seconds": trainer.train_seconds,
        "optimizer": opt_meta,
        "scheduler": None if trainer.scheduler is None else trainer.scheduler.state_dict(),
        "rng": [{"numpy": s["numpy"], "python": s["python"]} for s in rng],
    }
    return tensors, meta


def save_train_state(trainer: Trainer, path: str | Path) -> None:
    """Write :func:`train_state` to ``path`` (rank 0 writes; every rank must call it)."""
    tensors, meta = train_state(trainer)
    if trainer.is_main:
        save_checkpoint(path, tensors, meta)


def save_best_weights(trainer: Trainer, path: str | Path) -> None:
    """Write the best weights (``model.*``) with their epoch and validation loss."""
    if trainer.best_state is None:
        return
    save_checkpoint(
        path,
        with_prefix("model", trainer.best_state),
        {
            "kind": "mmfer.best_weights",
            "epoch": trainer.best_epoch,
            "val_loss": trainer.best_val_loss,
            "num_classes": trainer.num_classes,
        },
    )


def load_train_state(trainer: Trainer, path: Path) -> None:
    assert trainer.model is not None and trainer.optimizer is not None
    tensors, meta = load_checkpoint(path)
    if meta.get("kind") != STATE_KIND:
        raise DataError(path, f"not a training-state checkpoint (kind={meta.get('kind')!r})")
    if meta.get("version") != STATE_VERSION:
        raise DataError(path, f"checkpoint version {meta.get('version')} != supported {STATE_VERSION}")
    saved_cfg = meta["train"]
    now = to_dict(trainer.cfg)
    spans_epochs = trainer.cfg.scheduler in ("cosine", "warmup_cosine")
    keys = list(_TRAJECTORY_KEYS) + (["epochs"] if spans_epochs else [])
    # a key missing from an older checkpoint had its default value then
    defaults = to_dict(TrainConfig())
    for k in keys:
        if saved_cfg.get(k, defaults[k]) != now[k]:
            raise ConfigError(
                f"{path}: cannot resume: train.{k} was {saved_cfg.get(k)!r} in the checkpoint but is "
                f"{now[k]!r} now; use a fresh output folder or resume=False"
            )
    if meta["num_classes"] != trainer.num_classes:
        raise ConfigError(
            f"{path}: cannot resume: checkpoint has {meta['num_classes']} classes, "
            f"fit got {trainer.num_classes}"
        )
    try:
        trainer.model.load_state_dict(strip_prefix("model", tensors))
        trainer.optimizer.load_state_dict(optimizer_state_from_flat(tensors, meta["optimizer"], "optim"))
    except (RuntimeError, ValueError, KeyError) as e:
        raise DataError(path, f"checkpoint does not fit this model/optimizer: {e}") from None
    if trainer.scheduler is not None and meta["scheduler"] is not None:
        trainer.scheduler.load_state_dict(meta["scheduler"])
    best = strip_prefix("best", tensors)
    trainer.best_state = {k: v.to(trainer.device) for k, v in best.items()} or None
    ema = strip_prefix("ema", tensors)
    if ema and trainer.ema_state is not None:
        trainer.ema_state = {k: v.to(trainer.device) for k, v in ema.items()}
    trainer.epoch = int(meta["epoch"])
    trainer.history = list(meta["history"])
    trainer.best_epoch = int(meta["best_epoch"])
    trainer.best_val_loss = meta["best_val_loss"]
    trainer.bad_epochs = int(meta["bad_epochs"])
    # Only early stopping is final; a hook's stop request is not carried over.
    trainer.stop_reason = "early_stopping" if meta["stop_reason"] == "early_stopping" else None
    trainer.train_seconds = float(meta["train_seconds"])
    key = f"rng.torch.{trainer.rank}"
    if key in tensors and trainer.rank < len(meta["rng"]):
        torch.set_rng_state(tensors[key].to(torch.uint8))
        _numpy_rng_from_json(meta["rng"][trainer.rank]["numpy"])
        _python_rng_from_json(meta["rng"][trainer.rank]["python"])
    else:
        # Different world size than when saved: no saved stream for this rank.
        seed_everything(trainer.cfg.seed + trainer.rank + 7919 * trainer.epoch)
