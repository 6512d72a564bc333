"""Writing a clip: H.264/MPEG-4 video with AAC audio (PyAV) and 16-bit PCM wav."""

from __future__ import annotations

import functools
from fractions import Fraction
from pathlib import Path

import numpy as np

from mmfer.errors import DataError

# Sample rates the AAC encoder accepts; others would fail deep inside PyAV.
AAC_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)


@functools.lru_cache(maxsize=1)
def video_codec() -> str:
    """The best video encoder this PyAV build has: ``libx264`` (H.264), else ``mpeg4``."""
    import av

    for name in ("libx264", "mpeg4"):
        try:
            av.codec.Codec(name, "w")
            return name
        except Exception:  # PyAV raises several types for an unknown codec
            continue
    raise DataError(None, "this PyAV build can encode neither H.264 (libx264) nor MPEG-4 video")


def write_mp4(path: Path, frames: np.ndarray, audio: np.ndarray, *, fps: int, sample_rate: int) -> None:
    """Mux ``frames`` ``(T, H, W, 3)`` uint8 RGB and mono ``audio`` ``(n,)`` float32 into an MP4."""
    import av

    codec = video_codec()
    with av.open(str(path), "w", format="mp4") as out:
        vs = out.add_stream(codec, rate=fps)
        vs.width, vs.height = frames.shape[2], frames.shape[1]
        vs.pix_fmt = "yuv420p"
        # One thread: tiny frames gain nothing from threads and one keeps output stable.
        vs.codec_context.thread_count = 1
        if codec == "libx264":
            # x264's macroblock-tree rate control made decoded frames differ from run to
            # run (measured with PyAV 18.1); without it the output is reproducible.
            vs.options = {"crf": "20", "preset": "fast", "x264-params": "mbtree=0"}
        else:
            vs.bit_rate = 600_000
        aus = out.add_stream("aac", rate=sample_rate, layout="mono")
        aus.bit_rate = 64_000
        tb_v = Fraction(1, fps)
        for i, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            frame.pts, frame.time_base = i, tb_v
            out.mux(vs.encode(frame))
        out.mux(vs.encode())
        tb_a = Fraction(1, sample_rate)
        chunk = 1024  # AAC frame size
        for s in range(0, len(audio), chunk):
            block = np.ascontiguousarray(audio[None, s : s + chunk], dtype=np.float32)  # (1, chunk)
            frame = av.AudioFrame.from_ndarray(block, format="fltp", layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = sample_rate, s, tb_a
            out.mux(aus.encode(frame))
        out.mux(aus.encode())


def write_wav(path: Path, audio: np.ndarray, sample_rate: int) -> None:
    import soundfile as sf

    sf.write(str(path), audio, sample_rate, subtype="PCM_16", format="WAV")
