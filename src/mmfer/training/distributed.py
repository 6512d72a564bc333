"""The distributed context the training loop knows: rank, world size, collectives.

:class:`~mmfer.training.loop.Trainer` calls :func:`init_distributed` at the start
of every ``fit``: outside ``torchrun`` it returns a single-process
:class:`DistContext` whose collectives are no-ops; under ``torchrun`` it joins the
gloo process group. The loop imports this module and nothing else about
distribution; the ``torchrun`` command line lives in :mod:`mmfer.training.ddp`,
which imports the loop (one direction: ``ddp -> loop -> distributed``).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from mmfer.errors import ConfigError

__all__ = ["DistContext", "cleanup", "init_distributed", "launched_by_torchrun"]

log = logging.getLogger("mmfer.training.ddp")


@dataclass(frozen=True)
class DistContext:
    """Where this process sits in a (possibly single-process) data-parallel job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        """True when more than one process trains the model together."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the only process that writes files."""
        return self.rank == 0

    def wrap(self, model: nn.Module, *, find_unused_parameters: bool = False) -> nn.Module:
        """``DistributedDataParallel(model)`` when distributed, else ``model`` itself.

        DDP broadcasts rank 0's parameters at construction, so every replica
        starts from identical weights whatever each rank initialised.
        """
        if not self.enabled:
            return model
        # CPU/gloo: no device_ids; gradients are averaged across ranks in backward().
        return DistributedDataParallel(model, find_unused_parameters=find_unused_parameters)

    def all_reduce_sum(self, t: torch.Tensor) -> torch.Tensor:
        """Element-wise sum of ``t`` over ranks (returns ``t`` unchanged when single-process)."""
        if self.enabled:
            dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return t

    def any(self, flag: bool) -> bool:
        """True if ``flag`` is True on any rank (keeps stop decisions in lockstep)."""
        if not self.enabled:
            return flag
        t = torch.tensor([1.0 if flag else 0.0])
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item() > 0)

    def gather(self, obj: Any) -> list[Any]:
        """Every rank's ``obj``, indexed by rank (a collective: all ranks must call it)."""
        if not self.enabled:
            return [obj]
        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def barrier(self) -> None:
        """Wait for all ranks."""
        if self.enabled:
            dist.barrier()


def launched_by_torchrun() -> bool:
    """True when the environment carries torchrun's ``RANK``/``WORLD_SIZE``."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def init_distributed(backend: str = "gloo", timeout_s: float = 600.0) -> DistContext:
    """Join (once) the process group torchrun set up, or describe a single process.

    Idempotent: the Trainer calls it at every ``fit`` so several folds reuse one
    process group. Call :func:`cleanup` at the end of the program.

    Parameters
    ----------
    backend
        ``gloo`` (CPU). NCCL is not used: this project trains on CPU.
    timeout_s
        Collective timeout; a rank that died makes the others fail after this.
    """
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if dist.is_available() and dist.is_initialized():
        return DistContext(dist.get_rank(), dist.get_world_size(), local_rank)
    if not launched_by_torchrun():
        return DistContext()
    try:
        world = int(os.environ["WORLD_SIZE"])
        rank = int(os.environ["RANK"])
    except ValueError as e:
        raise ConfigError(f"torchrun environment: RANK/WORLD_SIZE must be integers ({e})") from None
    if world <= 1:
        return DistContext()
    if not dist.is_available():  # pragma: no cover - every CPU wheel ships torch.distributed
        raise ConfigError("torch.distributed is not available in this torch build")
    # env:// rendezvous: MASTER_ADDR/MASTER_PORT come from torchrun.
    dist.init_process_group(backend=backend, timeout=timedelta(seconds=timeout_s))
    log.info("joined process group: rank %d of world_size=%d (%s)", rank, world, backend)
    return DistContext(dist.get_rank(), dist.get_world_size(), local_rank)


def cleanup() -> None:
    """Leave the process group if this process joined one."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
