"""MFCC (+ deltas) frames of a clip (paper section 2.3.3, eqs. 6-7): the ``paper`` profile's voice backend.

The MFCC pipeline is librosa's: power spectrogram -> triangular mel filterbank ->
log power (dB) -> DCT-II (orthonormal). The filterbank is built on the HTK mel
scale, which is exactly eq. 6, ``mel(f) = 2595 log10(1 + f / 700)``; librosa's
default (Slaney) scale is linear below 1 kHz and would not match the paper.
Decoding and the silence test are :mod:`mmfer.features.voice.loading`'s.
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any

import numpy as np

from mmfer.config import AudioConfig
from mmfer.features.voice.loading import SILENCE_MEASURE, ClipExtractor, as_mono

#: Bumped whenever the feature computation changes, so old cache entries are not reused.
MFCC_VERSION = 1


_BLAS: Any = None  # threadpoolctl.ThreadpoolController, created on first MFCC

#: AudioConfig fields that do not affect MFCC (kept out of its cache key).
_NOT_MFCC_FIELDS: frozenset[str] = frozenset(
    {
        "extractor",
        "whisper_compute_type",
        "whisper_pad_30s",
        "whisper_model",
        "whisper_threads",
        "whisper_layer",
        "whisper_layers",
        "whisper_frame_pool",
    }
)


def _one_blas_thread() -> Any:
    """Context limiting BLAS to one thread around the small mel-filterbank product.

    The (n_mels, n_fft/2+1) @ (n_fft/2+1, T) product is far too small to gain from
    OpenBLAS threads; their spin-waiting made MFCC ~5x slower on a 2-core machine
    (bench/bench_audio.py). Parallelism comes from worker processes instead.
    """
    global _BLAS
    if _BLAS is None:
        from threadpoolctl import ThreadpoolController

        _BLAS = ThreadpoolController()
    return _BLAS.limit(limits=1, user_api="blas")


def _delta(m: np.ndarray, order: int) -> np.ndarray:
    """``librosa.feature.delta`` along time, shrinking the window for short clips.

    Parameters
    ----------
    m
        ``(n_mfcc, T)`` coefficients.

    Returns
    -------
    numpy.ndarray
        ``(n_mfcc, T)``; zeros when ``T < 3`` (no slope can be fitted).
    """
    import librosa

    n_frames = m.shape[1]
    # librosa's interp mode needs width <= T, odd and >= 3; 9 is its default.
    width = min(9, n_frames if n_frames % 2 else n_frames - 1)
    if width < 3:
        return np.zeros_like(m)
    return librosa.feature.delta(m, width=width, order=order, axis=-1)


class MFCCExtractor(ClipExtractor):
    """MFCC (+ delta, delta-delta) frames of a clip, eqs. 6-7.

    Stateless (nothing is fitted): standardisation happens later in fusion,
    on the training fold only.

    Parameters
    ----------
    cfg
        :class:`mmfer.config.AudioConfig`.

    Examples
    --------
    >>> ext = MFCCExtractor(AudioConfig())  # doctest: +SKIP
    >>> ext.extract("clip.wav").shape  # doctest: +SKIP
    (301, 120)
    """

    def __init__(self, cfg: AudioConfig) -> None:
        self.cfg = cfg
        sr = cfg.sample_rate
        self.win_length = max(1, round(sr * cfg.win_ms / 1000.0))
        self.hop_length = max(1, round(sr * cfg.hop_ms / 1000.0))
        # FFT size: next power of two >= window (zero-padded window, as in Kaldi/HTK front ends).
        self.n_fft = 1 << (self.win_length - 1).bit_length()

    @property
    def dim(self) -> int:
        """Feature size per frame: ``n_mfcc`` times 3 with deltas, else ``n_mfcc``."""
        return self.cfg.n_mfcc * (3 if self.cfg.deltas else 1)

    def config_dict(self) -> dict[str, Any]:
        """Everything that determines the output (used as the cache key)."""
        # Only the fields MFCC reads: the extractor choice and Whisper options must not
        # change MFCC cache keys (entries made before they existed stay valid).
        fields = {k: v for k, v in dataclasses.asdict(self.cfg).items() if k not in _NOT_MFCC_FIELDS}
        return {
            "extractor": "mfcc",
            "version": MFCC_VERSION,
            **fields,
            "n_fft": self.n_fft,
            "win_length": self.win_length,
            "hop_length": self.hop_length,
            # Which clips are cached as "silent" depends on how silence is measured.
            "silence_measure": SILENCE_MEASURE,
        }

    def transform_wave(self, wave: np.ndarray, sr: int) -> np.ndarray:
        """MFCC frames of a waveform.

        Parameters
        ----------
        wave
            ``(n_samples,)`` mono waveform (resampled to ``cfg.sample_rate`` if ``sr`` differs).
        sr
            Sample rate of ``wave``.

        Returns
        -------
        numpy.ndarray
            ``(T, dim)`` float32, ``T = 1 + n_samples // hop_length`` (centred frames);
            columns are ``[mfcc, delta, delta-delta]``.
        """
        import librosa

        wave = as_mono(wave, "MFCC")  # (n_samples,)
        cfg = self.cfg
        if sr != cfg.sample_rate:
            wave = librosa.resample(wave, orig_sr=sr, target_sr=cfg.sample_rate, res_type="soxr_hq")
        with warnings.catch_warnings(), _one_blas_thread():
            # Clips shorter than one FFT window are handled (zero-padded frames); don't warn per clip.
            warnings.filterwarnings("ignore", message=r"n_fft=\d+ is too large", category=UserWarning)
            m = librosa.feature.mfcc(
                y=wave,
                sr=cfg.sample_rate,
                n_mfcc=cfg.n_mfcc,
                n_fft=self.n_fft,
                hop_length=self.hop_length,
                win_length=self.win_length,
                window="hann",
                n_mels=cfg.n_mels,
                fmin=cfg.fmin,
                fmax=cfg.fmax,
                htk=True,  # eq. 6 mel scale
            )  # (n_mfcc, T)
        if cfg.deltas:
            m = np.concatenate([m, _delta(m, 1), _delta(m, 2)], axis=0)  # (3 * n_mfcc, T)
        return np.ascontiguousarray(m.T, dtype=np.float32)  # (T, dim)
