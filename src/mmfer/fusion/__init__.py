"""Fusion of per-modality features into one time-aligned sequence."""

from mmfer.fusion.fuser import FusedBatch, Fuser, NotFittedError, pool_stats, pool_steps, resample_steps

__all__ = ["FusedBatch", "Fuser", "NotFittedError", "pool_stats", "pool_steps", "resample_steps"]
