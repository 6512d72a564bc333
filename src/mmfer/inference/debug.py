"""Face-crop visibility: contact sheets of the crops the face branch saw.

``mmfer predict --debug-dir DIR`` writes, per input with a face modality,
``DIR/<stem>.png``: one tile per sampled frame, the crop the CNN received (as the
detector boxed it, or the fallback crop), with a green border where a face was
detected and a red one where the fallback was used; and ``DIR/detection.csv``
with the detection rate per input. The same outcome is in each prediction's
``notes["face"]``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["contact_sheet", "write_debug"]

TILE = 96  # pixels per crop tile


def contact_sheet(source: str | Path, result: Any, face_cfg: Any, *, columns: int = 8) -> np.ndarray:
    """Tiles of the crops of one input: ``(rows * TILE, columns * TILE, 3)`` uint8 RGB.

    Parameters
    ----------
    source
        The video or image the crops came from (frames are decoded again with the
        checkpoint's ``fps``/``max_frames``, so they are the frames the CNN saw).
    result
        Its :class:`~mmfer.features.face.extractor.FaceResult` (detected box per frame).
    face_cfg
        The checkpoint's :class:`~mmfer.config.FaceConfig` (sampling, crop margin).
    """
    import cv2

    from mmfer.features.face.crops import crop_face
    from mmfer.features.video import read_image, read_video_frames
    from mmfer.inference.types import input_kind

    if input_kind(source) == "image":
        frames = [read_image(source)]
    else:
        frames = list(read_video_frames(source, fps=face_cfg.fps, max_frames=face_cfg.max_frames)[0])
    boxes = list(result.boxes) + [None] * max(0, len(frames) - len(result.boxes))
    hits = [i for i, b in enumerate(boxes) if b is not None]
    tiles = []
    for i, frame in enumerate(frames):
        box = (
            boxes[i]
            if boxes[i] is not None
            else (boxes[min(hits, key=lambda j: abs(j - i))] if hits else None)
        )
        crop = crop_face(frame, box, face_cfg.crop_margin, TILE)  # (TILE, TILE, 3)
        crop = np.ascontiguousarray(crop)
        colour = (0, 200, 0) if boxes[i] is not None else (220, 0, 0)
        cv2.rectangle(crop, (0, 0), (TILE - 1, TILE - 1), colour, 3)
        tiles.append(crop)
    columns = min(columns, len(tiles))
    rows = -(-len(tiles) // columns)
    sheet = np.full((rows * TILE, columns * TILE, 3), 255, dtype=np.uint8)
    for k, t in enumerate(tiles):
        r, c = divmod(k, columns)
        sheet[r * TILE : (r + 1) * TILE, c * TILE : (c + 1) * TILE] = t
    return sheet


def write_debug(out_dir: str | Path, results: Mapping[str, Any], face_cfg: Any) -> Path:
    """Write one contact sheet PNG per input and ``detection.csv``; returns the CSV path.

    ``results`` maps input path -> FaceResult (``Predictor.face_results`` after a
    prediction with ``debug=True``). A sheet that cannot be drawn is skipped (the
    CSV row still records the detection rate).
    """
    import csv

    import cv2

    from mmfer.io import atomic_write_bytes

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for src, res in results.items():
        n = int(res.frames)
        found = n - int(res.no_face)
        png = out / f"{Path(src).stem}.png"
        try:
            sheet = contact_sheet(src, res, face_cfg)
            ok, buf = cv2.imencode(".png", cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
            if ok:
                atomic_write_bytes(png, buf.tobytes())
        except Exception as e:  # a debug picture must never cost the predictions
            png = Path(f"(not drawn: {type(e).__name__}: {e})")
        rows.append(
            {
                "path": src,
                "frames": n,
                "face_found": found,
                "rate": f"{found / max(n, 1):.3f}",
                "sheet": str(png),
            }
        )
    csv_path = out / "detection.csv"
    with open(csv_path, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=["path", "frames", "face_found", "rate", "sheet"])
        w.writeheader()
        w.writerows(rows)
    return csv_path
