"""Throughput of the audio and text branches.

Prints clips/s of audio extraction (decode included) for ~100 3-s clips, for MFCC
(librosa), the Whisper tiny.en encoder (CTranslate2 int8; ``--whisper-variants`` adds
float32, 30 s padding and all five encoder states from the PyTorch port, the cross-corpus
front end of configs/crosscorpus.yaml) and eGeMAPS (when openSMILE is installed):
the bare extractor in one process, then the cached runner
(:func:`mmfer.features.extract_features`) with 1 and N workers and a fully cached
re-run; then TF-IDF fit/transform docs/s for both idf variants.

Usage::

    python bench/bench_audio.py [--clips 100] [--seconds 3] [--workers 2] [--real] [--whisper-variants]

``--real`` uses the first RAVDESS clips from ``../shared/data`` instead of synthetic ones.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from mmfer.config import AudioConfig, FeatureConfig, TextConfig
from mmfer.data.table import make_table
from mmfer.features.extract import extract_features
from mmfer.features.voice.dispatch import create_audio_extractor
from mmfer.features.words.tfidf import TextTfidf

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
WORDS = (
    "kids dogs door talking sitting happy sad angry fearful calm surprised disgust neutral "
    "voice face smile frown shout whisper loud quiet bright dark morning evening rain sun "
    "friend stranger home street music silence laugh cry wait run stop start again never"
).split()


def synthetic_clips(root: Path, n: int, seconds: float, sr: int = 16000) -> list[Path]:
    """``n`` speech-like clips: a gliding harmonic tone with an amplitude envelope plus noise."""
    rng = np.random.default_rng(0)
    t = np.arange(round(seconds * sr)) / sr
    paths = []
    for i in range(n):
        f0 = 110 + 90 * rng.random() + 30 * np.sin(2 * np.pi * 0.5 * t)  # (n_samples,) Hz
        phase = 2 * np.pi * np.cumsum(f0) / sr
        voiced = sum(np.sin(k * phase) / k for k in range(1, 6))
        env = 0.5 + 0.5 * np.sin(2 * np.pi * (2 + 3 * rng.random()) * t) ** 2
        y = 0.2 * env * voiced + 0.01 * rng.standard_normal(t.size)
        p = root / f"clip{i:03d}.wav"
        sf.write(p, y.astype(np.float32), sr)
        paths.append(p)
    return paths


def real_clips(n: int) -> list[Path]:
    clips = sorted((DATA / "ravdess-speech-16k").glob("Actor_*/*.flac"))[:n]
    if not clips:
        raise SystemExit(f"--real: no clips under {DATA / 'ravdess-speech-16k'}")
    return clips


def rate(n: int, seconds: float) -> str:
    return f"{n / seconds:8.1f}/s  ({seconds:6.2f} s for {n})"


def cpu_seconds() -> float:
    """CPU time of this process and its finished children (pool workers exit with the pool)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def bench_extractor(name: str, paths: list[Path], workers: int, **options: object) -> None:
    """Clips/s of one audio extractor: bare, then through the cached runner."""
    cfg = AudioConfig(extractor=name, **options)  # type: ignore[arg-type]
    ext = create_audio_extractor(cfg)
    seconds_audio = sum(sf.info(str(p)).duration for p in paths)
    first = ext.extract(paths[0])  # numba compilation / model load happens on the first call
    label = name + "".join(f" {k}={v}" for k, v in options.items())
    print(f"{label}: {len(paths)} clips, {seconds_audio / len(paths):.2f} s mean, output {first.shape}")
    t0, c0 = time.perf_counter(), cpu_seconds()
    for p in paths:
        ext.extract(p)
    dt, cpu = time.perf_counter() - t0, cpu_seconds() - c0
    print(
        f"  extractor, 1 process          {rate(len(paths), dt)}  cpu {cpu:5.2f} s"
        f"  = {seconds_audio / dt:.0f}x real time"
    )

    records = [
        {"id": p.stem + f"_{i}", "speaker": "s", "emotion": "neutral", "audio": str(p)}
        for i, p in enumerate(paths)
    ]
    table = make_table(records, corpus="bench", root=paths[0].parent)
    with tempfile.TemporaryDirectory() as tmp:
        for w in sorted({1, workers}):
            t0, c0 = time.perf_counter(), cpu_seconds()
            extract_features(table, FeatureConfig(audio=cfg, workers=w), Path(tmp) / f"w{w}", progress=False)
            dt, cpu = time.perf_counter() - t0, cpu_seconds() - c0
            print(f"  runner, workers={w} (+cache)   {rate(len(paths), dt)}  cpu {cpu:5.2f} s")
        t0 = time.perf_counter()
        extract_features(
            table, FeatureConfig(audio=cfg, workers=workers), Path(tmp) / f"w{workers}", progress=False
        )
        dt = time.perf_counter() - t0
        print(f"  runner, all cached            {rate(len(paths), dt)}")


def bench_tfidf(n_docs: int) -> None:
    rng = np.random.default_rng(0)
    # Zipf-like word frequencies over a few thousand types, like real transcripts.
    vocab = np.array(WORDS + [f"term{i}" for i in range(5000)])
    p = 1.0 / np.arange(1, len(vocab) + 1)
    p /= p.sum()
    docs = [" ".join(rng.choice(vocab, size=rng.integers(4, 20), p=p)) for _ in range(n_docs)]
    print(f"TF-IDF: {n_docs} docs, Zipf over {len(vocab)} word types, max_features 2000")
    for idf in ("paper", "smooth"):
        tf = TextTfidf(TextConfig(idf=idf))
        t0 = time.perf_counter()
        tf.fit(docs)
        fit_dt = time.perf_counter() - t0
        t0 = time.perf_counter()
        x = tf.transform(docs)
        tr_dt = time.perf_counter() - t0
        print(f"  idf={idf:6s} fit {rate(n_docs, fit_dt)}   transform {rate(n_docs, tr_dt)}  -> {x.shape}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", type=int, default=100)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--docs", type=int, default=5000)
    ap.add_argument("--real", action="store_true", help="use RAVDESS clips from ../shared/data")
    ap.add_argument(
        "--whisper-variants", action="store_true", help="also time Whisper float32 and 30 s padding"
    )
    args = ap.parse_args()
    # Wall-clock figures are only meaningful on an idle machine: show how busy it is.
    print(f"cores {os.cpu_count()}, load average {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory() as tmp:
        paths = real_clips(args.clips) if args.real else synthetic_clips(Path(tmp), args.clips, args.seconds)
        bench_extractor("mfcc", paths, args.workers)
        bench_extractor("whisper", paths, args.workers)
        if args.whisper_variants:
            bench_extractor("whisper", paths, args.workers, whisper_compute_type="float32")
            bench_extractor("whisper", paths, args.workers, whisper_pad_30s=True)
            # the cross-corpus front end: all five encoder states from the float32 PyTorch port
            bench_extractor(
                "whisper", paths, args.workers, whisper_layers=[0, 1, 2, 3, -1], whisper_frame_pool=5
            )
        if importlib.util.find_spec("opensmile") is not None:
            bench_extractor("egemaps", paths, args.workers)
        else:
            print("egemaps: skipped (opensmile not installed: pip install 'mmfer[egemaps]')")
    bench_tfidf(args.docs)


if __name__ == "__main__":
    main()
