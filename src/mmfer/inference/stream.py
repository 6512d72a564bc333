"""Sliding-window prediction over a video, as a live (webcam + microphone) feed would get it.

Windows of ``window_s`` seconds start every ``hop_s`` seconds. For each window the
frames sampled in it (at the checkpoint's ``face.fps``) go through the face
branch and the matching slice of the audio track through the MFCC branch; the
fused window is then classified. A transcript, if given, is the same for every
window (a live system would feed the words of a speech recogniser instead).

Each window's latency covers what a live system would pay once the window's
frames and audio are in memory: face detection + CNN, MFCC, fusion and the
model. Decoding is excluded: the audio track is decoded once up front (a live
feed has it in its microphone buffer) and frames come from
:func:`mmfer.features.video.iter_video_windows` as the video is read.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from mmfer.api import Predictor, _problem
from mmfer.errors import DataError, FeatureError

__all__ = ["WindowPrediction", "stream_predictions"]


class WindowPrediction(NamedTuple):
    """One window's result: ``(t_start, t_end, prediction, latency_s)``."""

    t_start: float
    t_end: float
    prediction: Any  # mmfer.api.Prediction
    latency_s: float


def _audio_track(predictor: Predictor, path: Path) -> tuple[np.ndarray | None, str | None]:
    """The whole audio track at the model's rate, or ``(None, reason)``."""
    from mmfer.features.audio import load_audio

    cfg = predictor.features_cfg.audio
    try:
        return load_audio(path, sample_rate=cfg.sample_rate), None  # (n_samples,)
    except FeatureError as e:
        return None, _problem(str(e), path)


def _warm_up(face_ext: Any, mfcc: Any, sr: int, size: int) -> None:
    """Pay one-off costs (numba JIT in librosa, first CNN pass) before the timed windows."""
    rng = np.random.default_rng(0)
    mfcc.transform_wave((0.1 * rng.standard_normal(sr // 4)).astype(np.float32), sr)  # (sr/4,)
    if face_ext is not None:
        face_log = logging.getLogger("mmfer.features.face")
        level = face_log.level
        face_log.setLevel(logging.ERROR)  # the blank frame has no face: that warning is noise here
        try:
            face_ext.run_frames(np.zeros((1, size, size, 3), dtype=np.uint8))  # (1, H, W, 3)
        finally:
            face_log.setLevel(level)


def stream_predictions(
    predictor: Predictor,
    video: str | Path,
    *,
    window_s: float = 2.0,
    hop_s: float = 0.5,
    transcript: str | None = None,
    warmup: bool = True,
) -> Iterator[WindowPrediction]:
    """Predict on sliding windows of a video file.

    Parameters
    ----------
    predictor
        A loaded model (:func:`mmfer.api.load`).
    video
        Video file with frames and (optionally) an audio track.
    window_s, hop_s
        Window length and hop in seconds.
    transcript
        Words spoken (used for every window when the model has the text modality).
    warmup
        Run the extractors once on dummy input first, so the first window's latency
        does not include one-off costs (JIT compilation of the MFCC kernels, CNN set-up).

    Yields
    ------
    WindowPrediction
        ``(t_start, t_end, prediction, latency_s)`` in time order; ``prediction.path``
        is ``"<video>@<t_start>-<t_end>s"``.

    Raises
    ------
    DataError
        Missing file, or ``window_s``/``hop_s`` not positive.
    FeatureError
        No frame of the video can be decoded.
    """
    from mmfer.features.audio import create_audio_extractor, rms_dbfs
    from mmfer.features.extract import SampleFeatures
    from mmfer.features.text import clean_text
    from mmfer.features.video import evenly_spaced, iter_video_windows

    path = Path(video)
    if not path.is_file():
        raise DataError(path, "video file not found")
    if not (window_s > 0 and hop_s > 0):
        raise DataError(path, f"window ({window_s}) and hop ({hop_s}) must be positive seconds")
    cfg = predictor.features_cfg
    mods = set(predictor.modalities)
    face_ext = None
    if "face" in mods:
        from mmfer.features.face import FaceFeatureExtractor

        face_ext = FaceFeatureExtractor(cfg.face)
    mfcc = create_audio_extractor(cfg.audio)  # the recogniser's audio extractor (MFCC, Whisper, ...)
    sr = cfg.audio.sample_rate
    wave, audio_reason = _audio_track(predictor, path) if "audio" in mods else (None, None)
    text, text_reason = None, "no transcript given"
    if transcript is not None and "text" in mods:
        text = clean_text(
            transcript, lowercase=cfg.text.lowercase, remove_stop_words=cfg.text.remove_stop_words
        )
        text_reason = "transcript has no words left after cleaning" if not text else ""
        text = text or None

    if warmup:
        _warm_up(face_ext, mfcc, sr, cfg.face.image_size)
    offered = ["face", "audio"] + (["text"] if transcript is not None else [])
    ignored = [m for m in offered if m not in mods]
    for t0, t1, frames in iter_video_windows(path, window_s=window_s, hop_s=hop_s, fps=cfg.face.fps):
        start = time.perf_counter()
        feats = SampleFeatures(text=text)
        if text is None and "text" in mods:
            feats.issues["text"] = text_reason
        if face_ext is not None:
            # Training saw at most max_frames per clip; a long window is thinned the same way.
            frames = frames[evenly_spaced(len(frames), cfg.face.max_frames)]  # (n, H, W, 3)
            res = face_ext.run_frames(frames, f"{path}@{t0:.2f}s")
            feats.face = res.features  # (n, D_v)
        if "audio" in mods:
            if wave is None:
                feats.issues["audio"] = audio_reason or "no audio"
            else:
                seg = wave[round(t0 * sr) : round(t1 * sr)]  # (n_samples,)
                if seg.size == 0:
                    feats.issues["audio"] = "the audio track ends before this window"
                elif rms_dbfs(seg) < cfg.audio.silence_dbfs:
                    feats.issues["audio"] = f"silent audio ({rms_dbfs(seg):.1f} dBFS)"
                else:
                    feats.audio = mfcc.transform_wave(seg, sr)  # (T_a, D_a)
        (pred,) = predictor.predict_features([feats], [f"{path}@{t0:.2f}-{t1:.2f}s"])
        pred.modalities_ignored = list(ignored)
        yield WindowPrediction(t0, t1, pred, time.perf_counter() - start)
