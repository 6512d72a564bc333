"""Training: the one loop with hooks, safetensors checkpoints, torchrun data parallelism.

``mmfer.training.ddp`` (torchrun helpers and ``python -m mmfer.training.ddp``)
is deliberately not imported here, so running it with ``-m`` does not import
it twice.
"""

from __future__ import annotations

from mmfer.training import loop as _loop
from mmfer.training.checkpoint import load_checkpoint, read_metadata, save_checkpoint
from mmfer.training.loop import *  # noqa: F403  (Trainer and what loop re-exports: its __all__)

__all__ = ["load_checkpoint", "read_metadata", "save_checkpoint"]
__all__ += _loop.__all__  # one list of the loop's public names, kept in loop.py
