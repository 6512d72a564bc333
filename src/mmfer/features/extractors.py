"""The one interface the modality wings plug into: :class:`UnitExtractor` and its registry.

Each wing (:mod:`mmfer.features.face`, :mod:`mmfer.features.voice`,
:mod:`mmfer.features.words`) offers one class meeting :class:`UnitExtractor`:
the cache-key material of a unit kind, the arrays of a unit, and an optional
batching hook; :data:`UNIT_EXTRACTORS` maps each modality to its factory.
The orchestration (:mod:`mmfer.features.extract`, :mod:`mmfer.features.runner`)
only talks to wings through :class:`Extractors`,
the per-config set of unit extractors, built lazily and once per process
(:func:`extractors_for`). Wings are imported on first use (the face wing pulls
torch and OpenCV), and never import the orchestration.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np

from mmfer.config import FeatureConfig
from mmfer.errors import ConfigError
from mmfer.features.cache import canonical_json
from mmfer.features.units import Unit

__all__ = ["UNIT_EXTRACTORS", "Extractors", "UnitExtractor", "extractors_for", "worker_threads"]


class UnitExtractor(Protocol):
    """What a modality wing offers the orchestration.

    Implementations: :class:`mmfer.features.face.units.FaceUnitExtractor`,
    :class:`mmfer.features.voice.units.VoiceUnitExtractor`,
    :class:`mmfer.features.words.units.WordsUnitExtractor`.
    """

    def config_for(self, kind: str) -> dict[str, Any]:
        """Cache-key material of units of ``kind`` (``Unit.kind``): JSON-able, ``modality`` included."""
        ...

    def compute(self, unit: Unit) -> dict[str, np.ndarray]:
        """Arrays of one unit; raises ``FeatureError``/``ModalityMissing`` on bad input."""
        ...

    def prefetch(self, units: Sequence[Unit]) -> None:
        """Optional batching before :meth:`compute` is called on ``units`` (may do nothing)."""
        ...


def _face(cfg: FeatureConfig, threads: int | None) -> UnitExtractor:
    from mmfer.features.face.units import FaceUnitExtractor

    return FaceUnitExtractor(cfg.face)  # torch threads follow the process plan (mmfer.runtime)


def _voice(cfg: FeatureConfig, threads: int | None) -> UnitExtractor:
    from mmfer.features.voice.units import VoiceUnitExtractor

    return VoiceUnitExtractor(cfg.audio, threads=threads, augment=cfg.augment)


def _words(cfg: FeatureConfig, threads: int | None) -> UnitExtractor:
    from mmfer.features.words.units import WordsUnitExtractor

    return WordsUnitExtractor(cfg.text, threads=threads)


#: Modality -> factory ``(feature config, worker threads or None) -> UnitExtractor``.
UNIT_EXTRACTORS: dict[str, Callable[[FeatureConfig, int | None], UnitExtractor]] = {
    "face": _face,
    "audio": _voice,
    "text": _words,
}


def worker_threads(in_worker: bool) -> int | None:
    """Threads of a worker process (its share, :func:`mmfer.runtime.worker_plan`), else ``None``
    (the extractor follows the process's plan)."""
    if not in_worker:
        return None
    from mmfer.runtime import threads

    return threads()


class Extractors:
    """The unit extractors of one :class:`FeatureConfig`, one per modality, built lazily.

    Parameters
    ----------
    cfg
        Feature config (its ``face``, ``audio`` and ``text`` sections go to the wings).
    limit_threads
        ``True`` in extraction workers: wings size their thread pools to the worker's share.
    """

    def __init__(self, cfg: FeatureConfig, *, limit_threads: bool = False) -> None:
        self.cfg = cfg
        self.limit_threads = limit_threads
        self._wings: dict[str, UnitExtractor] = {}

    def wing(self, modality: str) -> UnitExtractor:
        """The unit extractor of ``modality`` (built on first use)."""
        ext = self._wings.get(modality)
        if ext is None:
            factory = UNIT_EXTRACTORS.get(modality)
            if factory is None:
                raise ConfigError(f"unknown modality {modality!r}; valid: {', '.join(UNIT_EXTRACTORS)}")
            ext = self._wings[modality] = factory(self.cfg, worker_threads(self.limit_threads))
        return ext

    def config_for(self, modality: str, kind: str) -> dict[str, Any]:
        """Cache-key config of units of ``modality`` and ``kind``."""
        return self.wing(modality).config_for(kind)

    def prefetch(self, units: Sequence[Unit]) -> None:
        """Let each wing batch its share of ``units`` (e.g. sentence embeddings)."""
        by_modality: dict[str, list[Unit]] = {}
        for u in units:
            by_modality.setdefault(u.modality, []).append(u)
        for modality, group in by_modality.items():
            self.wing(modality).prefetch(group)

    def compute(self, unit: Unit) -> dict[str, np.ndarray]:
        """Extract one unit; raises :class:`FeatureError`/:class:`ModalityMissing` on bad input."""
        return self.wing(unit.modality).compute(unit)


_PROCESS_EXTRACTORS: dict[str, Extractors] = {}


def extractors_for(cfg: FeatureConfig, *, limit_threads: bool) -> Extractors:
    """Per-process memo, so a pool/dask worker builds its extractors (e.g. the CNN) once."""
    k = canonical_json(dataclasses.asdict(cfg)) + f"|{limit_threads}"
    ex = _PROCESS_EXTRACTORS.get(k)
    if ex is None:
        ex = _PROCESS_EXTRACTORS[k] = Extractors(cfg, limit_threads=limit_threads)
    return ex
