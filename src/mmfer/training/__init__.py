"""Training: the one loop with hooks, safetensors checkpoints, torchrun data parallelism.

``mmfer.training.ddp`` (torchrun helpers and ``python -m mmfer.training.ddp``)
is deliberately not imported here, so running it with ``-m`` does not import
it twice.
"""

from __future__ import annotations

from mmfer.training.checkpoint import load_checkpoint, read_metadata, save_checkpoint
from mmfer.training.data import TensorData, class_weights, seed_everything
from mmfer.training.hooks import LOG_COLUMNS, CheckpointHook, CSVLogger, Hook, TrainResult
from mmfer.training.loop import Trainer
from mmfer.training.predict import predict

__all__ = [
    "LOG_COLUMNS",
    "CSVLogger",
    "CheckpointHook",
    "Hook",
    "TensorData",
    "TrainResult",
    "Trainer",
    "class_weights",
    "load_checkpoint",
    "predict",
    "read_metadata",
    "save_checkpoint",
    "seed_everything",
]
