"""Emotion timeline of a video: per-window probabilities of each modality and of the fusion.

``mmfer predict VIDEO --timeline OUT.html`` and ``mmfer stream VIDEO --timeline OUT.html``
build a :class:`Timeline` from the same sliding windows as :mod:`mmfer.inference.stream`
(:func:`~mmfer.inference.stream.iter_windows`) and draw it
(:mod:`mmfer.inference.timeline_render`): ``OUT.html`` (self-contained) and ``OUT.png``.

For each window the timeline holds one probability vector per **series**:

``fused``
    The model's own prediction for the window (what ``mmfer stream`` prints).
``voice`` / ``face`` / ``words``
    The audio / face / text modality on its own. For a composed model of
    unimodal parts (the shipped default model) that is the part's prediction,
    its labels mapped onto the common set as the fusion maps them; for a
    multimodal checkpoint it is the checkpoint's prediction with the other
    modalities masked (as a clip without them would be predicted). A window
    where the modality is missing (silent audio, no transcript) has no vector
    (``NaN`` row) and the reason in :attr:`Series.missing`.

Every vector sums to 1 over the labels its series knows (a face part trained on
CK+ knows no ``calm``). The timeline also keeps the face crops the model read
(:attr:`Timeline.thumbnails`, at the times of their frames) and the words:
timed words from offline speech recognition (``asr=True``: faster-whisper
``tiny.en`` with word timestamps, :mod:`mmfer.features.words.asr`), else the given
transcript, untimed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mmfer.errors import FeatureError
from mmfer.inference.stream import PartWindow, WindowDetail, iter_windows, model_parts
from mmfer.inference.types import without_path

__all__ = [
    "MODALITY_SERIES",
    "Series",
    "Thumbnail",
    "Timeline",
    "Word",
    "asr_words",
    "build_timeline",
    "render_png",
    "timeline_from_windows",
    "timeline_words",
    "write_timeline",
]

#: Series name of each modality.
MODALITY_SERIES: dict[str, str] = {"audio": "voice", "face": "face", "text": "words"}


@dataclass
class Series:
    """One line of the timeline: a modality (or the fusion) over the windows.

    Attributes
    ----------
    name
        ``fused``, ``voice``, ``face`` or ``words`` (``<part>:<name>`` if two parts share a modality).
    labels
        The labels it gives probabilities for (common names, in the model's label order).
    probabilities
        ``(W, C_s)`` float, each row sums to 1; ``NaN`` where the series is missing.
    missing
        Per window: why the series is missing there, else ``None``.
    """

    name: str
    labels: list[str]
    probabilities: np.ndarray
    missing: list[str | None]

    @property
    def present(self) -> np.ndarray:
        """``(W,)`` bool: the window has probabilities."""
        return ~np.isnan(self.probabilities).any(axis=1)

    def top(self) -> list[str | None]:
        """Most probable label per window (``None`` where missing)."""
        return [
            self.labels[int(np.argmax(row))] if ok else None
            for row, ok in zip(self.probabilities, self.present, strict=True)
        ]


@dataclass
class Thumbnail:
    """A face crop the model read, at the time of its frame (``image``: ``(S, S, 3)`` uint8 RGB)."""

    time_s: float
    image: np.ndarray


@dataclass
class Word:
    """A recognised word; ``start``/``end`` in seconds, ``None`` for an untimed transcript."""

    text: str
    start: float | None = None
    end: float | None = None


@dataclass
class Timeline:
    """Everything the timeline figure shows (see the module docstring).

    Attributes
    ----------
    source
        The video (file name shown in the figure).
    labels
        The model's labels (the fused series' labels).
    t_start, t_end
        ``(W,)`` window bounds in seconds, increasing.
    series
        ``fused`` first, then one per modality of the model.
    thumbnails
        Face crops read, in time order (no two at the same time).
    words
        Timed words (ASR), or the untimed transcript's words, or nothing.
    latency_s
        ``(W,)`` per-window latency as ``mmfer stream`` measures it.
    window_s, hop_s
        The windowing.
    caption
        Free text under the figure (e.g. the data source and licence).
    """

    source: str
    labels: list[str]
    t_start: np.ndarray
    t_end: np.ndarray
    series: list[Series]
    thumbnails: list[Thumbnail] = field(default_factory=list)
    words: list[Word] = field(default_factory=list)
    latency_s: np.ndarray = field(default_factory=lambda: np.zeros(0))
    window_s: float = 2.0
    hop_s: float = 0.5
    caption: str = ""

    @property
    def times(self) -> np.ndarray:
        """``(W,)`` window centres in seconds."""
        return (self.t_start + self.t_end) / 2

    @property
    def words_timed(self) -> bool:
        """The words carry times (from ASR)."""
        return bool(self.words) and all(w.start is not None for w in self.words)

    def series_named(self, name: str) -> Series:
        """The series called ``name`` (``KeyError`` if absent)."""
        for s in self.series:
            if s.name == name:
                return s
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form: windows, series (``null`` for missing windows), thumbnail times, words."""
        return {
            "source": self.source,
            "labels": list(self.labels),
            "window_s": self.window_s,
            "hop_s": self.hop_s,
            "t_start": [float(t) for t in self.t_start],
            "t_end": [float(t) for t in self.t_end],
            "latency_ms": [round(float(t) * 1000, 2) for t in self.latency_s],
            "series": [
                {
                    "name": s.name,
                    "labels": list(s.labels),
                    "probabilities": [
                        [float(v) for v in row] if ok else None
                        for row, ok in zip(s.probabilities, s.present, strict=True)
                    ],
                    "top": s.top(),
                    "missing": list(s.missing),
                }
                for s in self.series
            ],
            "thumbnail_times": [round(t.time_s, 3) for t in self.thumbnails],
            "words": [dataclasses.asdict(w) for w in self.words],
            "words_timed": self.words_timed,
            "caption": self.caption,
        }


# --------------------------------------------------------------------------- per-window probabilities


def _label_maps(model: Any) -> dict[str, dict[str, str | None]]:
    """Part name -> part label -> common label (identity for a single checkpoint)."""
    if hasattr(model, "parts"):
        return {p.name: dict(p.label_map) for p in model.parts}
    return {"model": {lab: lab for lab in model.labels}}


def _modality_prediction(pw: PartWindow, modality: str) -> Any:
    """The checkpoint's prediction on the window from ``modality`` alone (the others masked)."""
    if len(pw.predictor.modalities) == 1:
        return pw.prediction
    f = pw.features
    keep = {m: getattr(f, m) if m == modality else None for m in ("face", "audio", "text")}
    only = dataclasses.replace(
        f,
        **keep,
        text_emb=f.text_emb if modality == "text" else None,
        issues={m: r for m, r in f.issues.items() if m == modality},
        notes={m: n for m, n in f.notes.items() if m == modality},
    )
    (pred,) = pw.predictor.predict_features([only], [pw.prediction.path], stats=pw.stats)
    return pred


def _on_common(probs: dict[str, float], label_map: dict[str, str | None], labels: list[str]) -> np.ndarray:
    """Part probabilities summed onto the common labels (dropped classes left out), renormalised."""
    out = np.zeros(len(labels))
    pos = {lab: i for i, lab in enumerate(labels)}
    for lab, p in probs.items():
        target = label_map.get(lab, lab)
        if target is not None and target in pos:
            out[pos[target]] += p
    total = out.sum()
    return out / total if total > 0 else np.full(len(labels), np.nan)


def _series_plan(model: Any) -> list[tuple[str, str, str, list[str]]]:
    """``(series name, part name, modality, labels)`` of each modality series, in model order."""
    maps = _label_maps(model)
    common = list(model.labels)
    plan = []
    for part, pred in model_parts(model):
        known = {maps[part].get(lab, lab) for lab in pred.labels} - {None}
        labels = [lab for lab in common if lab in known]
        for m in pred.modalities:
            plan.append((MODALITY_SERIES.get(m, m), part, m, labels))
    names = [p[0] for p in plan]
    return [(n if names.count(n) == 1 else f"{part}:{n}", part, m, lab) for n, part, m, lab in plan]


def _series_rows(model: Any, windows: Sequence[WindowDetail]) -> list[Series]:
    """The fused series and one series per modality over ``windows``."""
    maps = _label_maps(model)
    fused_rows, fused_missing = [], []
    for d in windows:
        p = d.prediction
        ok = p.error is None
        nan = [np.nan] * len(model.labels)
        fused_rows.append([p.probabilities[lab] for lab in model.labels] if ok else nan)
        fused_missing.append(None if ok else p.error)
    out = [Series("fused", list(model.labels), np.asarray(fused_rows, dtype=float), fused_missing)]
    for name, part, m, labels in _series_plan(model):
        rows, missing = [], []
        for d in windows:
            pw = next(p for p in d.parts if p.name == part)
            reason = pw.features.issues.get(m) if getattr(pw.features, m, None) is None else None
            reason = reason and without_path(reason, pw.prediction.path)  # no "<video>@t0-t1s: " prefix
            pred = None if reason else _modality_prediction(pw, m)
            if pred is None or pred.error is not None:
                rows.append(np.full(len(labels), np.nan))
                missing.append(reason or (pred.error if pred is not None else "missing"))
                continue
            rows.append(_on_common(pred.probabilities, maps[part], labels))
            missing.append(None)
        probs = np.asarray(rows, dtype=float).reshape(len(windows), len(labels))  # (W, C_s)
        out.append(Series(name, labels, probs, missing))
    return out


def _thumbnails(windows: Iterable[WindowDetail]) -> list[Thumbnail]:
    """Face crops read by the model, one per frame time, in time order."""
    seen: dict[float, np.ndarray] = {}
    for d in windows:
        for pw in d.parts:
            for t, crop in pw.crops:
                seen.setdefault(round(float(t), 3), crop)
    return [Thumbnail(t, img) for t, img in sorted(seen.items())]


# --------------------------------------------------------------------------- words


def asr_words(video: str | Path) -> list[Word]:
    """Words spoken in the video's audio track with their times (faster-whisper ``tiny.en``).

    Decoded as :class:`mmfer.features.words.asr.AsrTranscriber` does (English, beam search,
    voice-activity filter), with word timestamps.

    Raises
    ------
    ConfigError
        faster-whisper or the model is not installed.
    FeatureError
        The audio track cannot be read.
    """
    from mmfer.config import TextConfig
    from mmfer.features.voice.loading import load_audio
    from mmfer.features.words.asr import SAMPLE_RATE, AsrTranscriber

    asr = AsrTranscriber(TextConfig(asr=True))
    wave = load_audio(Path(video), sample_rate=SAMPLE_RATE)  # (n_samples,)
    segments = asr.segments(wave, word_timestamps=True)
    return [
        Word(w.word.strip(), float(w.start), float(w.end))
        for s in segments
        for w in (s.words or [])
        if w.word.strip()
    ]


def timeline_words(video: Path, transcript: str | None, asr: bool) -> tuple[list[Word], str | None]:
    """Words for the timeline: timed ASR words (``asr``), else the transcript's words untimed.

    Returns
    -------
    words : list[Word]
        The words (empty when there are none).
    note : str or None
        Why speech recognition gave no words, for the caption.
    """
    if asr:
        try:
            words = asr_words(video)
        except FeatureError as e:
            return [], f"no words from speech recognition: {e.problem}"
        if words or transcript is None:
            return words, None if words else "speech recognition found no words"
    if transcript is not None:
        return [Word(w) for w in transcript.split()], None
    return [], None


# --------------------------------------------------------------------------- build + write


def timeline_from_windows(
    model: Any,
    windows: Sequence[WindowDetail],
    *,
    source: str | Path,
    window_s: float,
    hop_s: float,
    words: Sequence[Word] = (),
    caption: str = "",
) -> Timeline:
    """A :class:`Timeline` from windows of :func:`~mmfer.inference.stream.iter_windows`.

    Parameters
    ----------
    model
        The model that predicted the windows.
    windows
        The windows, in time order (``keep_crops=True`` for the face thumbnails).
    source
        The video.
    window_s, hop_s
        The windowing (recorded in the timeline).
    words
        Words to show (:func:`asr_words`, or an untimed transcript).
    caption
        Text under the figure.
    """
    if not windows:
        raise FeatureError(source, "no window to draw: no frame could be decoded")
    return Timeline(
        source=str(source),
        labels=list(model.labels),
        t_start=np.array([d.t_start for d in windows], dtype=float),
        t_end=np.array([d.t_end for d in windows], dtype=float),
        series=_series_rows(model, windows),
        thumbnails=_thumbnails(windows),
        words=list(words),
        latency_s=np.array([d.latency_s for d in windows], dtype=float),
        window_s=window_s,
        hop_s=hop_s,
        caption=caption,
    )


def build_timeline(
    model: Any,
    video: str | Path,
    *,
    window_s: float = 2.0,
    hop_s: float = 0.5,
    transcript: str | None = None,
    asr: bool = False,
    caption: str = "",
) -> Timeline:
    """Stream the video through ``model`` and build its :class:`Timeline`.

    Parameters
    ----------
    model
        A loaded model (:func:`mmfer.inference.load`), single or composed.
    video
        The video file.
    window_s, hop_s
        Window length and hop in seconds (as ``mmfer stream``).
    transcript
        Words spoken: fed to a model with the text modality, and shown (untimed)
        when ``asr`` is off or finds nothing.
    asr
        Show the words recognised in the audio track at their times.
    caption
        Text under the figure.

    Raises
    ------
    DataError
        Missing file, not a video, bad window/hop.
    FeatureError
        No frame can be decoded.
    """
    windows = list(
        iter_windows(model, video, window_s=window_s, hop_s=hop_s, transcript=transcript, keep_crops=True)
    )
    words, note = timeline_words(Path(video), transcript, asr)
    if note:
        caption = f"{caption} ({note})" if caption else note
    return timeline_from_windows(
        model, windows, source=video, window_s=window_s, hop_s=hop_s, words=words, caption=caption
    )


def render_png(timeline: Timeline, *, dpi: int = 110) -> bytes:
    """The timeline figure as PNG bytes (see :func:`mmfer.inference.timeline_render.figure_png`)."""
    from mmfer.inference.timeline_render import figure_png

    return figure_png(timeline, dpi=dpi)[0]


def write_timeline(timeline: Timeline, out_html: str | Path, *, dpi: int = 110) -> tuple[Path, Path]:
    """Write ``OUT.html`` (self-contained) and ``OUT.png`` beside it; returns both paths."""
    from mmfer.inference.timeline_render import figure_png, html_page
    from mmfer.io import atomic_write_bytes, atomic_write_text

    html_path = Path(out_html)
    if html_path.suffix.lower() not in (".html", ".htm"):
        html_path = html_path.with_suffix(html_path.suffix + ".html")
    png_path = html_path.with_suffix(".png")
    html_path.parent.mkdir(parents=True, exist_ok=True)
    png, axes_x = figure_png(timeline, dpi=dpi)
    atomic_write_bytes(png_path, png)
    atomic_write_text(html_path, html_page(timeline, png, axes_x))
    return html_path, png_path
