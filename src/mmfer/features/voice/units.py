"""The voice wing's plug into the orchestration: audio units (audio files, video sound tracks) -> arrays.

:class:`VoiceUnitExtractor` meets :class:`mmfer.features.extractors.UnitExtractor`
and builds the backend ``AudioConfig.extractor`` names through the dispatcher
(:func:`mmfer.features.voice.dispatch.create_audio_extractor`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from mmfer.config import AudioConfig, AugmentConfig
from mmfer.errors import FeatureError
from mmfer.features.units import AUGMENTED_KIND, Unit
from mmfer.features.voice.augment import augment_key, augment_wave
from mmfer.features.voice.dispatch import AudioExtractor, create_audio_extractor
from mmfer.features.voice.loading import check_silence, load_clip

__all__ = ["VoiceUnitExtractor"]


class VoiceUnitExtractor:
    """Audio units -> ``audio (T_a, D_a)`` arrays (MFCC, Whisper or eGeMAPS frames).

    Parameters
    ----------
    cfg
        :class:`mmfer.config.AudioConfig`.
    threads
        Intra-op threads of the backend (a worker's share), ``None`` = the process plan.
    augment
        Train-time augmentation settings, read by ``audio_aug`` units
        (:data:`mmfer.features.units.AUGMENTED_KIND`); ``None`` = the defaults.
    """

    def __init__(
        self, cfg: AudioConfig, *, threads: int | None = None, augment: AugmentConfig | None = None
    ) -> None:
        self.cfg = cfg
        self.threads = threads
        self.augment = augment if augment is not None else AugmentConfig()
        self._extractor: AudioExtractor | None = None

    @property
    def extractor(self) -> AudioExtractor:
        """The backend (mfcc | whisper | egemaps, as the profile resolved it), built on first use."""
        if self._extractor is None:
            self._extractor = create_audio_extractor(self.cfg, threads=self.threads)
        return self._extractor

    def config_for(self, kind: str) -> dict[str, Any]:
        """Cache-key config: the backend's ``config_dict()`` (+ ``augment`` for augmented copies;
        the orchestration adds the copy index, ``Unit.variant``)."""
        base = {"modality": "audio", **self.extractor.config_dict()}
        if kind == AUGMENTED_KIND:
            return {**base, "augment": augment_key(self.augment)}
        return base

    def prefetch(self, units: Sequence[Unit]) -> None:
        """Nothing to batch across files."""

    def compute(self, unit: Unit) -> dict[str, np.ndarray]:
        """``{"audio": (T_a, D_a)}`` of an audio file or a video's sound track (or of its
        augmented copy ``unit.variant`` for ``audio_aug`` units)."""
        if unit.kind == AUGMENTED_KIND:
            return {"audio": self.augmented(unit.source, unit.variant)}  # (T_k, D_a)
        return {"audio": self.extractor.extract(unit.source)}  # (T_a, D_a)

    def augmented(self, path: str, copy: int) -> np.ndarray:
        """Frames ``(T_k, D_a)`` of augmented copy ``copy`` of a clip: the backend's decoding
        (same rate, length cap and silence test as :meth:`compute`), then
        :func:`mmfer.features.voice.augment.augment_wave`, then the backend.

        Raises
        ------
        ModalityMissing
            Silent clip, or too short to augment.
        FeatureError
            Unreadable file, or the augmentation or the backend failed (naming the file).
        """
        sr = getattr(self.extractor, "read_rate", None) or self.cfg.sample_rate
        wave = load_clip(path, self.cfg, sample_rate=sr)  # (n_samples,)
        copy_wave = augment_wave(wave, sr, self.augment, copy, source=path)  # (n_samples',)
        try:
            return self.extractor.transform_wave(copy_wave, sr)  # (T_k, D_a)
        except FeatureError as e:
            raise FeatureError(e.path if e.path is not None else path, e.problem) from None

    def from_wave(self, wave: np.ndarray, sample_rate: int, name: str) -> dict[str, np.ndarray]:
        """``{"audio": (T_a, D_a)}`` of a ``(n_samples,)`` waveform in memory, after the same silence test."""
        w = np.asarray(wave, dtype=np.float32)  # (n_samples,)
        check_silence(w, sample_rate, self.cfg.silence_dbfs, name)
        return {"audio": self.extractor.transform_wave(w, sample_rate)}  # (T_a, D_a)
