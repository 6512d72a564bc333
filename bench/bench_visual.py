"""Throughput of the visual branch on this machine: decode, Haar detection, backbones.

Prints one table (frames per second) for:

- video decode (640x480 H.264, every frame decoded and converted to RGB),
- ``read_video_frames`` sampling (4 fps, 16 frames) per clip,
- Haar face detection on 640x480 frames,
- EfficientNet-Lite0 (pretrained) and EfficientNet-B0 (random init) ``forward_features``
  at 224 px, batch 32, under ``torch.inference_mode``,
- the FER2013 mini-Xception (``fer2013``) ``forward_embedding`` at 64 px grayscale, batch 32,
- the whole ``FaceFeatureExtractor.extract_frames`` (detect + crop + eq. 1 + Lite0, and
  detect + grayscale crop + fer2013).

Run: ``python bench/bench_visual.py [--threads N] [--batches K]``. Takes ~30-60 s on 2 cores.
The 1-minute load average is printed too: other processes on a shared box slow
everything down, multi-threaded torch most of all.
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import av
import cv2
import numpy as np
import torch

from mmfer.config import FaceConfig
from mmfer.features.face.backbones import create_backbone
from mmfer.features.face.detection import HaarFaceDetector
from mmfer.features.face.extractor import FaceFeatureExtractor
from mmfer.features.video import read_video_frames


def face_frame(w: int = 640, h: int = 480, dx: int = 0) -> np.ndarray:
    """Grey background with a cartoon frontal face the Haar cascade accepts."""
    img = np.full((h, w, 3), 60, np.uint8)
    cx, cy, s = w // 2 + dx, h // 2, int(min(w, h) * 0.85)
    cv2.ellipse(img, (cx, cy), (int(s * 0.30), int(s * 0.40)), 0, 0, 360, (205, 175, 150), -1)
    for side in (-1, 1):
        ex, ey = cx + side * int(s * 0.12), cy - int(s * 0.08)
        cv2.ellipse(
            img, (ex, ey - int(s * 0.07)), (int(s * 0.08), int(s * 0.02)), 0, 0, 360, (70, 50, 40), -1
        )
        cv2.ellipse(img, (ex, ey), (int(s * 0.065), int(s * 0.035)), 0, 0, 360, (235, 235, 235), -1)
        cv2.circle(img, (ex, ey), int(s * 0.03), (30, 20, 20), -1)
    cv2.ellipse(img, (cx, cy + int(s * 0.2)), (int(s * 0.11), int(s * 0.035)), 0, 0, 360, (140, 70, 70), -1)
    return img


def write_clip(path: Path, seconds: float = 10.0, rate: int = 25) -> int:
    """640x480 H.264 clip of a slowly moving face plus noise; returns the frame count."""
    rng = np.random.default_rng(0)
    c = av.open(str(path), "w")
    s = c.add_stream("libx264", rate=rate)
    s.width, s.height, s.pix_fmt = 640, 480, "yuv420p"
    n = int(seconds * rate)
    for i in range(n):
        img = face_frame(dx=int(40 * np.sin(i / 10)))
        img = np.clip(img.astype(np.int16) + rng.integers(-8, 9, img.shape), 0, 255).astype(np.uint8)
        for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
            c.mux(p)
    for p in s.encode():
        c.mux(p)
    c.close()
    return n


def rate(fn: Callable[[], int], min_time: float = 2.0) -> float:
    """Items per second of ``fn`` (returns items done), repeated for at least ``min_time`` s."""
    done, start = 0, time.perf_counter()
    while True:
        done += fn()
        elapsed = time.perf_counter() - start
        if elapsed >= min_time:
            return done / elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch default)")
    ap.add_argument("--batches", type=int, default=2, help="timed batches of 32 per backbone")
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)  # silence the (expected) random-B0 warning
    if args.threads:
        torch.set_num_threads(args.threads)
    t_all = time.perf_counter()
    print(
        f"cores={os.cpu_count()} torch={torch.__version__} threads={torch.get_num_threads()} "
        f"load(1m)={os.getloadavg()[0]:.2f}"
    )
    rows: list[tuple[str, float, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(tmp) / "clip.mp4"
        n_frames = write_clip(clip)

        def decode_all() -> int:
            with av.open(str(clip)) as c:
                st = c.streams.video[0]
                st.thread_type = "AUTO"
                return sum(1 for f in c.decode(st) if f.to_ndarray(format="rgb24") is not None)

        rows.append(("decode 640x480 h264 -> RGB", rate(decode_all), "frames/s"))

        def sample_clip() -> int:
            read_video_frames(clip, fps=4.0, max_frames=16)
            return 1

        rows.append((f"read_video_frames 4fps/16 ({n_frames / 25:.0f} s clip)", rate(sample_clip), "clips/s"))

    det = HaarFaceDetector()
    frames = [face_frame(dx=d) for d in range(-40, 41, 10)]
    hits = sum(det(f) is not None for f in frames)

    def detect() -> int:
        for f in frames:
            det(f)
        return len(frames)

    rows.append((f"Haar detect 640x480 ({hits}/{len(frames)} found)", rate(detect), "frames/s"))

    x = torch.randn(32, 3, 224, 224)  # (B, 3, H, W)
    for name in ("efficientnet_lite0", "efficientnet_b0"):
        net = create_backbone(name)
        with torch.inference_mode():
            net.forward_features(x)  # warm-up: oneDNN builds its kernels on the first call
            t = time.perf_counter()
            for _ in range(args.batches):
                net.forward_features(x)
            fps = 32 * args.batches / (time.perf_counter() - t)
        label = "pretrained" if net.pretrained else "random init"
        rows.append((f"{name} ({label}) 224px b32", fps, "frames/s"))

    fer = create_backbone("fer2013")
    xg = torch.rand(32, 1, 64, 64) * 2 - 1  # (B, 1, 64, 64) in [-1, 1]
    with torch.inference_mode():
        fer.forward_embedding(xg)  # warm-up
        t = time.perf_counter()
        for _ in range(args.batches * 4):  # ~100x cheaper than Lite0: more batches for a stable time
            fer.forward_embedding(xg)
        rows.append(
            ("fer2013 (FER2013) 64px gray b32", 32 * args.batches * 4 / (time.perf_counter() - t), "frames/s")
        )

    ext = FaceFeatureExtractor(FaceConfig(batch_size=32))
    batch = np.stack([face_frame(dx=d % 80 - 40) for d in range(32)])  # (32, 480, 640, 3)
    ext.extract_frames(batch[:2])  # build backbone/detector outside the timing
    t = time.perf_counter()
    ext.extract_frames(batch)
    rows.append(("extract_frames (Haar+crop+eq.1+Lite0) b32", 32 / (time.perf_counter() - t), "frames/s"))

    ext = FaceFeatureExtractor(FaceConfig(backbone="fer2013", batch_size=32))
    ext.extract_frames(batch[:2])
    t = time.perf_counter()
    ext.extract_frames(batch)
    rows.append(("extract_frames (Haar+gray crop+fer2013) b32", 32 / (time.perf_counter() - t), "frames/s"))

    width = max(len(r[0]) for r in rows)
    print(f"{'stage':<{width}}  {'rate':>9}  unit")
    print("-" * (width + 20))
    for name, value, unit in rows:
        print(f"{name:<{width}}  {value:9.1f}  {unit}")
    print(f"total {time.perf_counter() - t_all:.1f} s, load(1m)={os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
