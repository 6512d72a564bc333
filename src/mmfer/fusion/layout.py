"""Where each modality lives in the fused feature vector.

The Fuser concatenates, along the feature axis ``F`` of ``x (N, T, F)``, one block per
used modality (in the order face, audio, text) and then one presence flag per used
modality (same order). Late fusion (one sub-estimator per block) and modality dropout
(zeroing a block and its flag while training) need exactly this map; it is plain JSON
so checkpoints can carry it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from mmfer.errors import DataError

__all__ = ["FusedLayout"]


@dataclass(frozen=True)
class FusedLayout:
    """Column ranges of the modality blocks and presence flags of a fused vector.

    Attributes
    ----------
    modalities
        Used modalities in fused order (a subset of face, audio, text).
    blocks
        ``(start, stop)`` feature columns of each modality's block, in ``modalities`` order.
    flags
        Feature column of each modality's presence flag (1 = present), same order.
    width
        ``F``, the total width (blocks + flags).
    audio_stats
        Pooled statistics per step in the audio block (``fusion.audio_pool``: 1 ``mean``,
        4 ``stats``, 2 ``clipstats``), each a group of ``audio_layers`` layer blocks.
    audio_layers
        Encoder layer blocks per statistic in the audio block (the fuser's layer view;
        0 = unknown, i.e. no ``fusion.audio_block``). Read by ``model.layer_mix``.
    """

    modalities: tuple[str, ...]
    blocks: tuple[tuple[int, int], ...]
    flags: tuple[int, ...]
    width: int
    audio_stats: int = 1
    audio_layers: int = 0

    @classmethod
    def from_dims(
        cls,
        modalities: list[str] | tuple[str, ...],
        dims: dict[str, int],
        *,
        audio_stats: int = 1,
        audio_layers: int = 0,
    ) -> FusedLayout:
        """Layout of blocks of widths ``dims[m]`` in ``modalities`` order, then the flags."""
        blocks, col = [], 0
        for m in modalities:
            blocks.append((col, col + int(dims[m])))
            col += int(dims[m])
        flags = tuple(col + j for j in range(len(modalities)))
        return cls(
            tuple(modalities),
            tuple(blocks),
            flags,
            col + len(modalities),
            int(audio_stats),
            int(audio_layers),
        )

    def block(self, modality: str) -> slice:
        """Feature-axis slice of ``modality``'s block."""
        start, stop = self.blocks[self.modalities.index(modality)]
        return slice(start, stop)

    def present(self, x: np.ndarray) -> np.ndarray:
        """``(N, M)`` bool: which used modality each row of ``x (N, T, F)`` has.

        Read from the presence flags at step 0, which is always a valid step (the
        Fuser zeroes only padding steps past the last valid one).
        """
        if x.ndim != 3 or x.shape[2] != self.width:
            raise DataError(
                None, f"fused input of shape {x.shape} does not match the layout width F={self.width}"
            )
        return x[:, 0, list(self.flags)] > 0.5

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (for checkpoint metadata)."""
        return {
            "modalities": list(self.modalities),
            "blocks": [list(b) for b in self.blocks],
            "flags": list(self.flags),
            "width": self.width,
            "audio_stats": self.audio_stats,
            "audio_layers": self.audio_layers,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FusedLayout:
        """Inverse of :meth:`to_dict`."""
        return cls(
            tuple(str(m) for m in d["modalities"]),
            tuple((int(a), int(b)) for a, b in d["blocks"]),
            tuple(int(f) for f in d["flags"]),
            int(d["width"]),
            int(d.get("audio_stats", 1)),
            int(d.get("audio_layers", 0)),
        )
