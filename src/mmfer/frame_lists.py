"""The ``frame_images`` cell: a sample's still images in frame order, in one table cell.

Light on purpose (no pandas, no corpus loaders): the sample-table code
(:mod:`mmfer.data.table`) writes these cells and the feature extraction
(:mod:`mmfer.features.frame_images`) reads them, and the inference stack imports the latter.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from mmfer.errors import DataError

__all__ = ["FRAME_IMAGES", "join_frame_images", "split_frame_images"]

#: Optional extra column of a sample made of several still images (e.g. the frames of a
#: CK+ sequence): the image files in frame order, joined with ``os.pathsep`` (a CSV cell
#: holds one string). When set, the face modality comes from these images (one per time
#: step) instead of ``video``/``frames``/``image``; see :mod:`mmfer.features.frame_images`.
FRAME_IMAGES = "frame_images"


def join_frame_images(paths: Sequence[str | Path]) -> str:
    """``frame_images`` cell of ordered image files: ``os.pathsep``-joined absolute-or-given paths.

    Raises
    ------
    DataError
        No path, or a path that contains ``os.pathsep`` (the cell could not be split back).
    """
    parts = [str(p) for p in paths]
    if not parts:
        raise DataError(None, f"{FRAME_IMAGES}: a multi-image sample needs at least one image")
    for p in parts:
        if os.pathsep in p:
            raise DataError(p, f"{FRAME_IMAGES}: path contains {os.pathsep!r}, the list separator")
    return os.pathsep.join(parts)


def split_frame_images(cell: object) -> list[str]:
    """Image files of a ``frame_images`` cell, in order; ``[]`` for an empty cell (None, NaN, "")."""
    if cell is None or (isinstance(cell, float) and cell != cell):  # NaN from pandas
        return []
    return [p for p in str(cell).split(os.pathsep) if p.strip()]
