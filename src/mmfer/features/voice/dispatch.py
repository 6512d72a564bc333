"""The voice backend dispatcher: ``AudioConfig.extractor`` -> MFCC, Whisper or eGeMAPS extractor.

This module imports the backends; no backend imports it (they share decoding
through :mod:`mmfer.features.voice.loading` instead), so there is no import circle.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from mmfer.config import AudioConfig
from mmfer.errors import ConfigError
from mmfer.features.voice.egemaps import EGeMAPSExtractor
from mmfer.features.voice.mfcc import MFCCExtractor
from mmfer.features.voice.whisper import WhisperEncoderExtractor

#: Names ``AudioConfig.extractor`` may take once resolved (``auto`` reads as ``whisper``).
AUDIO_EXTRACTORS: tuple[str, ...] = ("mfcc", "whisper", "egemaps")


class AudioExtractor(Protocol):
    """What every voice backend offers (and the voice wing calls)."""

    def config_dict(self) -> dict[str, object]:
        """Everything that determines the output (cache-key material)."""
        ...

    def extract(self, path: str) -> np.ndarray:
        """Decode a file and return ``(T, D)`` float32 frames."""
        ...

    def transform_wave(self, wave: np.ndarray, sr: int) -> np.ndarray:
        """``(n_samples,)`` waveform at ``sr`` -> ``(T, D)`` float32 frames."""
        ...


def create_audio_extractor(cfg: AudioConfig, *, threads: int | None = None) -> AudioExtractor:
    """The extractor ``cfg.extractor`` names; all share ``extract(path)``, ``transform_wave(wave, sr)``
    and ``config_dict()``.

    Parameters
    ----------
    cfg
        :class:`mmfer.config.AudioConfig` with ``extractor`` resolved (``auto`` is read as the
        ``default`` profile's choice, ``whisper``, as :class:`mmfer.config.FeatureConfig` would).
    threads
        Intra-op threads for the Whisper model (workers pass 1); ignored by the others.

    Returns
    -------
    MFCCExtractor | WhisperEncoderExtractor | EGeMAPSExtractor
        Output ``(T, D)`` float32: MFCC ``(T, 3 n_mfcc)`` at 1 / hop, Whisper ``(T, 384)`` at 50/s,
        eGeMAPS ``(1, 88)``.

    Raises
    ------
    ConfigError
        Unknown extractor, or its packages are not installed (with the install command).
    """
    name = "whisper" if cfg.extractor == "auto" else cfg.extractor
    if name == "mfcc":
        return MFCCExtractor(cfg)
    if name == "whisper":
        return WhisperEncoderExtractor(cfg, threads=threads)
    if name == "egemaps":
        return EGeMAPSExtractor(cfg)
    raise ConfigError(f"audio.extractor: {cfg.extractor!r} is not one of {list(AUDIO_EXTRACTORS)}")
