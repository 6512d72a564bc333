"""Sliding-window prediction over a video, as a live (webcam + microphone) feed would get it.

Works with a single checkpoint (:class:`~mmfer.inference.predictor.Predictor`) and with a
composed one (:class:`~mmfer.inference.compose.ComposedPredictor`, e.g. the shipped default
model): each window is read once and handed to every part with that part's own feature
config (face fps and crop, audio sample rate), then the parts' predictions are fused as
:meth:`~mmfer.inference.compose.ComposedPredictor.predict` does for a whole file.

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
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from mmfer.errors import DataError, FeatureError
from mmfer.inference.predictor import Predictor
from mmfer.inference.types import Prediction, input_kind, without_path

__all__ = [
    "PartWindow",
    "RunningStats",
    "WindowDetail",
    "WindowPrediction",
    "iter_windows",
    "model_parts",
    "stream_predictions",
]


class WindowPrediction(NamedTuple):
    """One window's result: ``(t_start, t_end, prediction, latency_s)``."""

    t_start: float
    t_end: float
    prediction: Prediction
    latency_s: float


@dataclass
class PartWindow:
    """What one checkpoint (the model, or one part of a composed model) made of a window.

    Attributes
    ----------
    name
        ``"model"`` for a single checkpoint, else the part's name (``face``, ``voice``).
    predictor
        The checkpoint.
    features
        The window's :class:`~mmfer.features.extract.SampleFeatures` for this checkpoint.
    prediction
        Its prediction on the window (in the checkpoint's own labels).
    stats
        Speaker statistics the window was normalised with (running estimate), or ``None``.
    crops
        ``(time_s, crop (S, S, 3) uint8)`` of each face frame the checkpoint read, when
        requested (``keep_crops``); empty otherwise or without a face modality.
    """

    name: str
    predictor: Predictor
    features: Any
    prediction: Prediction
    stats: dict[str, Any] | None = None
    crops: list[tuple[float, np.ndarray]] = field(default_factory=list)


@dataclass
class WindowDetail:
    """One window with everything behind its prediction (used by :mod:`mmfer.inference.timeline`)."""

    t_start: float
    t_end: float
    prediction: Prediction
    latency_s: float
    parts: list[PartWindow]


def model_parts(model: Any) -> list[tuple[str, Predictor]]:
    """``(name, predictor)`` of each checkpoint of a model: ``[("model", m)]`` or the composed parts."""
    if hasattr(model, "parts"):
        return [(p.name, p.predictor) for p in model.parts]
    return [("model", model)]


@dataclass
class _Feed:
    """Per video: the audio track at each sample rate a part needs, decoded once up front."""

    path: Path
    waves: dict[int, tuple[np.ndarray | None, str | None]] = field(default_factory=dict)

    def wave(self, sample_rate: int) -> tuple[np.ndarray | None, str | None]:
        """The whole track at ``sample_rate`` (``(n_samples,)``), or ``(None, reason)``."""
        if sample_rate not in self.waves:
            from mmfer.features.voice.loading import load_audio

            try:
                self.waves[sample_rate] = (load_audio(self.path, sample_rate=sample_rate), None)
            except FeatureError as e:
                self.waves[sample_rate] = (None, without_path(str(e), self.path))
        return self.waves[sample_rate]


def _warm_up(face_ext: Any, audio_ext: Any, sr: int, size: int) -> None:
    """Pay one-off costs (numba JIT in librosa, first CNN pass) before the timed windows."""
    rng = np.random.default_rng(0)
    if audio_ext is not None:
        audio_ext.transform_wave((0.1 * rng.standard_normal(sr // 4)).astype(np.float32), sr)  # (sr/4,)
    if face_ext is not None:
        face_log = logging.getLogger("mmfer.features.face.extractor")
        level = face_log.level
        face_log.setLevel(logging.ERROR)  # the blank frame has no face: that warning is noise here
        try:
            face_ext.run_frames(np.zeros((1, size, size, 3), dtype=np.uint8))  # (1, H, W, 3)
        finally:
            face_log.setLevel(level)


def _check_video(path: Path, window_s: float, hop_s: float) -> None:
    """Clear errors for a missing, non-video file or bad window/hop (before anything is decoded)."""
    if path.is_dir():
        raise DataError(path, "is a folder: streaming reads one video file")
    if not path.is_file():
        raise DataError(path, "video file not found")
    kind = input_kind(path)
    if kind != "video":
        what = f"{kind} file" if kind else f"unsupported file type {path.suffix or '(no extension)'!r}"
        raise DataError(path, f"not a video ({what}): streaming needs mp4 avi flv mkv webm mov m4v")
    if not (window_s > 0 and hop_s > 0):
        raise DataError(path, f"window ({window_s}) and hop ({hop_s}) must be positive seconds")


def _sampling(parts: list[tuple[str, Predictor]]) -> Any:
    """Face config whose ``fps`` samples the windows: the first face part's (else the first part's)."""
    face = [p for _, p in parts if "face" in p.modalities]
    return (face or [parts[0][1]])[0].features_cfg.face


def _part_window(
    name: str,
    predictor: Predictor,
    window: tuple[float, float, np.ndarray, bool],
    feed: _Feed,
    transcript: str | None,
    running: RunningStats | None,
    keep_crops: bool,
) -> PartWindow:
    """Features + prediction of one checkpoint on one window (frames at the sampling fps)."""
    from mmfer.features.extract import extract_sample
    from mmfer.features.video import evenly_spaced

    t0, t1, frames, last = window
    cfg = predictor.features_cfg
    mods = set(predictor.modalities)
    label = f"{feed.path}@{t0:.2f}-{t1:.2f}s"
    seg, sr, reason = None, cfg.audio.sample_rate, None
    if "audio" in mods:
        wave, reason = feed.wave(sr)
        # The last window takes the rest of the track: audio tracks often run a little past
        # the last frame (AAC padding), and a whole-clip window must see what predict sees.
        seg = None if wave is None else wave[round(t0 * sr) : None if last else round(t1 * sr)]
    # Training saw at most max_frames per clip; a long window is thinned the same way.
    kept = evenly_spaced(len(frames), cfg.face.max_frames)  # (n,) indices into the window's frames
    faces: list[Any] = []
    # One extraction path: the same per-modality code (and silence test) as training.
    feats = extract_sample(
        cfg,
        modalities=mods,
        frames=frames[kept] if "face" in mods else None,  # (n, H, W, 3)
        wave=seg,
        sample_rate=sr,
        transcript=transcript if "text" in mods else None,
        source=label,
        face_result=faces if keep_crops else None,
        face_frames_used=predictor.recognizer.fuser.face_frames_used,  # only the frames the model reads
    )
    if "audio" in mods and seg is None:
        feats.issues["audio"] = reason or "no audio"
    if "text" in mods and transcript is None:
        feats.issues["text"] = "no transcript given"
    stats = None
    if running is not None:
        running.update(feats, predictor.modalities)
        stats = running.stats()
    (pred,) = predictor.predict_features([feats], [label], stats=stats)
    out = PartWindow(name, predictor, feats, pred, stats)
    if faces:
        out.crops = _crops_read(faces[0], frames, kept, t0, cfg.face, predictor)
    return out


def _crops_read(
    result: Any, frames: np.ndarray, kept: np.ndarray, t0: float, face_cfg: Any, predictor: Predictor
) -> list[tuple[float, np.ndarray]]:
    """``(time_s, crop)`` of the face frames the checkpoint read, cropped as its face branch did.

    Times are those of the sampling grid (``k / fps``, the frames :func:`iter_video_windows`
    picks); a frame without a detected box takes the nearest detected one (the extractor's
    fallback), else the centre square.
    """
    from mmfer.features.face.crops import crop_face

    used = predictor.recognizer.fuser.face_frames_used(len(kept))
    rows = kept if used is None else kept[np.asarray(used)]  # indices into the window's frames
    first = math.ceil(t0 * face_cfg.fps - 1e-6)  # grid index of the window's first frame
    boxes = list(result.boxes)[: len(rows)]
    hits = [i for i, b in enumerate(boxes) if b is not None]
    out = []
    for i, r in enumerate(rows):
        box = boxes[i] if i < len(boxes) else None
        if box is None and hits:
            box = boxes[min(hits, key=lambda j: abs(j - i))]
        crop = crop_face(frames[r], box, face_cfg.crop_margin, 64)  # (64, 64, 3)
        out.append(((first + int(r)) / face_cfg.fps, np.ascontiguousarray(crop)))
    return out


def _fused(model: Any, parts: list[PartWindow]) -> Prediction:
    """The model's prediction for a window: the single part's, or the composed fusion."""
    if hasattr(model, "fuse_predictions"):
        return model.fuse_predictions([p.prediction for p in parts])
    return parts[0].prediction


def iter_windows(
    model: Any,
    video: str | Path,
    *,
    window_s: float = 2.0,
    hop_s: float = 0.5,
    transcript: str | None = None,
    warmup: bool = True,
    keep_crops: bool = False,
) -> Iterator[WindowDetail]:
    """Windows of a video with each checkpoint's features and prediction (see :func:`stream_predictions`).

    Parameters
    ----------
    keep_crops
        Also keep the face crops each checkpoint read (:attr:`PartWindow.crops`; timeline).

    Other parameters are those of :func:`stream_predictions`.
    """
    from mmfer.features.extractors import extractors_for
    from mmfer.features.face.units import FaceUnitExtractor
    from mmfer.features.video import iter_video_windows
    from mmfer.features.voice.units import VoiceUnitExtractor

    path = Path(video)
    _check_video(path, window_s, hop_s)
    parts = model_parts(model)
    feed = _Feed(path)
    if warmup:
        for _, p in parts:
            cfg, mods = p.features_cfg, p.modalities
            ex = extractors_for(cfg, limit_threads=False)  # the extractors extract_sample uses
            face, voice = (ex.wing("face") if "face" in mods else None), (
                ex.wing("audio") if "audio" in mods else None
            )
            assert face is None or isinstance(face, FaceUnitExtractor)
            assert voice is None or isinstance(voice, VoiceUnitExtractor)
            _warm_up(
                None if face is None else face.extractor,
                None if voice is None else voice.extractor,
                cfg.audio.sample_rate,
                cfg.face.image_size,
            )
    for _, p in parts:  # decode the audio track up front: a live feed has it in its buffer
        if "audio" in p.modalities:
            feed.wave(p.features_cfg.audio.sample_rate)
    offered = ["face", "audio"] + (["text"] if transcript is not None else [])
    ignored = [m for m in offered if m not in model.modalities]
    running = {n: RunningStats() if p.speaker_norm and p.enrolment is None else None for n, p in parts}
    windows = iter_video_windows(path, window_s=window_s, hop_s=hop_s, fps=_sampling(parts).fps)
    for (t0, t1, frames), last in _with_last(windows):
        start = time.perf_counter()
        done = [
            _part_window(n, p, (t0, t1, frames, last), feed, transcript, running[n], keep_crops)
            for n, p in parts
        ]
        pred = _fused(model, done)
        pred.path = f"{path}@{t0:.2f}-{t1:.2f}s"
        pred.modalities_ignored = list(ignored)
        yield WindowDetail(t0, t1, pred, time.perf_counter() - start, done)


def stream_predictions(
    predictor: Any,
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
        A loaded model (:func:`mmfer.inference.load`): a :class:`Predictor` or a
        :class:`~mmfer.inference.compose.ComposedPredictor` (the shipped default model).
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
        Missing file, not a video, or ``window_s``/``hop_s`` not positive.
    FeatureError
        No frame of the video can be decoded.
    """
    for d in iter_windows(
        predictor, video, window_s=window_s, hop_s=hop_s, transcript=transcript, warmup=warmup
    ):
        yield WindowPrediction(d.t_start, d.t_end, d.prediction, d.latency_s)


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
