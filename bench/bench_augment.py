"""Throughput of train-time voice augmentation (``features.augment``) on real RAVDESS clips.

One process, one thread, no cache: for the first ``--clips`` clips of
``../shared/data/ravdess-speech-16k`` (sorted paths) it times, per clip,

* decoding + the Whisper tiny.en encoder (what a plain audio unit costs),
* decoding + one augmented copy (``augment_wave``: noise, gain, pitch, stretch at the
  default probabilities) without the encoder,
* decoding + one augmented copy + the encoder (what an ``audio_aug`` unit costs),

and prints clips/s and the mean clip length. Usage::

    python bench/bench_augment.py [--clips 100]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

from mmfer.config import AugmentConfig, FeatureConfig
from mmfer.features.voice.augment import augment_wave
from mmfer.features.voice.dispatch import create_audio_extractor
from mmfer.features.voice.loading import load_clip
from mmfer.provenance import code_version

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ravdess-speech-16k"


def main() -> None:
    """Time the three paths and print one line per path."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clips", type=int, default=100)
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    clips = sorted(p for p in DATA.rglob("*") if p.suffix in {".wav", ".flac"})[: args.clips]
    if not clips:
        raise SystemExit(f"no clips under {DATA}")
    cfg = FeatureConfig()  # default profile: Whisper tiny.en
    cfg.audio.whisper_threads = 1
    ext = create_audio_extractor(cfg.audio, threads=1)
    sr = getattr(ext, "read_rate", None) or cfg.audio.sample_rate
    aug = AugmentConfig(copies=1)
    ext.transform_wave(load_clip(clips[0], cfg.audio, sample_rate=sr), sr)  # model load, warm-up
    augment_wave(load_clip(clips[0], cfg.audio, sample_rate=sr), sr, aug, 1)
    seconds = sum(len(load_clip(p, cfg.audio, sample_rate=sr)) / sr for p in clips) / len(clips)

    def load(p: Path) -> np.ndarray:
        return load_clip(p, cfg.audio, sample_rate=sr)

    paths = {
        "decode + Whisper (plain unit)": lambda p: ext.transform_wave(load(p), sr),
        "decode + augment (no encoder)": lambda p: augment_wave(load(p), sr, aug, 1),
        "decode + augment + Whisper (audio_aug unit)": lambda p: ext.transform_wave(
            augment_wave(load(p), sr, aug, 1), sr
        ),
    }
    print(f"code version {code_version()}; {len(clips)} clips, mean {seconds:.2f} s; 1 process, 1 thread")
    for name, fn in paths.items():
        t0 = time.perf_counter()
        for p in clips:
            fn(p)
        dt = time.perf_counter() - t0
        print(f"{name}: {len(clips) / dt:.1f} clips/s ({1000 * dt / len(clips):.1f} ms/clip)")


if __name__ == "__main__":
    main()
