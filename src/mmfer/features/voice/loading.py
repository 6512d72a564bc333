"""Decoding audio for every voice backend: files and video sound tracks to mono float32, level checks.

This module owns what the voice backends (:mod:`~mmfer.features.voice.mfcc`,
:mod:`~mmfer.features.voice.whisper`, :mod:`~mmfer.features.voice.egemaps`) and the
words wing's ASR share: :func:`load_audio` (libsndfile, or PyAV through
:func:`mmfer.features.video.read_audio_track` for containers), the silence test
(:func:`loud_level_dbfs`, :func:`check_silence`) and the waveform check each
backend runs before computing (:func:`as_mono`). It imports no backend.
"""

from __future__ import annotations

import math
import re
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
#: How silence is measured; part of every voice backend's cache key (which clips are
#: cached as "silent" depends on it).
SILENCE_MEASURE = "p95_frame_rms_25ms"

# libsndfile reports a WAV whose data chunk is shorter than its header says as
# "data : <declared> (should be <present>)" and then silently reads the short part.
_WAV_SHORT_DATA = re.compile(r"^data\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)
# Streaming writers leave these placeholder sizes in the header; they are not truncation.
_WAV_PLACEHOLDER_SIZES = {0, 0xFFFFFFFF, 0x7FFFFFFF}


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


def _read_container(path: Path, sample_rate: int, max_seconds: float | None) -> np.ndarray:
    """Sound track of a container (video, mp3, m4a) through PyAV.

    Returns
    -------
    numpy.ndarray
        ``(n_samples,)`` float32 mono at ``sample_rate``, cut to ``max_seconds``.
    """
    from mmfer.features.video import read_audio_track

    try:
        wave = np.asarray(read_audio_track(path, sample_rate=sample_rate), dtype=np.float32)
    except FeatureError:
        raise
    except Exception as e:  # PyAV raises many error types on broken containers
        raise FeatureError(path, f"cannot decode audio: {type(e).__name__}: {e}") from None
    if wave.ndim == 2:  # tolerate (channels, n) or (n, channels) from the decoder
        wave = wave.mean(axis=0 if wave.shape[0] < wave.shape[1] else 1)
    if max_seconds is not None:
        wave = wave[: round(max_seconds * sample_rate)]
    return wave


def _read_file(path: Path, max_seconds: float | None) -> tuple[np.ndarray, int]:
    """Any other file through libsndfile (it sniffs the header, so unknown extensions are tried).

    Returns
    -------
    wave, sample_rate
        ``(n_samples,)`` float32 mono at the file's own rate, cut to ``max_seconds``.
    """
    max_frames = None
    if max_seconds is not None:
        import soundfile as sf

        try:
            native_sr = sf.info(str(path)).samplerate
        except (sf.SoundFileError, RuntimeError, OSError) as e:
            raise FeatureError(path, f"cannot decode audio: {e}") from None
        max_frames = round(max_seconds * native_sr)  # truncate before resampling: cheaper
    data, sr = _read_soundfile(path, max_frames)
    return (data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]), sr  # (n_samples,)


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
    if path.suffix.lower() in CONTAINER_EXTENSIONS:
        wave, sr = _read_container(path, sample_rate, max_seconds), sample_rate
    else:
        wave, sr = _read_file(path, max_seconds)
    if wave.size == 0:
        raise FeatureError(path, "cannot decode audio: the file holds no samples")
    if not np.all(np.isfinite(wave)):
        raise FeatureError(path, "cannot decode audio: samples contain NaN or infinity")
    if sr != sample_rate:
        import librosa

        wave = librosa.resample(wave, orig_sr=sr, target_sr=sample_rate, res_type="soxr_hq")
    wave = np.ascontiguousarray(wave, dtype=np.float32)
    if silence_dbfs is not None:
        check_silence(wave, sample_rate, silence_dbfs, path)
    return wave


def load_clip(path: str | Path, cfg: AudioConfig, *, sample_rate: int | None = None) -> np.ndarray:
    """:func:`load_audio` with an :class:`~mmfer.config.AudioConfig`'s decoding settings.

    The one decoding path of every voice backend, so all of them mask the same clips
    for the same reasons.

    Parameters
    ----------
    path
        Audio file, or a video whose sound track is decoded.
    cfg
        ``max_seconds`` and ``silence_dbfs`` are read (and ``sample_rate`` unless given).
    sample_rate
        Rate the backend reads (Whisper: 16 kHz whatever ``cfg.sample_rate`` says).

    Returns
    -------
    numpy.ndarray
        ``(n_samples,)`` float32 mono.
    """
    sr = cfg.sample_rate if sample_rate is None else sample_rate
    return load_audio(path, sample_rate=sr, max_seconds=cfg.max_seconds, silence_dbfs=cfg.silence_dbfs)


class ClipExtractor:
    """Base of every voice backend: ``extract(path)`` = :func:`load_clip`, then ``transform_wave``.

    Subclasses set ``cfg`` and implement :meth:`transform_wave`; :attr:`read_rate` is the
    rate they read when it is not ``cfg.sample_rate`` (Whisper: 16 kHz). One decoding
    path for all backends, so they mask the same clips for the same reasons.
    """

    cfg: AudioConfig
    #: Sample rate the backend reads; ``None`` = ``cfg.sample_rate``.
    read_rate: int | None = None

    def transform_wave(self, wave: np.ndarray, sr: int) -> np.ndarray:
        """``(n_samples,)`` waveform at ``sr`` -> ``(T, D)`` float32 frames."""
        raise NotImplementedError

    def extract(self, path: str | Path) -> np.ndarray:
        """Decode ``path`` (audio file or video with a sound track) -> ``(T, D)`` float32 frames.

        Raises
        ------
        FeatureError
            Unreadable/corrupt/empty file, or the backend failed (naming the file unless the
            backend named another culprit, e.g. its model folder).
        ModalityMissing
            Silent clip or video without audio.
        """
        sr = self.cfg.sample_rate if self.read_rate is None else self.read_rate
        wave = load_clip(path, self.cfg, sample_rate=sr)  # (n_samples,)
        try:
            return self.transform_wave(wave, sr)
        except FeatureError as e:
            raise FeatureError(e.path if e.path is not None else path, e.problem) from None


def decoding_key(cfg: AudioConfig) -> dict[str, Any]:
    """The decoding settings of :func:`load_clip` as cache-key material.

    Returns
    -------
    dict
        ``max_seconds``, ``silence_dbfs`` and ``silence_measure`` (:data:`SILENCE_MEASURE`).
    """
    return {
        "max_seconds": cfg.max_seconds,
        "silence_dbfs": cfg.silence_dbfs,
        "silence_measure": SILENCE_MEASURE,
    }


def check_silence(wave: np.ndarray, sample_rate: int, silence_dbfs: float | None, source: Any) -> None:
    """The silence test of every audio path (files at training, windows when streaming).

    The loud-frame level (:func:`loud_level_dbfs`), not the whole-window RMS.

    Parameters
    ----------
    wave
        ``(n_samples,)`` float waveform in [-1, 1].
    sample_rate
        Rate of ``wave``.
    silence_dbfs
        Threshold; ``None`` only checks that there are samples.
    source
        File or window name for the message.

    Raises
    ------
    ModalityMissing
        ``wave`` is empty or its loud-frame level is below ``silence_dbfs``.
    """
    if wave.size == 0:
        raise ModalityMissing(source, "no audio samples (the track ends before this window)")
    if silence_dbfs is not None:
        level = loud_level_dbfs(wave, sample_rate)
        if level < silence_dbfs:
            raise ModalityMissing(source, f"silent audio ({level:.1f} dBFS)")


def as_mono(wave: np.ndarray, who: str) -> np.ndarray:
    """The input check of every backend's ``transform_wave``: float32, mono, not empty.

    Parameters
    ----------
    wave
        ``(n_samples,)`` or ``(n_samples, channels)`` waveform.
    who
        Backend name for the message (``MFCC``, ``Whisper``, ``eGeMAPS``).

    Returns
    -------
    numpy.ndarray
        ``(n_samples,)`` float32 (channels averaged).

    Raises
    ------
    FeatureError
        Not 1-D after averaging channels, or empty.
    """
    wave = np.asarray(wave, dtype=np.float32)
    if wave.ndim == 2:  # (n_samples, channels) -> mono
        wave = wave.mean(axis=1)
    if wave.ndim != 1 or wave.size == 0:
        raise FeatureError(None, f"{who} needs a non-empty mono waveform, got shape {wave.shape}")
    return wave
