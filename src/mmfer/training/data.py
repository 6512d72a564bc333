"""Training data: fused inputs and labels as tensors, class weights, seeding.

:class:`TensorData` is what :class:`~mmfer.training.loop.Trainer` trains on;
its :meth:`TensorData.loader` gives the deterministic (seed, epoch) shuffling
that exact resume relies on.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, DistributedSampler, Sampler

from mmfer.errors import DataError
from mmfer.io import atomic_write

__all__ = ["TensorData", "class_weights", "seed_everything"]


@dataclass(eq=False)  # element-wise tensor equality has no single truth value
class TensorData(Dataset):
    """Fused model inputs and labels, held as tensors.

    Parameters
    ----------
    x
        ``(N, T, F)`` float32 features (numpy arrays are converted).
    mask
        ``(N, T)`` bool, True = valid time step.
    y
        ``(N,)`` int64 class indices.

    Indexing with a list/array/tensor of row indices returns the batch tuple
    ``(x (B, T, F), mask (B, T), y (B,))``, which is what :meth:`loader` relies on.
    """

    x: torch.Tensor
    mask: torch.Tensor
    y: torch.Tensor

    def __post_init__(self) -> None:
        self.x = torch.as_tensor(self.x, dtype=torch.float32)
        self.mask = torch.as_tensor(self.mask).to(torch.bool)
        self.y = torch.as_tensor(self.y)
        if self.y.is_floating_point() or self.y.dtype == torch.bool:
            raise DataError(None, f"TensorData: y must hold integer class indices, got dtype {self.y.dtype}")
        self.y = self.y.to(torch.long)
        if self.x.ndim != 3:
            raise DataError(None, f"TensorData: x must be (N, T, F), got shape {tuple(self.x.shape)}")
        if tuple(self.mask.shape) != tuple(self.x.shape[:2]):
            raise DataError(
                None, f"TensorData: mask shape {tuple(self.mask.shape)} != x (N, T) {tuple(self.x.shape[:2])}"
            )
        if tuple(self.y.shape) != (self.x.shape[0],):
            raise DataError(None, f"TensorData: y shape {tuple(self.y.shape)} != ({self.x.shape[0]},)")
        if len(self.y) and int(self.y.min()) < 0:
            raise DataError(None, f"TensorData: negative class index {int(self.y.min())} in y")

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def __getitem__(self, idx: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if isinstance(idx, (list, np.ndarray)):
            idx = torch.as_tensor(idx, dtype=torch.long)
        return self.x[idx], self.mask[idx], self.y[idx]

    def subset(self, idx: Any) -> TensorData:
        """Rows ``idx`` (indices or boolean mask) as a new :class:`TensorData`."""
        x, mask, y = self[idx]
        return TensorData(x, mask, y)

    def loader(
        self,
        batch_size: int,
        *,
        shuffle: bool = False,
        seed: int = 0,
        epoch: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> DataLoader:
        """Batches of ``(x (B, T, F), mask (B, T), y (B,))``.

        Shuffled order depends only on ``(seed, epoch)``: a ``DistributedSampler``
        permutes with a ``torch.Generator`` seeded with ``seed + epoch`` (also with
        one process), so a resumed run replays exactly the order of an
        uninterrupted one. With ``world_size > 1`` each rank gets its shard
        (padded by repetition to equal length so every rank runs the same number
        of steps, which DDP's collectives need).
        """
        sampler: Sampler[int] | Sequence[int]
        if shuffle or world_size > 1:
            ds = DistributedSampler(
                self, num_replicas=world_size, rank=rank, shuffle=shuffle, seed=seed, drop_last=False
            )
            ds.set_epoch(epoch)
            sampler = ds
        else:
            sampler = range(len(self))
        batches = BatchSampler(sampler, batch_size, drop_last=False)  # type: ignore[arg-type]
        # batch_size=None: the dataset is indexed with a whole list of rows at once,
        # avoiding per-sample __getitem__ + stacking.
        return DataLoader(self, sampler=batches, batch_size=None)

    @classmethod
    def from_npz(cls, path: str | Path) -> TensorData:
        """Load ``x``, ``mask``, ``y`` from an ``.npz`` (no pickle).

        Raises
        ------
        DataError
            Missing/unreadable file, missing key or inconsistent shapes, naming ``path``.
        """
        p = Path(path)
        if not p.is_file():
            raise DataError(p, "npz file not found")
        try:
            with np.load(p, allow_pickle=False) as z:
                missing = [k for k in ("x", "mask", "y") if k not in z.files]
                if missing:
                    raise DataError(p, f"npz lacks array(s) {', '.join(missing)} (needs x, mask, y)")
                x, mask, y = z["x"], z["mask"], z["y"]
        except DataError:
            raise
        except (OSError, ValueError, EOFError) as e:
            raise DataError(p, f"cannot read npz: {e}") from None
        try:
            return cls(x, mask, y)
        except DataError as e:
            raise DataError(p, e.problem) from None

    def save_npz(self, path: str | Path) -> Path:
        """Write ``x``, ``mask``, ``y`` to an ``.npz`` atomically."""

        def write(tmp: Path) -> None:
            with open(tmp, "wb") as fh:
                np.savez(fh, x=self.x.numpy(), mask=self.mask.numpy(), y=self.y.numpy())

        return atomic_write(path, write)


def class_weights(y: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Inverse-frequency class weights of the training labels, normalised.

    ``w_c = (1 / n_c) * K / sum_{k present} (1 / n_k)`` for the ``K`` classes
    present, so present classes average to 1; a class absent from ``y`` gets 1
    (it never contributes to the training loss, and an average weight keeps its
    validation samples counted like any other class).

    Parameters
    ----------
    y
        ``(N,)`` int64 training labels.
    num_classes
        ``C``.

    Returns
    -------
    torch.Tensor
        ``(C,)`` float32.
    """
    counts = torch.bincount(y.to(torch.long).cpu(), minlength=num_classes).to(torch.float64)  # (C,)
    present = counts > 0
    inv = torch.where(present, 1.0 / counts.clamp(min=1.0), torch.zeros_like(counts))
    w = inv * present.sum() / inv.sum()
    w[~present] = 1.0
    return w.to(torch.float32)


def seed_everything(seed: int) -> None:
    """Seed Python ``random``, numpy's global RNG and torch."""
    random.seed(seed)
    # The legacy global RNG is what third-party code (e.g. scikit-learn defaults) draws from.
    np.random.seed(seed % 2**32)  # noqa: NPY002
    torch.manual_seed(seed)
