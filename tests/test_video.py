"""Video/audio/image decoding (mmfer.features.video) on fixtures written with PyAV/OpenCV."""

from __future__ import annotations

import logging
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from mmfer.errors import ConfigError, FeatureError, ModalityMissing
from mmfer.features import video as V
from mmfer.features.video import (
    evenly_spaced,
    iter_video_windows,
    read_audio_track,
    read_image,
    read_video_frames,
)

RATE = 10  # fixture frame rate
STEP = 8  # grey level of frame i is (STEP * i) % 256, so a decoded frame tells its index


def make_video(
    path: Path,
    *,
    n: int = 30,
    codec: str = "libx264",
    size: tuple[int, int] = (64, 48),
    audio_channels: int = 0,
    audio_rate: int = 16000,
    tone_hz: float = 440.0,
    options: dict[str, str] | None = None,
) -> Path:
    """Write ``n`` grey frames at RATE fps (optionally with a sine audio track)."""
    c = av.open(str(path), "w", options=options or {})
    s = c.add_stream(codec, rate=RATE)
    s.width, s.height = size
    s.pix_fmt = "yuv420p"
    a = None
    if audio_channels:
        a = c.add_stream("aac", rate=audio_rate)
        a.layout = "mono" if audio_channels == 1 else "stereo"
    for i in range(n):
        img = np.full((size[1], size[0], 3), (STEP * i) % 256, np.uint8)
        for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
            c.mux(p)
    for p in s.encode():
        c.mux(p)
    if a is not None:
        t = np.arange(int(audio_rate * n / RATE)) / audio_rate
        x = (0.5 * np.sin(2 * np.pi * tone_hz * t)).astype(np.float32)
        planar = np.repeat(x[None], audio_channels, axis=0)  # (channels, n) planar float
        frame = av.AudioFrame.from_ndarray(planar, format="fltp", layout=a.layout.name)
        frame.sample_rate = audio_rate
        for p in a.encode(frame):
            c.mux(p)
        for p in a.encode():
            c.mux(p)
    c.close()
    return path


def frame_index(frame: np.ndarray) -> int:
    """Index of a fixture frame from its grey level (lossy codecs are off by a few levels)."""
    return round(float(frame.mean()) / STEP)


@pytest.mark.parametrize(
    ("ext", "codec"),
    [("mp4", "libx264"), ("avi", "mpeg4"), ("flv", "flv"), ("mkv", "libx264"), ("webm", "libvpx-vp9")],
)
def test_containers_decode_and_sample_at_fps(tmp_path: Path, ext: str, codec: str) -> None:
    path = make_video(tmp_path / f"clip.{ext}", n=30, codec=codec)  # 3 s at 10 fps
    frames, times = read_video_frames(path, fps=4, max_frames=100)
    assert frames.dtype == np.uint8 and frames.shape[1:] == (48, 64, 3)
    assert len(frames) == len(times) == 12  # grid 0, 0.25, ..., 2.75
    assert np.all(np.diff(times) > 0)
    # Each picked frame is the one nearest its grid time (within half a source frame).
    grid = np.arange(12) / 4
    assert np.all(np.abs(times - grid) <= 0.5 / RATE + 1e-6)
    # ... and its pixels are really that frame (not a neighbour mislabelled).
    assert [frame_index(f) for f in frames] == [round(t * RATE) for t in times]


def test_max_frames_evenly_subsamples_whole_clip(tmp_path: Path) -> None:
    path = make_video(tmp_path / "long.mp4", n=60)  # 6 s
    frames, times = read_video_frames(path, fps=4, max_frames=5)
    assert len(frames) == 5
    assert times[0] == pytest.approx(0.0) and times[-1] >= 5.5  # spans start to end
    gaps = np.diff(times)
    assert gaps.max() - gaps.min() <= 0.3  # roughly even


def test_fps_above_native_rate_gives_no_duplicates(tmp_path: Path) -> None:
    path = make_video(tmp_path / "c.mp4", n=20)
    frames, times = read_video_frames(path, fps=50, max_frames=1000)
    assert len(frames) == 20
    assert len(np.unique(times)) == 20


def test_unknown_duration_path_bounds_memory_and_spreads(tmp_path: Path, monkeypatch) -> None:
    path = make_video(tmp_path / "c.mkv", n=60)
    monkeypatch.setattr(V, "_duration", lambda container, stream: None)
    frames, times = read_video_frames(path, fps=10, max_frames=7)
    assert len(frames) == 7
    assert times[0] == pytest.approx(0.0) and times[-1] >= 4.5
    assert np.all(np.diff(times) > 0)


def test_evenly_spaced() -> None:
    assert evenly_spaced(3, 5).tolist() == [0, 1, 2]
    idx = evenly_spaced(100, 4)
    assert idx[0] == 0 and idx[-1] == 99 and len(idx) == 4


def test_truncated_mp4_without_index_raises_feature_error(tmp_path: Path) -> None:
    full = make_video(tmp_path / "full.mp4", n=40, size=(96, 64))
    cut = tmp_path / "cut.mp4"
    data = full.read_bytes()
    cut.write_bytes(data[: len(data) // 2])  # mp4 index (moov) is at the end -> unreadable
    with pytest.raises(FeatureError, match="cannot decode video") as ei:
        read_video_frames(cut, fps=4, max_frames=16)
    assert "cut.mp4" in str(ei.value)


@pytest.mark.parametrize(
    ("name", "options"), [("cut.mkv", None), ("cut.mp4", {"movflags": "frag_keyframe+empty_moov"})]
)
def test_truncated_streamable_file_returns_partial_frames_and_warns(
    tmp_path: Path, caplog, name: str, options: dict[str, str] | None
) -> None:
    full = make_video(tmp_path / f"full{Path(name).suffix}", n=60, size=(160, 120), options=options)
    all_frames, _ = read_video_frames(full, fps=10, max_frames=100)
    cut = tmp_path / name
    data = full.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    with caplog.at_level(logging.WARNING, logger="mmfer.features.video"):
        frames, _ = read_video_frames(cut, fps=10, max_frames=100)
    assert 0 < len(frames) < len(all_frames)
    assert any(name in r.getMessage() and "truncated" in r.getMessage() for r in caplog.records)


def test_random_bytes_empty_and_missing_files(tmp_path: Path) -> None:
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(FeatureError, match=r"junk\.mp4: cannot decode video"):
        read_video_frames(junk, fps=4, max_frames=8)
    empty = tmp_path / "empty.avi"
    empty.write_bytes(b"")
    with pytest.raises(FeatureError, match="empty"):
        read_video_frames(empty, fps=4, max_frames=8)
    with pytest.raises(FeatureError, match="not found"):
        read_video_frames(tmp_path / "nope.mp4", fps=4, max_frames=8)
    with pytest.raises(ConfigError):
        read_video_frames(junk, fps=0, max_frames=8)


def test_audio_track_mono_resampled(tmp_path: Path) -> None:
    path = make_video(tmp_path / "av.mp4", n=20, audio_channels=2, tone_hz=440.0)  # 2 s stereo
    a16 = read_audio_track(path, sample_rate=16000)
    a8 = read_audio_track(path, sample_rate=8000)
    assert a16.dtype == np.float32 and a16.ndim == 1
    assert abs(len(a16) - 32000) < 2048  # AAC priming/padding adds < 2 frames of 1024
    assert abs(len(a8) - len(a16) / 2) < 1024
    assert np.abs(a16).max() <= 1.0 and 0.3 < np.abs(a16).max()
    # The tone survives decoding, downmixing and resampling at both rates.
    for sig, sr in ((a16, 16000), (a8, 8000)):
        spec = np.abs(np.fft.rfft(sig))
        peak_hz = np.argmax(spec) * sr / len(sig)
        assert abs(peak_hz - 440.0) < 5


def test_video_without_audio_is_modality_missing(tmp_path: Path) -> None:
    path = make_video(tmp_path / "silent.mp4", n=5)
    with pytest.raises(ModalityMissing, match=r"silent\.mp4: no audio track"):
        read_audio_track(path, sample_rate=16000)


def test_audio_of_garbage_file_is_feature_error(tmp_path: Path) -> None:
    junk = tmp_path / "junk.mkv"
    junk.write_bytes(b"\x00\x01garbage" * 300)
    with pytest.raises(FeatureError, match="cannot decode audio"):
        read_audio_track(junk, sample_rate=16000)


def test_read_image_rgb_and_gray(tmp_path: Path) -> None:
    rgb = np.zeros((8, 10, 3), np.uint8)
    rgb[..., 0] = 200  # red
    cv2.imwrite(str(tmp_path / "red.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    out = read_image(tmp_path / "red.png")
    assert out.shape == (8, 10, 3) and out.dtype == np.uint8
    assert np.array_equal(out, rgb)  # channel order is RGB
    gray = np.arange(80, dtype=np.uint8).reshape(8, 10)
    cv2.imwrite(str(tmp_path / "g.png"), gray)
    g = read_image(tmp_path / "g.png")
    assert g.shape == (8, 10, 3)
    assert all(np.array_equal(g[..., c], gray) for c in range(3))


def test_read_image_rejects_non_images(tmp_path: Path) -> None:
    txt = tmp_path / "notes.png"
    txt.write_text("this is not a picture")
    with pytest.raises(FeatureError, match=r"notes\.png: cannot read image"):
        read_image(txt)
    with pytest.raises(FeatureError, match="not found"):
        read_image(tmp_path / "missing.jpg")


def test_video_windows_stream(tmp_path: Path) -> None:
    path = make_video(tmp_path / "w.webm", n=30, codec="libvpx-vp9")  # 3 s
    wins = list(iter_video_windows(path, window_s=1.0, hop_s=0.5, fps=4))
    starts = [w[0] for w in wins]
    assert starts == pytest.approx([0.0, 0.5, 1.0, 1.5, 2.0])
    all_frames, _ = read_video_frames(path, fps=4, max_frames=1000)
    seen = set()
    for t0, t1, frames in wins:
        assert t1 > t0 and frames.ndim == 4 and frames.shape[1:] == (48, 64, 3)
        assert 1 <= len(frames) <= 4  # 1 s at 4 fps
        # Every frame belongs to the window it was yielded in.
        for f in frames:
            t = frame_index(f) / RATE
            assert t0 - 1e-6 <= t < t1 + 1e-6
            seen.add(frame_index(f))
    assert seen == {frame_index(f) for f in all_frames}  # nothing sampled is lost
    with pytest.raises(ConfigError):
        next(iter_video_windows(path, window_s=1.0, hop_s=0.0, fps=4))
