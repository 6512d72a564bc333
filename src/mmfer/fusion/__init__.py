"""Fusion of per-modality features into one time-aligned sequence."""

from mmfer.fusion.fuser import FusedBatch, Fuser, NotFittedError, pool_stats, pool_steps, resample_steps
from mmfer.fusion.layout import FusedLayout

__all__ = [
    "FusedBatch",
    "FusedLayout",
    "Fuser",
    "NotFittedError",
    "pool_stats",
    "pool_steps",
    "resample_steps",
]
