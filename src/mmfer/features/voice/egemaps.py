"""eGeMAPS: the 88 Geneva minimalistic acoustic parameters (Eyben et al. 2016), via openSMILE.

Clip-level functionals (pitch, jitter/shimmer, formants, loudness, spectral
slope, MFCC 1-4, rates of voiced segments, ...) designed for affective
computing. Complements the Whisper encoder (mmfer.features.voice.whisper): eGeMAPS
is explicit prosody and voice quality, which an ASR encoder is trained to
ignore.

Licence: the ``opensmile`` Python package (and the openSMILE binary it ships) is
under the **audEERING Research License** — research, teaching and personal use
only; commercial use needs a licence from audEERING. It is therefore an opt-in
extra, ``pip install 'mmfer[egemaps]'``, never a core dependency.
"""

from __future__ import annotations

import importlib.metadata
from typing import Any

import numpy as np

from mmfer.config import AudioConfig
from mmfer.errors import ConfigError, FeatureError
from mmfer.features.voice.loading import ClipExtractor, as_mono, decoding_key

#: Bumped whenever the feature computation changes, so old cache entries are not reused.
EGEMAPS_VERSION = 1
#: Number of eGeMAPSv02 functionals.
N_FEATURES = 88

_SMILE: Any = None  # opensmile.Smile, created once per process (loading the config costs ~0.3 s)


def _smile() -> Any:
    global _SMILE
    if _SMILE is None:
        import opensmile

        _SMILE = opensmile.Smile(
            feature_set=opensmile.FeatureSet.eGeMAPSv02, feature_level=opensmile.FeatureLevel.Functionals
        )
    return _SMILE


class EGeMAPSExtractor(ClipExtractor):
    """88 eGeMAPSv02 functionals of a clip, as one ``(1, 88)`` frame.

    Parameters
    ----------
    cfg
        :class:`mmfer.config.AudioConfig` (``sample_rate``, ``max_seconds``, ``silence_dbfs``).

    Raises
    ------
    ConfigError
        ``opensmile`` is not installed (it is the opt-in extra ``mmfer[egemaps]``).
    """

    def __init__(self, cfg: AudioConfig) -> None:
        try:
            import opensmile  # noqa: F401
        except ImportError:
            raise ConfigError(
                "audio.extractor=egemaps needs openSMILE (audEERING Research License, non-commercial): "
                "pip install 'mmfer[egemaps]'"
            ) from None
        self.cfg = cfg

    @property
    def dim(self) -> int:
        """Feature size per (single) frame: 88."""
        return N_FEATURES

    def config_dict(self) -> dict[str, Any]:
        """Everything that determines the output (used as the cache key)."""
        cfg = self.cfg
        return {
            "extractor": "egemaps",
            "version": EGEMAPS_VERSION,
            "feature_set": "eGeMAPSv02/Functionals",
            "opensmile": importlib.metadata.version("opensmile"),
            "sample_rate": cfg.sample_rate,
            **decoding_key(cfg),
        }

    def transform_wave(self, wave: np.ndarray, sr: int) -> np.ndarray:
        """Functionals of a waveform.

        Parameters
        ----------
        wave
            ``(n_samples,)`` (or ``(n_samples, channels)``) waveform.
        sr
            Its sample rate (openSMILE resamples internally as its config needs).

        Returns
        -------
        numpy.ndarray
            ``(1, 88)`` float32.

        Raises
        ------
        FeatureError
            Empty waveform, or openSMILE returned non-finite values.
        """
        wave = as_mono(wave, "eGeMAPS")  # (n_samples,)
        feats = _smile().process_signal(wave, sr).to_numpy(dtype=np.float32)  # (1, 88)
        if feats.shape != (1, N_FEATURES):
            raise FeatureError(None, f"openSMILE returned shape {feats.shape}, expected (1, {N_FEATURES})")
        if not np.all(np.isfinite(feats)):
            raise FeatureError(None, "openSMILE returned NaN/inf functionals (clip too short?)")
        return feats
