"""Videos whose packets are all stamped 0 (seen in re-encoded RAVDESS clips) still sample over time."""

from __future__ import annotations

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
