"""Data-parallel training with ``torchrun`` (CPU, gloo backend).

The :class:`~mmfer.training.loop.Trainer` calls
:func:`~mmfer.training.distributed.init_distributed` at the start of every
``fit``: outside ``torchrun`` it returns a single-process :class:`DistContext`
and nothing changes; under ``torchrun`` (``RANK`` and
``WORLD_SIZE`` in the environment) it joins the process group, and the Trainer
then wraps the model in ``DistributedDataParallel``, shards the training set
with a seeded ``DistributedSampler``, all-reduces the metrics and lets only
rank 0 write logs and checkpoints. There is no second training loop here.

Command line (one process per rank)::

    torchrun --standalone --nproc_per_node=2 -m mmfer.training.ddp \\
        --data train.npz --out runs/ddp --epochs 20 --model rmlstm

``--data`` is an ``.npz`` with ``x`` (N, T, F) float32, ``mask`` (N, T) bool and
``y`` (N,) int (see :meth:`TensorData.save_npz`). Rank 0 writes ``log.csv``,
``last.safetensors``, ``best.safetensors`` (when validating), ``model.safetensors``
(final weights + model spec) and ``result.json``; ``--rank-files`` makes every
rank also write ``rank<r>.json`` with a SHA-256 of its final weights, to check
that the replicas agree.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import importlib
import json
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from mmfer.config import ExperimentConfig, ModelConfig, TrainConfig, load_config, to_dict
from mmfer.errors import ConfigError, MmferError
from mmfer.io import atomic_write_text
from mmfer.training.checkpoint import save_checkpoint, with_prefix
from mmfer.training.data import TensorData, seed_everything

# Re-exported: the distributed context lives in training/distributed.py (imported by the loop).
from mmfer.training.distributed import DistContext, cleanup, init_distributed, launched_by_torchrun
from mmfer.training.hooks import Hook, TrainResult
from mmfer.training.loop import Trainer

__all__ = [
    "DistContext",
    "cleanup",
    "init_distributed",
    "launched_by_torchrun",
    "main",
    "state_hash",
]

log = logging.getLogger("mmfer.training.ddp")


def state_hash(model: nn.Module) -> str:
    """SHA-256 of a model's ``state_dict`` (names and raw bytes, in name order)."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


# --------------------------------------------------------------------------- command line


class _StepCounter(Hook):
    """Optimizer steps per epoch on this rank (shows the data was sharded)."""

    def __init__(self) -> None:
        self.steps: list[int] = []

    def on_epoch_start(self, trainer: Trainer) -> None:
        self.steps.append(0)

    def on_batch_end(self, trainer: Trainer, loss: float) -> None:
        self.steps[-1] += 1


def _model_factory(spec: str) -> Callable[..., nn.Module]:
    """``module:callable`` import path, or a name registered in :mod:`mmfer.models`."""
    if ":" in spec:
        mod_name, _, attr = spec.partition(":")
        try:
            factory = getattr(importlib.import_module(mod_name), attr)
        except (ImportError, AttributeError) as e:
            raise ConfigError(f"--model {spec!r}: cannot import {attr!r} from {mod_name!r} ({e})") from None
        return factory

    def build(*, in_features: int, num_classes: int, cfg: Any) -> nn.Module:
        from mmfer.models import create_model

        return create_model(spec, in_features=in_features, num_classes=num_classes, cfg=cfg)

    return build


def _split_val(data: TensorData, fraction: float, seed: int) -> tuple[TensorData, TensorData | None]:
    """Stratified random hold-out (the npz carries no speaker ids to group by)."""
    if fraction <= 0:
        return data, None
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(data))
    y = data.y.numpy()
    _, counts = np.unique(y, return_counts=True)
    stratify = y if counts.min() >= 2 else None
    tr, va = train_test_split(idx, test_size=fraction, random_state=seed, stratify=stratify)
    return data.subset(np.sort(tr)), data.subset(np.sort(va))


def build_parser() -> argparse.ArgumentParser:
    """Arguments of ``python -m mmfer.training.ddp``."""
    p = argparse.ArgumentParser(
        prog="python -m mmfer.training.ddp",
        description="Train one model on an npz of fused features (run under torchrun for data parallelism).",
    )
    p.add_argument("--data", required=True, help="npz with x (N,T,F), mask (N,T), y (N,)")
    p.add_argument("--val", default=None, help="optional validation npz (else --val-fraction of --data)")
    p.add_argument("--out", required=True, help="output folder (log, checkpoints, model)")
    p.add_argument("--config", default=None, help="experiment YAML; its train and model sections are used")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override")
    p.add_argument("--model", default=None, help="registered model name or module:callable")
    p.add_argument("--num-classes", type=int, default=None, help="default: max(y) + 1")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--val-fraction", type=float, default=None)
    p.add_argument("--no-resume", action="store_true", help="ignore an existing last.safetensors")
    p.add_argument("--rank-files", action="store_true", help="every rank writes rank<r>.json")
    return p


def _train_config(args: argparse.Namespace) -> tuple[TrainConfig, ModelConfig]:
    """The config file's train/model sections with the command-line overrides on top."""
    exp = load_config(args.config, list(args.set), cls=ExperimentConfig)
    cli = {
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "seed": args.seed,
        "val_fraction": args.val_fraction,
    }
    train_cfg = dataclasses.replace(exp.train, **{k: v for k, v in cli.items() if v is not None})
    if not sys.stderr.isatty():
        train_cfg = dataclasses.replace(train_cfg, progress=False)
    model_cfg = exp.model if args.model is None else dataclasses.replace(exp.model, name=args.model)
    return train_cfg, model_cfg


def _load_data(args: argparse.Namespace, train_cfg: TrainConfig) -> tuple[TensorData, TensorData | None, int]:
    """Training data, optional validation data (given or held out) and the class count."""
    data = TensorData.from_npz(args.data)
    if args.val is not None:
        train, val = data, TensorData.from_npz(args.val)
    else:
        train, val = _split_val(data, train_cfg.val_fraction, train_cfg.seed)
    labels_max = int(data.y.max()) if val is None else max(int(data.y.max()), int(val.y.max()))
    return train, val, args.num_classes or labels_max + 1


def _save_model(
    out: Path,
    model: nn.Module,
    model_cfg: ModelConfig,
    in_features: int,
    num_classes: int,
    result: TrainResult,
    digest: str,
) -> None:
    """Write ``model.safetensors`` (with the weights' ``digest``) and ``result.json`` (rank 0 only)."""
    save_checkpoint(
        out / "model.safetensors",
        with_prefix("model", model.state_dict()),
        {
            "kind": "mmfer.model",
            "model": to_dict(model_cfg),
            "in_features": in_features,
            "num_classes": num_classes,
            "best_epoch": result.best_epoch,
            "sha256": digest,
        },
    )
    atomic_write_text(out / "result.json", json.dumps(result.to_dict(), indent=2) + "\n")
    log.info("done: %d epochs, best epoch %s, weights %s", result.epochs_run, result.best_epoch, digest)


def _write_rank_file(
    out: Path, ctx: DistContext, digest: str, result: TrainResult, counter: _StepCounter, train_rows: int
) -> None:
    """``rank<r>.json``: what this rank saw (weights digest, steps per epoch, losses)."""
    final = result.history[-1] if result.history else {}
    info = {
        "rank": ctx.rank,
        "world_size": ctx.world_size,
        "weights_sha256": digest,
        "epochs_run": result.epochs_run,
        "steps_per_epoch": counter.steps,
        "train_rows": train_rows,
        "first_train_loss": result.history[0]["train_loss"] if result.history else None,
        "last_train_loss": final.get("train_loss"),
    }
    atomic_write_text(out / f"rank{ctx.rank}.json", json.dumps(info, indent=2) + "\n")


def _run(args: argparse.Namespace, ctx: DistContext) -> None:
    """Build, train and save one model as ``args`` say (every rank)."""
    train_cfg, model_cfg = _train_config(args)
    train, val, num_classes = _load_data(args, train_cfg)
    in_features = int(train.x.shape[-1])
    # Same seed on every rank; DDP would broadcast rank 0's weights anyway.
    seed_everything(train_cfg.seed)
    model = _model_factory(model_cfg.name)(in_features=in_features, num_classes=num_classes, cfg=model_cfg)
    log.info(
        "world_size=%d model=%s train=%d val=%d classes=%d",
        ctx.world_size,
        model_cfg.name,
        len(train),
        0 if val is None else len(val),
        num_classes,
    )
    out = Path(args.out)
    counter = _StepCounter()
    result = Trainer(train_cfg, hooks=[counter]).fit(
        model, train, val, num_classes=num_classes, out_dir=out, resume=not args.no_resume
    )
    digest = state_hash(model)
    if ctx.is_main:
        _save_model(out, model, model_cfg, in_features, num_classes, result, digest)
    if args.rank_files:
        _write_rank_file(out, ctx, digest, result, counter, len(train))
    ctx.barrier()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m mmfer.training.ddp`` (with or without torchrun)."""
    args = build_parser().parse_args(argv)
    ctx = init_distributed()
    logging.basicConfig(
        level=logging.INFO if ctx.is_main else logging.WARNING,
        format=f"%(asctime)s rank{ctx.rank} %(name)s: %(message)s",
    )
    try:
        _run(args, ctx)
    except MmferError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    finally:
        cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
