"""Sliding-window prediction over a video, as a live (webcam + microphone) feed would get it.

Windows of ``window_s`` seconds start every ``hop_s`` seconds. For each window the
frames sampled in it (at the checkpoint's ``face.fps``) go through the face
branch and the matching slice of the audio track through the audio branch, both
through :func:`mmfer.features.extract.extract_sample` (the extraction path of
training and :class:`~mmfer.inference.Predictor`, with the same loud-frame silence
test); the fused window is then classified. A speaker-normalised checkpoint without
enrolment normalises each window with a running estimate of the speaker's statistics
(:class:`RunningStats`). A transcript, if given, is the same for every
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

from mmfer.errors import DataError, FeatureError
from mmfer.inference.predictor import Predictor, _problem

__all__ = ["RunningStats", "WindowPrediction", "stream_predictions"]


class WindowPrediction(NamedTuple):
    """One window's result: ``(t_start, t_end, prediction, latency_s)``."""

    t_start: float
    t_end: float
    prediction: Any  # mmfer.inference.predictor.Prediction
    latency_s: float


def _audio_track(predictor: Predictor, path: Path) -> tuple[np.ndarray | None, str | None]:
    """The whole audio track at the model's rate, or ``(None, reason)``."""
    from mmfer.features.voice.loading import load_audio

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
        face_log = logging.getLogger("mmfer.features.face.extractor")
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
        A loaded model (:func:`mmfer.inference.predictor.load`).
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
    from mmfer.features.extract import extract_sample
    from mmfer.features.extractors import extractors_for
    from mmfer.features.face.units import FaceUnitExtractor
    from mmfer.features.video import evenly_spaced, iter_video_windows
    from mmfer.features.voice.units import VoiceUnitExtractor

    path = Path(video)
    if not path.is_file():
        raise DataError(path, "video file not found")
    if not (window_s > 0 and hop_s > 0):
        raise DataError(path, f"window ({window_s}) and hop ({hop_s}) must be positive seconds")
    cfg = predictor.features_cfg
    mods = set(predictor.modalities)
    ex = extractors_for(cfg, limit_threads=False)  # the extractors extract_sample uses
    sr = cfg.audio.sample_rate
    wave, audio_reason = _audio_track(predictor, path) if "audio" in mods else (None, None)
    if warmup:
        face, voice = (ex.wing("face") if "face" in mods else None), ex.wing("audio")
        assert isinstance(voice, VoiceUnitExtractor) and (face is None or isinstance(face, FaceUnitExtractor))
        _warm_up(None if face is None else face.extractor, voice.extractor, sr, cfg.face.image_size)
    offered = ["face", "audio"] + (["text"] if transcript is not None else [])
    ignored = [m for m in offered if m not in mods]
    running = RunningStats() if predictor.speaker_norm and predictor.enrolment is None else None
    for (t0, t1, frames), last in _with_last(
        iter_video_windows(path, window_s=window_s, hop_s=hop_s, fps=cfg.face.fps)
    ):
        start = time.perf_counter()
        name = f"{path}@{t0:.2f}-{t1:.2f}s"
        seg = None
        if "audio" in mods and wave is not None:
            # The last window takes the rest of the track: audio tracks often run a little past
            # the last frame (AAC padding), and a whole-clip window must see what predict sees.
            seg = wave[round(t0 * sr) : None if last else round(t1 * sr)]  # (n_samples,)
        # Training saw at most max_frames per clip; a long window is thinned the same way.
        frames = frames[evenly_spaced(len(frames), cfg.face.max_frames)]  # (n, H, W, 3)
        # One extraction path: the same per-modality code (and silence test) as training.
        feats = extract_sample(
            cfg,
            modalities=mods,
            frames=frames if "face" in mods else None,
            wave=seg,
            sample_rate=sr,
            transcript=transcript if "text" in mods else None,
            source=name,
            face_frames_used=predictor.recognizer.fuser.face_frames_used,  # only the frames the model reads
        )
        if "audio" in mods and wave is None:
            feats.issues["audio"] = audio_reason or "no audio"
        if "text" in mods and transcript is None:
            feats.issues["text"] = "no transcript given"
        stats = None
        if running is not None:
            running.update(feats, predictor.modalities)
            stats = running.stats()
        (pred,) = predictor.predict_features([feats], [name], stats=stats)
        pred.modalities_ignored = list(ignored)
        yield WindowPrediction(t0, t1, pred, time.perf_counter() - start)


def _with_last(items: Iterator[Any]) -> Iterator[tuple[Any, bool]]:
    """``(item, is_last)`` pairs, one item of look-ahead."""
    it = iter(items)
    try:
        prev = next(it)
    except StopIteration:
        return
    for item in it:
        yield prev, False
        prev = item
    yield prev, True


class RunningStats:
    """Running per-dimension mean/std of a speaker's face/audio frames (streaming speaker norm).

    Each window's frames are added as they arrive, so window ``k`` is normalised with
    the statistics of windows ``0..k`` (a live system cannot look ahead); overlapping
    windows count shared frames twice, which only reweights, not shifts, the estimate.
    """

    def __init__(self) -> None:
        self.n: dict[str, int] = {}
        self.s1: dict[str, np.ndarray] = {}
        self.s2: dict[str, np.ndarray] = {}

    def update(self, feats: Any, modalities: list[str]) -> None:
        """Add the face/audio frames of one window (``(T, D)`` each)."""
        for m in modalities:
            a = getattr(feats, m, None) if m != "text" else None
            if a is None:
                continue
            a = np.asarray(a, dtype=np.float64)  # (T, D)
            self.n[m] = self.n.get(m, 0) + a.shape[0]
            self.s1[m] = self.s1.get(m, 0.0) + a.sum(axis=0)  # (D,)
            self.s2[m] = self.s2.get(m, 0.0) + np.square(a).sum(axis=0)  # (D,)

    def stats(self) -> dict[str, dict[str, Any]]:
        """``{modality: {"mean": (D,), "std": (D,)}}`` so far (see ``Fuser.speaker_statistics``)."""
        out = {}
        for m, n in self.n.items():
            mu = self.s1[m] / n  # (D,)
            var = np.maximum(self.s2[m] / n - np.square(mu), 0.0)  # (D,)
            out[m] = {"mean": mu, "std": np.maximum(np.sqrt(var), 1e-6)}
        return out
