"""Decoding of video frames, audio tracks and still images (paper section 2.2 inputs).

Video and audio go through PyAV (FFmpeg bundled in the wheel; no system ffmpeg), so
mp4, avi, flv, mkv and webm all work. Still images go through OpenCV.

Frames are sampled at a fixed rate ``fps`` on the grid 0, 1/fps, 2/fps, ... (the
first decoded frame at or after each grid time), then evenly thinned to at most
``max_frames``. Only the picked frames are converted to RGB arrays, which is
where most of the decode cost would otherwise go.

Errors name the file: a file that cannot be opened or yields no frame raises
:class:`~mmfer.errors.FeatureError` ``"cannot decode video: <reason>"``; a file
that breaks part-way (truncated download) returns the frames decoded so far and
logs a warning; a file without an audio stream raises
:class:`~mmfer.errors.ModalityMissing`.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Iterator
from pathlib import Path

import av
import av.error
import cv2
import numpy as np

from mmfer.errors import ConfigError, FeatureError, ModalityMissing

logger = logging.getLogger(__name__)

__all__ = [
    "IMAGE_EXTENSIONS",
    "VIDEO_EXTENSIONS",
    "evenly_spaced",
    "iter_video_windows",
    "read_audio_track",
    "read_image",
    "read_video_frames",
]

VIDEO_EXTENSIONS: frozenset[str] = frozenset({".mp4", ".avi", ".flv", ".mkv", ".webm", ".mov", ".m4v"})
IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm"}
)

# PyAV raises its own FFmpegError tree; OS-level failures (permissions, EIO) surface as OSError.
_DECODE_ERRORS: tuple[type[BaseException], ...] = (av.error.FFmpegError, OSError, EOFError)


def evenly_spaced(n: int, k: int) -> np.ndarray:
    """Indices of ``min(n, k)`` evenly spaced items out of ``n`` (first and last included).

    Returns
    -------
    np.ndarray
        ``(min(n, k),)`` int64, strictly increasing.
    """
    if n <= k:
        return np.arange(n, dtype=np.int64)
    if k <= 1:
        return np.zeros(max(k, 0), dtype=np.int64)
    return np.round(np.linspace(0, n - 1, k)).astype(np.int64)


def _check_positive(**values: float) -> None:
    for name, v in values.items():
        if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
            raise ConfigError(f"{name} must be a positive number, got {v!r}")


def _open(path: str | Path, what: str) -> av.container.InputContainer:
    p = Path(path)
    if not p.is_file():
        raise FeatureError(p, f"cannot decode {what}: file not found")
    if p.stat().st_size == 0:
        raise FeatureError(p, f"cannot decode {what}: file is empty")
    try:
        return av.open(str(p), mode="r")
    except _DECODE_ERRORS as e:
        raise FeatureError(p, f"cannot decode {what}: {_reason(e)}") from None


def _reason(e: BaseException) -> str:
    # FFmpegError's str() repeats errno and file name; its strerror is the useful part.
    return getattr(e, "strerror", None) or str(e) or type(e).__name__


_restamp_warned = False
#: Above this an average frame rate is a broken header (every packet stamped 0), not a camera.
_MAX_PLAUSIBLE_FPS = 240.0


def _duration(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> float | None:
    """Stream duration in seconds from the header, or ``None`` when not stored (some avi/flv/mkv).

    A stream duration far shorter than its frame count at the nominal rate (a file whose
    packets are all stamped 0 says it lasts one frame) gives way to ``frames * period``.
    """
    period = _frame_period(stream)
    d = None
    if stream.duration is not None and stream.time_base is not None:
        d = float(stream.duration * stream.time_base)
    elif container.duration is not None:
        d = container.duration / av.time_base
    if stream.frames and period > 0 and (d is None or d < 0.5 * stream.frames * period):
        d = stream.frames * period
    return d


def _frame_period(stream: av.video.stream.VideoStream) -> float:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    if rate and float(rate) > _MAX_PLAUSIBLE_FPS and stream.guessed_rate:
        # average_rate = frames / stream duration, absurd when the duration header is broken;
        # guessed_rate comes from the codec's own frame rate.
        rate = stream.guessed_rate
    return 1.0 / float(rate) if rate else 0.0


class _VideoDecoder:
    """Iterate decoded frames of the first video stream; a mid-file error ends the iteration.

    ``broken`` holds the reason when decoding stopped on an error after some frames.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.container = _open(self.path, "video")
        if not self.container.streams.video:
            self.container.close()
            raise FeatureError(self.path, "cannot decode video: no video stream")
        self.stream = self.container.streams.video[0]
        # Frame-threaded decoding roughly doubles throughput on 2 cores.
        self.stream.thread_type = "AUTO"
        self.period = _frame_period(self.stream)
        self.duration = _duration(self.container, self.stream)
        self.decoded = 0
        self.last_time: float | None = None
        self.restamped = 0  # frames whose own stamp did not increase (timed from the frame rate)
        self.last_stamp: float | None = None  # the previous frame's stamp as stored in the file
        self.exhausted = False
        self.broken: str | None = None

    def __enter__(self) -> _VideoDecoder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.container.close()

    def frames(self) -> Iterator[tuple[float, av.VideoFrame]]:
        """Yield ``(time in seconds, frame)`` in presentation order."""
        try:
            for frame in self.container.decode(self.stream):
                t = stamp = frame.time
                if t is None:  # no pts (raw streams): fall back to the nominal frame rate
                    t = self.decoded * self.period
                elif self.last_time is not None and t <= self.last_time and self.period > 0:
                    # Decoded frames come out in presentation order (B-frames included: their
                    # packets' pts go back and forth in decode order, the frames' do not), so a
                    # stamp not above the previous frame's stamp is broken (e.g. every packet at
                    # 0): without this the whole clip would collapse onto its first frame.
                    # Only the file's own stamps count as broken: a sound stamp that merely falls
                    # behind a time rebuilt for an earlier broken one is moved on, not counted.
                    if self.last_stamp is None or stamp <= self.last_stamp:
                        self.restamped += 1
                    t = self.last_time + self.period
                self.last_stamp = stamp
                self.decoded += 1
                self.last_time = float(t)
                yield float(t), frame
            self.exhausted = True
        except _DECODE_ERRORS as e:
            if self.decoded == 0:
                raise FeatureError(self.path, f"cannot decode video: {_reason(e)}") from None
            self.broken = _reason(e)


def _pick(
    frames: Iterator[tuple[float, av.VideoFrame]], fps: float, tol: float, targets: np.ndarray | None = None
) -> Iterator[tuple[float, av.VideoFrame]]:
    """First frame at or after each target time (``targets`` or the grid k/fps), no duplicates.

    ``tol`` (half a frame period) lets a frame a hair before the target count as "at" it.
    """
    k = 0
    nxt = 0.0 if targets is None else float(targets[0]) if len(targets) else math.inf
    for t, frame in frames:
        if t + tol < nxt:
            continue
        yield t, frame
        # Skip every target this frame already covers (requested fps above the native rate).
        if targets is None:
            k = max(k + 1, math.floor((t + tol) * fps) + 1)
            nxt = k / fps
        else:
            k += 1
            while k < len(targets) and targets[k] <= t + tol:
                k += 1
            if k >= len(targets):
                return
            nxt = float(targets[k])


def _warn_partial(dec: _VideoDecoder) -> None:
    """Warn once when decoding broke part-way or the stream ended well before its header said."""
    last_t = dec.last_time or 0.0
    if dec.restamped:
        global _restamp_warned
        # Handled correctly, and a re-encoded corpus has it in every file: warn once per process.
        logger.log(
            logging.DEBUG if _restamp_warned else logging.WARNING,
            "%s: %d of %d frame timestamps did not increase (broken stamps); those frames timed at the "
            "nominal %.3f fps (further files with this are logged at DEBUG)",
            dec.path,
            dec.restamped,
            dec.decoded,
            1 / dec.period,
        )
        _restamp_warned = True
    if dec.broken is not None:
        logger.warning(
            "%s: video is truncated or corrupt (%s) after %d decoded frames (%.2f s); using the frames "
            "read so far",
            dec.path,
            dec.broken,
            dec.decoded,
            last_t,
        )
    elif dec.exhausted and dec.duration and last_t + 2 * max(dec.period, 0.05) < dec.duration:
        logger.warning(
            "%s: video stops at %.2f s but its header says %.2f s (truncated?); using the frames read",
            dec.path,
            last_t,
            dec.duration,
        )


def read_video_frames(path: str | Path, *, fps: float, max_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """Decode frames sampled at ``fps``, at most ``max_frames`` of them, evenly spread.

    Parameters
    ----------
    path
        Video file (mp4, avi, flv, mkv, webm, ...).
    fps
        Sampling rate in frames per second (the grid 0, 1/fps, ...).
    max_frames
        Upper bound; longer clips are evenly subsampled over their whole length.

    Returns
    -------
    frames : np.ndarray
        ``(T, H, W, 3)`` uint8 RGB, ``1 <= T <= max_frames``.
    timestamps : np.ndarray
        ``(T,)`` float64 presentation times in seconds, increasing.

    Raises
    ------
    FeatureError
        The file is missing, empty, not a video, or no frame can be decoded.
    """
    _check_positive(fps=fps, max_frames=max_frames)
    max_frames = int(max_frames)
    with _VideoDecoder(path) as dec:
        tol = dec.period / 2
        targets = None
        if dec.duration:
            # Header duration known: thin the fps grid up front so exactly the right frames convert.
            grid = np.arange(max(1, math.ceil(dec.duration * fps - 1e-9))) / fps
            targets = grid[evenly_spaced(len(grid), max_frames)]
        picked: list[tuple[float, np.ndarray]] = []
        keep_every, seen = 1, 0
        for t, frame in _pick(dec.frames(), fps, tol, targets):
            seen += 1
            if (seen - 1) % keep_every:
                continue
            picked.append((t, frame.to_ndarray(format="rgb24")))
            if targets is None and len(picked) >= 2 * max_frames:
                # Unknown length: halve the kept rate so memory stays bounded by 2 * max_frames frames.
                picked = picked[::2]
                keep_every *= 2
        _warn_partial(dec)
    if not picked:
        raise FeatureError(path, "cannot decode video: no frames decoded")
    picked = [picked[i] for i in evenly_spaced(len(picked), max_frames)]
    frames = np.stack([f for _, f in picked])  # (T, H, W, 3)
    times = np.asarray([t for t, _ in picked], dtype=np.float64)  # (T,)
    return frames, times


def iter_video_windows(
    path: str | Path, *, window_s: float, hop_s: float, fps: float
) -> Iterator[tuple[float, float, np.ndarray]]:
    """Stream ``(t_start, t_end, frames)`` windows of a video for online inference.

    Windows start at 0, ``hop_s``, ``2 * hop_s``, ... and hold the frames sampled at
    ``fps`` with ``t_start <= t < t_start + window_s``. A window is yielded as soon as
    a later frame shows it is complete, so memory stays at one window. The last window
    may be partial; its ``t_end`` is then the end of the sampled video. Windows without
    any frame (hop larger than the window) are skipped.

    Yields
    ------
    tuple
        ``(t_start, t_end, frames)`` with frames ``(n, H, W, 3)`` uint8 RGB, ``n >= 1``.
    """
    _check_positive(window_s=window_s, hop_s=hop_s, fps=fps)
    with _VideoDecoder(path) as dec:
        buf: deque[tuple[float, np.ndarray]] = deque()
        start = 0.0
        emitted_until = -math.inf  # time of the latest frame already yielded in some window
        last_t: float | None = None

        def window(end: float) -> np.ndarray | None:
            sel = [f for t, f in buf if start <= t < end]
            return np.stack(sel) if sel else None  # (n, H, W, 3)

        for t, frame in _pick(dec.frames(), fps, dec.period / 2):
            while t >= start + window_s:  # window [start, start + window_s) is complete
                w = window(start + window_s)
                if w is not None:
                    emitted_until = max(tt for tt, _ in buf if tt < start + window_s)
                    yield start, start + window_s, w
                start += hop_s
                while buf and buf[0][0] < start:
                    buf.popleft()
            buf.append((t, frame.to_ndarray(format="rgb24")))
            last_t = t
        _warn_partial(dec)
        if last_t is None:
            raise FeatureError(path, "cannot decode video: no frames decoded")
        stream_end = last_t + 1.0 / fps
        # Flush: partial windows as long as they bring frames not yielded before.
        while buf and buf[-1][0] > emitted_until:
            w = window(start + window_s)
            if w is not None:
                emitted_until = max(tt for tt, _ in buf if tt < start + window_s)
                yield start, min(start + window_s, stream_end), w
            start += hop_s
            while buf and buf[0][0] < start:
                buf.popleft()


def read_audio_track(path: str | Path, *, sample_rate: int) -> np.ndarray:
    """Decode the first audio stream as mono float32 at ``sample_rate`` Hz (FFmpeg resampler).

    Returns
    -------
    np.ndarray
        ``(n_samples,)`` float32 in [-1, 1].

    Raises
    ------
    ModalityMissing
        The file has no audio stream, or it decodes to zero samples.
    FeatureError
        The file cannot be opened or its audio cannot be decoded at all.
    """
    _check_positive(sample_rate=sample_rate)
    p = Path(path)
    container = _open(p, "audio")
    try:
        if not container.streams.audio:
            raise ModalityMissing(p, "no audio track")
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="flt", layout="mono", rate=int(sample_rate))
        chunks: list[np.ndarray] = []
        try:
            for frame in container.decode(stream):
                chunks.extend(o.to_ndarray().reshape(-1) for o in resampler.resample(frame))
        except _DECODE_ERRORS as e:
            if not chunks:
                raise FeatureError(p, f"cannot decode audio: {_reason(e)}") from None
            logger.warning("%s: audio truncated or corrupt (%s); using what was decoded", p, _reason(e))
        chunks.extend(o.to_ndarray().reshape(-1) for o in resampler.resample(None))  # flush
    finally:
        container.close()
    if not chunks or sum(c.size for c in chunks) == 0:
        raise ModalityMissing(p, "audio track is empty")
    audio = np.concatenate(chunks).astype(np.float32, copy=False)  # (n_samples,)
    # Downmixing loud stereo can overshoot full scale; keep the documented range.
    return np.clip(audio, -1.0, 1.0)


def read_image(path: str | Path) -> np.ndarray:
    """Read a still image as RGB; grayscale is replicated to 3 channels, alpha dropped.

    Returns
    -------
    np.ndarray
        ``(H, W, 3)`` uint8 RGB.

    Raises
    ------
    FeatureError
        Missing file, or not an image OpenCV can decode.
    """
    p = Path(path)
    if not p.is_file():
        raise FeatureError(p, "cannot read image: file not found")
    # np.fromfile + imdecode instead of imread: imread silently fails on non-ASCII paths.
    buf = np.fromfile(p, dtype=np.uint8)
    img = cv2.imdecode(buf, cv2.IMREAD_COLOR) if buf.size else None  # (H, W, 3) BGR uint8
    if img is None:
        raise FeatureError(p, "cannot read image: not a decodable image file (png, jpg, bmp, tiff, webp)")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
