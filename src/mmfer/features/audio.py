"""Audio branch: decoding, silence check and MFCC features (paper section 2.3.3, eqs. 6-7).

The MFCC pipeline is librosa's: power spectrogram -> triangular mel filterbank ->
log power (dB) -> DCT-II (orthonormal). The filterbank is built on the HTK mel
scale, which is exactly eq. 6, ``mel(f) = 2595 log10(1 + f / 700)``; librosa's
default (Slaney) scale is linear below 1 kHz and would not match the paper.
"""

from __future__ import annotations

import dataclasses
import math
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from mmfer.config import AudioConfig
from mmfer.errors import FeatureError, ModalityMissing

#: Extensions libsndfile decodes directly (fast, exact sample count).
SOUNDFILE_EXTENSIONS: frozenset[str] = frozenset({".wav", ".flac", ".ogg", ".oga", ".aiff", ".aif"})
#: Containers / compressed formats decoded through PyAV (``video.read_audio_track``).
CONTAINER_EXTENSIONS: frozenset[str] = frozenset(
    {".mp4", ".avi", ".flv", ".mkv", ".webm", ".mov", ".mpg", ".mpeg", ".mp3", ".m4a", ".aac", ".wma"}
)
#: Bumped whenever the feature computation changes, so old cache entries are not reused.
MFCC_VERSION = 1

# libsndfile reports a WAV whose data chunk is shorter than its header says as
# "data : <declared> (should be <present>)" and then silently reads the short part.
_WAV_SHORT_DATA = re.compile(r"^data\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)
# Streaming writers leave these placeholder sizes in the header; they are not truncation.
_WAV_PLACEHOLDER_SIZES = {0, 0xFFFFFFFF, 0x7FFFFFFF}


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


def rms_dbfs(wave: np.ndarray) -> float:
    """Root-mean-square level of a waveform in dB relative to full scale.

    Parameters
    ----------
    wave
        ``(n_samples,)`` float waveform in [-1, 1].

    Returns
    -------
    float
        ``20 log10(rms)``; ``-inf`` for an all-zero (or empty) signal.
    """
    if wave.size == 0:
        return -math.inf
    # float64 accumulation: float32 sums of squares lose the quiet tail of long clips.
    rms = float(np.sqrt(np.mean(np.square(wave, dtype=np.float64))))
    return 20.0 * math.log10(rms) if rms > 0 else -math.inf


def loud_level_dbfs(
    wave: np.ndarray,
    sample_rate: int,
    *,
    frame_ms: float = 25.0,
    hop_ms: float = 10.0,
    percentile: float = 95.0,
) -> float:
    """Level of the loud part of a clip: a high percentile of short-frame RMS, in dBFS.

    Used for the silence check instead of whole-clip RMS, which long pauses drag
    down: the quietest real RAVDESS clips (soft speech between digital silence)
    have a whole-clip RMS near -63 dBFS but speech frames near -55 dBFS. The 95th
    percentile needs speech in at least 5 % of the frames and ignores a lone click.

    Parameters
    ----------
    wave
        ``(n_samples,)`` float waveform in [-1, 1].
    sample_rate
        Rate of ``wave`` (sets the frame length).

    Returns
    -------
    float
        dBFS; ``-inf`` when those frames are all-zero or ``wave`` is empty.
    """
    n = wave.size
    if n == 0:
        return -math.inf
    win = min(n, max(1, round(sample_rate * frame_ms / 1000.0)))
    hop = max(1, round(sample_rate * hop_ms / 1000.0))
    # Frame energies from one cumulative sum: O(n), no (frames, win) copy.
    csum = np.concatenate([[0.0], np.cumsum(np.square(wave, dtype=np.float64))])  # (n + 1,)
    starts = np.arange(0, n - win + 1, hop)  # (n_frames,)
    mean_sq = np.maximum((csum[starts + win] - csum[starts]) / win, 0.0)  # (n_frames,) rounding >= 0
    level = float(np.percentile(mean_sq, percentile))
    return 10.0 * math.log10(level) if level > 0 else -math.inf


def _read_soundfile(path: Path, max_frames: int | None) -> tuple[np.ndarray, int]:
    """Decode with libsndfile; return ``((n_samples, channels) float32, sample_rate)``."""
    import soundfile as sf

    try:
        with sf.SoundFile(str(path)) as fh:
            sr = int(fh.samplerate)
            if path.suffix.lower() == ".wav":
                m = _WAV_SHORT_DATA.search(fh.extra_info)
                if m:
                    declared, present = int(m.group(1)), int(m.group(2))
                    if declared not in _WAV_PLACEHOLDER_SIZES and present < declared:
                        raise FeatureError(
                            path,
                            f"cannot decode audio: truncated WAV (header declares {declared} data "
                            f"bytes, only {present} present)",
                        )
            n = fh.frames if max_frames is None else min(fh.frames, max_frames)
            data = fh.read(frames=n, dtype="float32", always_2d=True)  # (n_samples, channels)
    except FeatureError:
        raise
    except (sf.SoundFileError, RuntimeError, ValueError, OSError) as e:
        raise FeatureError(path, f"cannot decode audio: {e}") from None
    return data, sr


def load_audio(
    path: str | Path,
    *,
    sample_rate: int,
    max_seconds: float | None = None,
    silence_dbfs: float | None = None,
) -> np.ndarray:
    """Decode an audio file (or the audio track of a video) to mono float32.

    Parameters
    ----------
    path
        ``.wav/.flac/.ogg`` are read with libsndfile; video containers
        (``.mp4/.avi/.flv/.mkv/.webm``) and ``.mp3/.m4a`` through
        :func:`mmfer.features.video.read_audio_track`.
    sample_rate
        Target rate; the signal is resampled with librosa (soxr) when it differs.
    max_seconds
        Keep only the first ``max_seconds`` seconds (``None`` = all).
    silence_dbfs
        Raise :class:`ModalityMissing` when the clip's loud-frame level
        (:func:`loud_level_dbfs`) is below this (``None`` = no check).

    Returns
    -------
    numpy.ndarray
        ``(n_samples,)`` float32 mono waveform at ``sample_rate``.

    Raises
    ------
    FeatureError
        Missing, unreadable, corrupt or truncated file, or no samples at all.
    ModalityMissing
        Silent audio, or a video without an audio track.
    """
    path = Path(path)
    if not path.is_file():
        raise FeatureError(path, "cannot decode audio: file not found")
    ext = path.suffix.lower()
    if ext in CONTAINER_EXTENSIONS:
        from mmfer.features.video import read_audio_track

        try:
            wave = np.asarray(read_audio_track(path, sample_rate=sample_rate), dtype=np.float32)
        except FeatureError:
            raise
        except Exception as e:  # PyAV raises many error types on broken containers
            raise FeatureError(path, f"cannot decode audio: {type(e).__name__}: {e}") from None
        sr = sample_rate
        if wave.ndim == 2:  # tolerate (channels, n) or (n, channels) from the decoder
            wave = wave.mean(axis=0 if wave.shape[0] < wave.shape[1] else 1)
        if max_seconds is not None:
            wave = wave[: round(max_seconds * sr)]
    else:
        # Unknown extensions are still tried with libsndfile: it sniffs the header.
        max_frames = None
        if max_seconds is not None:
            import soundfile as sf

            try:
                native_sr = sf.info(str(path)).samplerate
            except (sf.SoundFileError, RuntimeError, OSError) as e:
                raise FeatureError(path, f"cannot decode audio: {e}") from None
            max_frames = round(max_seconds * native_sr)  # truncate before resampling: cheaper
        data, sr = _read_soundfile(path, max_frames)
        wave = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]  # (n_samples,)
    if wave.size == 0:
        raise FeatureError(path, "cannot decode audio: the file holds no samples")
    if not np.all(np.isfinite(wave)):
        raise FeatureError(path, "cannot decode audio: samples contain NaN or infinity")
    if sr != sample_rate:
        import librosa

        wave = librosa.resample(wave, orig_sr=sr, target_sr=sample_rate, res_type="soxr_hq")
    wave = np.ascontiguousarray(wave, dtype=np.float32)
    if silence_dbfs is not None:
        level = loud_level_dbfs(wave, sample_rate)
        if level < silence_dbfs:
            raise ModalityMissing(path, f"silent audio ({level:.1f} dBFS)")
    return wave


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


class MFCCExtractor:
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
            "silence_measure": "p95_frame_rms_25ms",
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

        wave = np.asarray(wave, dtype=np.float32)
        if wave.ndim == 2:  # (n_samples, channels) -> mono
            wave = wave.mean(axis=1)
        if wave.ndim != 1 or wave.size == 0:
            raise FeatureError(None, f"MFCC needs a non-empty mono waveform, got shape {wave.shape}")
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

    def extract(self, path: str | Path) -> np.ndarray:
        """Decode ``path`` (audio file or video with a sound track) and return ``(T, dim)`` MFCCs.

        Raises
        ------
        FeatureError
            Unreadable/corrupt/empty file.
        ModalityMissing
            Silent clip or video without audio.
        """
        cfg = self.cfg
        wave = load_audio(
            path,
            sample_rate=cfg.sample_rate,
            max_seconds=cfg.max_seconds,
            silence_dbfs=cfg.silence_dbfs,
        )
        return self.transform_wave(wave, cfg.sample_rate)


def create_audio_extractor(cfg: AudioConfig, *, threads: int | None = None) -> Any:
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
    from mmfer.errors import ConfigError

    name = "whisper" if cfg.extractor == "auto" else cfg.extractor
    if name == "mfcc":
        return MFCCExtractor(cfg)
    if name == "whisper":
        from mmfer.features.whisper import WhisperEncoderExtractor

        return WhisperEncoderExtractor(cfg, threads=threads)
    if name == "egemaps":
        from mmfer.features.egemaps import EGeMAPSExtractor

        return EGeMAPSExtractor(cfg)
    raise ConfigError(f"audio.extractor: {cfg.extractor!r} is not one of ['mfcc', 'whisper', 'egemaps']")
