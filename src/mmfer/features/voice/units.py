"""The voice wing's plug into the orchestration: audio units (audio files, video sound tracks) -> arrays.

:class:`VoiceUnitExtractor` meets :class:`mmfer.features.extractors.UnitExtractor`
and builds the backend ``AudioConfig.extractor`` names through the dispatcher
(:func:`mmfer.features.voice.dispatch.create_audio_extractor`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from mmfer.config import AudioConfig
from mmfer.features.units import Unit
from mmfer.features.voice.dispatch import AudioExtractor, create_audio_extractor
from mmfer.features.voice.loading import check_silence

__all__ = ["VoiceUnitExtractor"]


class VoiceUnitExtractor:
    """Audio units -> ``audio (T_a, D_a)`` arrays (MFCC, Whisper or eGeMAPS frames).

    Parameters
    ----------
    cfg
        :class:`mmfer.config.AudioConfig`.
    threads
        Intra-op threads of the backend (a worker's share), ``None`` = the process plan.
    """

    def __init__(self, cfg: AudioConfig, *, threads: int | None = None) -> None:
        self.cfg = cfg
        self.threads = threads
        self._extractor: AudioExtractor | None = None

    @property
    def extractor(self) -> AudioExtractor:
        """The backend (mfcc | whisper | egemaps, as the profile resolved it), built on first use."""
        if self._extractor is None:
            self._extractor = create_audio_extractor(self.cfg, threads=self.threads)
        return self._extractor

    def config_for(self, kind: str) -> dict[str, Any]:
        """Cache-key config: the backend's ``config_dict()``."""
        return {"modality": "audio", **self.extractor.config_dict()}

    def prefetch(self, units: Sequence[Unit]) -> None:
        """Nothing to batch across files."""

    def compute(self, unit: Unit) -> dict[str, np.ndarray]:
        """``{"audio": (T_a, D_a)}`` of an audio file or a video's sound track."""
        return {"audio": self.extractor.extract(unit.source)}  # (T_a, D_a)

    def from_wave(self, wave: np.ndarray, sample_rate: int, name: str) -> dict[str, np.ndarray]:
        """``{"audio": (T_a, D_a)}`` of a ``(n_samples,)`` waveform in memory, after the same silence test."""
        w = np.asarray(wave, dtype=np.float32)  # (n_samples,)
        check_silence(w, sample_rate, self.cfg.silence_dbfs, name)
        return {"audio": self.extractor.transform_wave(w, sample_rate)}  # (T_a, D_a)
