"""The face wing's plug into the orchestration: face units (video, frames folder, image) -> arrays.

:class:`FaceUnitExtractor` meets :class:`mmfer.features.extractors.UnitExtractor`.
The detection outcome travels with the features as a 0-d ``face_note`` string
array (cached like them), so it reaches ``SampleFeatures.notes``. This module is
light: the extractor (torch, OpenCV) is imported when first needed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from mmfer.config import FaceConfig
from mmfer.errors import ModalityMissing
from mmfer.features.units import Unit

__all__ = ["FaceUnitExtractor", "face_arrays", "run_face"]

#: ``Unit.kind`` -> suffix of the extractor's ``run_<suffix>`` / ``extract_<suffix>`` method.
_FACE_METHODS = {"video": "video", "frames": "frames_dir", "image": "image"}

#: ``n_frames -> indices | None``: the frames a model reads (:meth:`mmfer.fusion.Fuser.face_frames_used`).
FramesUsed = Callable[[int], Sequence[int] | None]


def run_face(ext: Any, kind: str, source: str | Path, frames_used: FramesUsed | None = None) -> Any:
    """``ext.run_<kind>(source)`` (features + detection bookkeeping).

    An extractor with only ``extract_<kind>`` (a stand-in in tests, a plug-in backbone)
    gets its features wrapped in a result without detection information.
    ``frames_used`` (videos only) limits detection + CNN to the frames a model reads.

    Returns
    -------
    FaceResult or types.SimpleNamespace
        ``features (T, D)`` float32, ``boxes``, ``no_face``, ``frames``.
    """
    run = getattr(ext, f"run_{_FACE_METHODS[kind]}", None)
    if run is not None:
        if frames_used is not None and kind == "video":
            return run(source, frames_used=frames_used)
        return run(source)
    feats = np.asarray(getattr(ext, f"extract_{_FACE_METHODS[kind]}")(source), dtype=np.float32)  # (T, D)
    return SimpleNamespace(
        features=feats, boxes=[], no_face=0, frames=int(feats.shape[0]) if feats.ndim else 0
    )


def face_arrays(res: Any, source: str | Path | None, ext: Any) -> dict[str, np.ndarray]:
    """Arrays of one face unit from a :class:`~mmfer.features.face.extractor.FaceResult`.

    Returns
    -------
    dict
        ``face (T_v, D_v)`` float32 and, when a detector ran, ``face_note`` (0-d string).
        With ``no_face: drop`` only the rows of frames where a face was detected.

    Raises
    ------
    ModalityMissing
        No frame was extracted, or (``no_face: drop``) no face was found in any frame.
    """
    feats = np.asarray(res.features, dtype=np.float32)  # (T_v, D_v)
    if feats.ndim != 2 or feats.shape[0] == 0:
        raise ModalityMissing(source, f"no face frames extracted (shape {feats.shape})")
    cfg = getattr(ext, "cfg", None)
    if getattr(cfg, "no_face", "fallback") == "drop" and res.boxes and len(res.boxes) == len(feats):
        # only the frames where the detector found a face; none -> the face modality is masked
        keep = [i for i, b in enumerate(res.boxes) if b is not None]
        if not keep:
            raise ModalityMissing(source, f"no face found in any of the {len(feats)} frames read")
        feats = feats[keep]  # (T_found, D_v)
    out = {"face": feats}
    if getattr(ext, "detector", None) is not None and res.boxes:
        found = res.frames - res.no_face
        sampled = getattr(res, "sampled", None)
        out["face_note"] = np.asarray(
            f"face found in {found}/{res.frames} frames"
            + (f" the model reads (of {sampled} sampled)" if sampled is not None else "")
            + (
                (
                    " (the others left out)"
                    if getattr(cfg, "no_face", "") == "drop"
                    else " (fallback crop used for the others)"
                )
                if res.no_face
                else ""
            )
        )
    return out


class FaceUnitExtractor:
    """Face units -> ``face (T_v, D_v)`` arrays, with a lazily built :class:`FaceFeatureExtractor`.

    Parameters
    ----------
    cfg
        :class:`mmfer.config.FaceConfig`.
    """

    def __init__(self, cfg: FaceConfig) -> None:
        self.cfg = cfg
        self._extractor: Any = None

    @property
    def extractor(self) -> Any:
        """The :class:`~mmfer.features.face.extractor.FaceFeatureExtractor` (built on first use)."""
        if self._extractor is None:
            # torch threads were sized by mmfer.runtime (CLI start, or the pool initialiser)
            from mmfer.features.face.extractor import FaceFeatureExtractor

            self._extractor = FaceFeatureExtractor(self.cfg)
        return self._extractor

    def config_for(self, kind: str) -> dict[str, Any]:
        """Cache-key config: the same for every face source kind."""
        return {"modality": "face", **self.extractor.config_dict()}

    def prefetch(self, units: Sequence[Unit]) -> None:
        """Nothing to batch across files."""

    def compute(self, unit: Unit) -> dict[str, np.ndarray]:
        """Arrays of a ``video``/``frames``/``image`` unit (see :func:`face_arrays`)."""
        ext = self.extractor
        return face_arrays(run_face(ext, unit.kind, unit.source), unit.source, ext)

    def from_file(
        self,
        kind: str,
        path: str | Path,
        *,
        frames_used: FramesUsed | None = None,
        sink: list[Any] | None = None,
    ) -> dict[str, np.ndarray]:
        """Arrays of one face file (inference), its result appended to ``sink`` if given."""
        ext = self.extractor
        res = run_face(ext, kind, path, frames_used)
        if sink is not None:
            sink.append(res)
        return face_arrays(res, path, ext)

    def from_frames(
        self,
        frames: np.ndarray,
        name: str,
        *,
        frames_used: FramesUsed | None = None,
        sink: list[Any] | None = None,
    ) -> dict[str, np.ndarray]:
        """Arrays of ``(T, H, W, 3)`` uint8 RGB frames in memory (streaming), result appended to ``sink``."""
        ext = self.extractor
        if frames_used is not None and hasattr(ext, "run_frames"):
            res = ext.run_frames(frames, name, frames_used=frames_used)
        else:
            res = ext.run_frames(frames, name)
        if sink is not None:
            sink.append(res)
        return face_arrays(res, name, ext)
