"""Frame timestamps: files whose packets are all stamped 0 (as a careless re-encode can leave
them) still sample over time; sound stamps (B-frames included) are not reported as broken."""

from __future__ import annotations

import itertools
import logging
from pathlib import Path

import av
import numpy as np
import pytest

from mmfer.features.video import read_video_frames

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def write_zero_stamped(path: Path, n: int = 50, rate: int = 25) -> Path:
    """H.264 mp4 of ``n`` frames (frame i has grey level 4 i) with every packet's pts/dts = 0."""
    c = av.open(str(path), "w")
    s = c.add_stream("libx264", rate=rate)
    s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
    for i in range(n):
        for p in s.encode(av.VideoFrame.from_ndarray(np.full((48, 64, 3), 4 * i, np.uint8), format="rgb24")):
            p.pts = p.dts = 0
            c.mux(p)
    for p in s.encode():
        p.pts = p.dts = 0
        c.mux(p)
    c.close()
    return path


def test_zero_timestamps_are_rebuilt_from_the_frame_rate(tmp_path: Path, caplog) -> None:
    clip = write_zero_stamped(tmp_path / "zero.mp4")  # 2 s at 25 fps
    with caplog.at_level(logging.DEBUG, logger="mmfer.features.video"):  # WARNING once per process
        frames, times = read_video_frames(clip, fps=4.0, max_frames=16)
    assert len(frames) == 8  # 2 s at 4 fps, not just the first frame
    np.testing.assert_allclose(times, np.arange(8) / 4, atol=0.021)
    level = frames[:, 0, 0, 0].astype(float) / 4  # grey level / 4 = frame index (within codec error)
    np.testing.assert_allclose(level, times * 25, atol=1.5)
    assert any("did not increase" in r.getMessage() and "zero.mp4" in r.getMessage() for r in caplog.records)


@pytest.mark.realdata
def test_ravdess_av_clips_give_a_frame_every_quarter_second() -> None:
    clips = sorted((DATA / "ravdess-av-actor05").glob("*.mp4"))
    if not clips:
        pytest.skip("ravdess-av-actor05 not present")
    frames, times = read_video_frames(clips[0], fps=4.0, max_frames=16)
    assert len(frames) >= 12 and np.all(np.diff(times) > 0.2)  # ~3.1 s clips


def _video_log(caplog) -> list[str]:  # type: ignore[no-untyped-def]
    return [r.getMessage() for r in caplog.records if r.name == "mmfer.features.video"]


def write_b_frames(path: Path, n: int = 50, rate: int = 25, stamps: list[int] | None = None) -> Path:
    """H.264 mp4 with B-frames (packets' pts go back and forth in decode order, as in most
    camera/ffmpeg files). ``stamps``: optional packet index -> pts (in frames) to force,
    written without B-frames (so the frames come out in packet order with those pts)."""
    c = av.open(str(path), "w")
    s = c.add_stream("libx264", rate=rate)
    s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
    s.options = {"bf": "0" if stamps else "3"}
    k = 0

    def mux(packets) -> None:  # type: ignore[no-untyped-def]
        nonlocal k
        for p in packets:
            if stamps:
                tick = round(1 / (rate * p.time_base))
                # dts one frame early keeps dts strictly increasing (the muxer insists) and pts >= dts
                p.pts, p.dts = stamps[k] * tick, (k - 1) * tick
            c.mux(p)
            k += 1

    for i in range(n):
        mux(s.encode(av.VideoFrame.from_ndarray(np.full((48, 64, 3), 4 * i, np.uint8), format="rgb24")))
    mux(s.encode())
    c.close()
    return path


def test_sound_stamps_with_b_frames_give_no_warning(tmp_path: Path, caplog) -> None:
    clip = write_b_frames(tmp_path / "bframes.mp4")  # 2 s at 25 fps
    with av.open(str(clip)) as c:  # the file really has B-frames: packet pts not monotonic
        pts = [p.pts for p in c.demux(c.streams.video[0]) if p.size]
    assert any(b < a for a, b in itertools.pairwise(pts))
    with caplog.at_level(logging.DEBUG, logger="mmfer.features.video"):
        frames, times = read_video_frames(clip, fps=25.0, max_frames=100)
    assert not any("did not increase" in m for m in _video_log(caplog))
    assert len(frames) == 50
    np.testing.assert_allclose(times, np.arange(50) / 25, atol=1e-6)  # the file's own stamps


def test_one_repeated_stamp_is_one_broken_stamp(tmp_path: Path, caplog) -> None:
    """Stamps 0..9, 9, 10, ..., 48: one repeat. Counted once (the sound stamps after it are not)."""
    stamps = [*range(10), *range(9, 49)]
    clip = write_b_frames(tmp_path / "repeat.mp4", stamps=stamps)
    with caplog.at_level(logging.DEBUG, logger="mmfer.features.video"):
        frames, times = read_video_frames(clip, fps=25.0, max_frames=100)
    msgs = [m for m in _video_log(caplog) if "did not increase" in m]
    assert len(msgs) == 1 and ": 1 of 50 frame timestamps" in msgs[0], msgs
    assert len(frames) >= 48 and np.all(np.diff(times) > 0)


@pytest.mark.realdata
def test_ravdess_av_clips_have_sound_stamps(caplog) -> None:  # type: ignore[no-untyped-def]
    """The shared actor-05 clips keep the originals' stamps (pts 0, 1001, ... at 1/30000 s):
    reading them must not report broken stamps."""
    clips = sorted((DATA / "ravdess-av-actor05").glob("*.mp4"))
    if not clips:
        pytest.skip("ravdess-av-actor05 not present")
    with caplog.at_level(logging.DEBUG, logger="mmfer.features.video"):
        for clip in clips[:4]:
            read_video_frames(clip, fps=4.0, max_frames=16)
    assert not any("did not increase" in m for m in _video_log(caplog))
