"""Samples whose face is an ordered list of still images (``frame_images``), e.g. a CK+ sequence.

Extraction does not treat such a sample as one new kind of input: each image becomes its
own face unit, exactly the unit a one-image-per-sample table would plan for that file, so
the cache key and the features are the same as in the per-image protocol (a cache filled
by one protocol serves the other). :func:`expand_frame_images` adds one hidden row per
image before planning; :func:`stack_frame_features` then stacks the images' ``(1, D)``
rows in frame order into the sample's ``(T, D)`` face, which the fuser resamples to
``fusion.steps`` steps like the frames of a video.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mmfer.errors import ConfigError
from mmfer.features.units import SampleFeatures
from mmfer.frame_lists import FRAME_IMAGES, split_frame_images

__all__ = ["expand_frame_images", "stack_frame_features"]

#: Face source columns of a row; a ``frame_images`` row has them cleared in the expanded table.
_FACE_COLUMNS: tuple[str, ...] = ("video", "frames", "image")


def _frame_id(sample_id: str, k: int, n: int) -> str:
    """Id of the hidden row of frame ``k`` (0-based) of ``n``; readable in masking warnings."""
    return f"{sample_id} frame {k + 1}/{n}"


def expand_frame_images(table: pd.DataFrame, max_frames: int) -> tuple[pd.DataFrame, dict[str, list[str]]]:
    """Table with one extra ``image`` row per frame of every ``frame_images`` sample.

    The sample's own row keeps its other modalities (audio, transcript) but loses its face
    sources, so the face is planned from the frame rows only. A sample with more than
    ``max_frames`` images keeps ``max_frames`` evenly spaced ones (first and last
    included), as a folder of frames does.

    Parameters
    ----------
    table
        Sample table, ``(N, C)``; without a ``frame_images`` column it is returned as is.
    max_frames
        ``features.face.max_frames``.

    Returns
    -------
    tuple
        The table to plan, ``(N + n_frame_rows, C)``, and ``{sample id: [frame row id, ...]}``
        in frame order (empty when no row has ``frame_images``).

    Raises
    ------
    ConfigError
        A frame row id collides with a sample id of the table.
    """
    if FRAME_IMAGES not in table.columns:
        return table, {}
    parts: dict[str, list[str]] = {}
    extra: list[dict[str, object]] = []
    has = np.zeros(len(table), dtype=bool)  # (N,) rows whose face comes from frame_images
    for i, (sid, cell) in enumerate(zip(table["id"].astype(str), table[FRAME_IMAGES], strict=True)):
        files = split_frame_images(cell)
        if not files:
            continue
        has[i] = True
        if len(files) > max_frames:
            # imported here: the video module pulls in av and OpenCV
            from mmfer.features.video import evenly_spaced

            files = [files[j] for j in evenly_spaced(len(files), max_frames)]
        ids = [_frame_id(sid, k, len(files)) for k in range(len(files))]
        parts[sid] = ids
        extra += [{"id": fid, "image": f} for fid, f in zip(ids, files, strict=True)]
    if not parts:
        return table, {}
    clash = set(table["id"].astype(str)) & {r["id"] for r in extra}
    if clash:
        first = sorted(clash)[0]
        raise ConfigError(f"sample id {first!r} looks like the frame row of a {FRAME_IMAGES} sample")
    own = table.copy()
    for c in _FACE_COLUMNS:
        if c in own.columns:
            own.loc[has, c] = None
    frames = pd.DataFrame(extra, columns=list(table.columns)).astype(object)
    return pd.concat([own, frames], ignore_index=True), parts


def stack_frame_features(
    results: dict[str, SampleFeatures], parts: dict[str, list[str]]
) -> dict[str, SampleFeatures]:
    """Put each ``frame_images`` sample's frames together; drop the frame rows.

    Parameters
    ----------
    results
        Features of the expanded table (:func:`expand_frame_images`), keyed by row id; a
        frame's ``face`` is ``(T_k, D)`` (``T_k = 1`` for an image).
    parts
        ``{sample id: [frame row id, ...]}`` from :func:`expand_frame_images`.

    Returns
    -------
    dict[str, SampleFeatures]
        The samples of the original table, in its order; a ``frame_images`` sample's
        ``face`` is ``(sum T_k, D)`` float32 in frame order, or ``None`` with
        ``issues["face"]`` naming the first frame that failed (one bad frame masks the
        sample's face: a sequence with a hole is not the sequence).
    """
    if not parts:
        return results
    frame_rows = {fid for ids in parts.values() for fid in ids}
    out = {sid: sf for sid, sf in results.items() if sid not in frame_rows}
    for sid, ids in parts.items():
        sf = out[sid]
        frames = [results[fid] for fid in ids]
        bad = next((k for k, f in enumerate(frames) if f.face is None), None)
        if bad is not None:
            why = frames[bad].issues.get("face", "no face features")
            sf.issues["face"] = f"frame {bad + 1}/{len(ids)}: {why}"
            continue
        sf.face = np.concatenate([f.face for f in frames if f.face is not None], axis=0)  # (T, D)
        notes = list(dict.fromkeys(f.notes["face"] for f in frames if "face" in f.notes))
        if notes:
            sf.notes["face"] = "; ".join(notes)
    return out
