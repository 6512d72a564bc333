"""Face detection on real video: OpenCV Haar cascade vs dlib's HOG detector.

For every clip of ``/work/shared/data/ravdess-av-actor05`` (28 RAVDESS videos of actor 05,
640x360), frames are sampled as the face branch samples them (``FaceConfig`` defaults:
4 fps, at most 16 per clip); each detector then runs on every sampled frame. Prints per
detector the detection rate (frames with a face / frames sampled), the clips with at
least one miss, and detection speed (frames/s, detection only, decoding excluded).

Run: ``python bench/bench_face_detect.py [--data DIR] [--repeats K]``. dlib_hog needs
``pip install 'mmfer[landmarks]'`` (skipped with a note otherwise).
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from pathlib import Path

import numpy as np

from mmfer.config import FaceConfig
from mmfer.errors import ConfigError
from mmfer.features.face.detection import DlibHogDetector, HaarFaceDetector
from mmfer.features.video import read_video_frames

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "ravdess-av-actor05"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder of .mp4 clips")
    ap.add_argument("--repeats", type=int, default=1, help="timed passes over all frames per detector")
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)  # the broken-timestamp note is known for these clips
    clips = sorted(args.data.glob("*.mp4"))
    if not clips:
        raise SystemExit(f"{args.data}: no .mp4 clips (see /work/shared/data/README.md)")
    cfg = FaceConfig()
    t0 = time.perf_counter()
    frames: list[tuple[str, np.ndarray]] = []
    for c in clips:
        fr, _ = read_video_frames(c, fps=cfg.fps, max_frames=cfg.max_frames)
        frames += [(c.name, f) for f in fr]
    shape = frames[0][1].shape
    print(
        f"{len(clips)} clips, {len(frames)} frames sampled ({cfg.fps} fps, <= {cfg.max_frames}/clip), "
        f"{shape[1]}x{shape[0]}, decoded in {time.perf_counter() - t0:.1f} s; "
        f"cores={os.cpu_count()} load(1m)={os.getloadavg()[0]:.2f}"
    )
    detectors: dict[str, object] = {"haar": HaarFaceDetector()}
    try:
        detectors["dlib_hog"] = DlibHogDetector()
    except ConfigError as e:
        print(f"dlib_hog skipped: {e}")
    print(f"{'detector':<10} {'found':>9} {'rate':>7} {'frames/s':>9}  clips with misses")
    boxes: dict[str, list[tuple[int, int, int, int] | None]] = {}
    for name, det in detectors.items():
        t = time.perf_counter()
        for _ in range(args.repeats):
            boxes[name] = [det(f) for _, f in frames]  # type: ignore[operator]
        fps = args.repeats * len(frames) / (time.perf_counter() - t)
        hits = [b is not None for b in boxes[name]]
        missed = sorted({clip for (clip, _), h in zip(frames, hits, strict=True) if not h})
        print(
            f"{name:<10} {sum(hits):>4}/{len(hits):<4} {sum(hits) / len(hits):>7.1%} {fps:>9.1f}  "
            f"{len(missed)}/{len(clips)}{': ' + ', '.join(missed[:5]) if missed else ''}"
        )
    if len(boxes) == 2:
        pairs = [(a, b) for a, b in zip(*boxes.values(), strict=True) if a is not None and b is not None]
        ious = np.array([iou(a, b) for a, b in pairs])
        sides = np.array([[a[2], b[2]] for a, b in pairs], dtype=float)
        print(
            f"boxes found by both ({len(pairs)} frames): IoU mean {ious.mean():.2f} (min {ious.min():.2f}); "
            f"median side haar {np.median(sides[:, 0]):.0f} px, dlib_hog {np.median(sides[:, 1]):.0f} px"
        )


def iou(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    """Intersection over union of two ``(x, y, w, h)`` boxes."""
    w = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    h = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    inter = max(0, w) * max(0, h)
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


if __name__ == "__main__":
    main()
