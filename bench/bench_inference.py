"""Inference speed, old path vs new path in one run, on real 640x360 videos.

Usage::

    python bench/bench_inference.py [--clips DIR] [--n 6] [--runs 3] [--checkpoint CKPT]
                                    [--no-stream] [--no-extractors] [--no-mogrifier] [--compile]

Default model: the one shipped with mmfer (``mmfer predict`` without ``--model``: a voice
head on Whisper tiny.en + a face head on FER2013 mini-Xception). Default clips: the
full audio-video RAVDESS actor-05 files in ``../shared/data/ravdess-av-actor05/``
(``01-*.mp4``, ~3.5 s, 640x360); without them, generated SYNTHETIC clips.

Printed, each as median over clips x runs, wall and CPU (``time.process_time``: less
sensitive to other jobs on the machine than wall time), *old* and *new* side by side,
measured alternately in the same run so both see the same load:

* per stage: video decode, audio decode, face detection, face encoder, voice encoder,
  fusion + model; and ``Predictor.predict(clip)`` end to end after load.
  *old* = every sampled face frame through detection + CNN (the path before the fast
  path; ``--debug-dir`` still takes it); *new* = only the frames the model reads
  (``Fuser.face_frames_used``; same probabilities, checked here and in tests/test_fast_path.py);
* ``mmfer stream`` real-time factor (processing time / video duration) per model part;
* throughput of every extractor (face frames/s, clips/s), model load time, peak RSS;
* the mogrifier time loop: eager vs ``torch.jit.script`` (vs ``torch.compile`` with ``--compile``).
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ACTOR05 = Path(__file__).resolve().parents[2] / "shared" / "data" / "ravdess-av-actor05"


class Timer:
    """Wall and CPU seconds of named stages, for two paths."""

    def __init__(self) -> None:
        self.wall: dict[tuple[str, str], list[float]] = {}
        self.cpu: dict[tuple[str, str], list[float]] = {}

    def __call__(self, stage: str, path: str, fn: Callable[[], Any]) -> Any:
        w0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        self.wall.setdefault((stage, path), []).append(time.perf_counter() - w0)
        self.cpu.setdefault((stage, path), []).append(time.process_time() - c0)
        return out

    def med(self, stage: str, path: str, cpu: bool = False) -> float:
        d = self.cpu if cpu else self.wall
        v = d.get((stage, path))
        return float("nan") if not v else 1000.0 * statistics.median(v)


def _clips(args: argparse.Namespace, work: Path) -> list[Path]:
    folder = args.clips
    if folder.is_dir():
        clips = sorted(folder.glob("01-*.mp4"))[: args.n]
        if clips:
            return clips
    print(f"no real clips in {folder}: generating SYNTHETIC ones (numbers then say little)")
    from mmfer.demo import load_synthetic

    table = load_synthetic(work / "corpus", speakers=1, clips_per_emotion=1, seconds=3.0)
    return [Path(v) for v in table["video"].head(args.n)]


def _duration(clip: Path) -> float:
    import av

    with av.open(str(clip)) as c:
        return float(c.duration / av.time_base) if c.duration else float("nan")


def _parts(model: Any) -> list[tuple[str, Any]]:
    """``(name, Predictor)`` of each part of a composed model, or the model itself."""
    if hasattr(model, "parts"):
        return [(p.name, p.predictor) for p in model.parts]
    return [("model", model)]


class _OldPath:
    """Within the block, every sampled face frame goes through detection + CNN (the old path)."""

    def __init__(self, preds: list[Any]) -> None:
        self.fusers = [p.recognizer.fuser for p in preds]

    def __enter__(self) -> None:
        for f in self.fusers:
            f.face_frames_used = lambda n: None  # instance attribute shadows the method

    def __exit__(self, *exc: object) -> None:
        for f in self.fusers:
            del f.face_frames_used


def _wing(features_cfg: Any, modality: str) -> Any:
    """The model-backed extractor behind a modality's unit extractor (face CNN, voice backend),
    the one :func:`mmfer.features.extract.extract_sample` uses."""
    from mmfer.features.extractors import extractors_for

    return extractors_for(features_cfg, limit_threads=False).wing(modality).extractor


def bench_stages(model: Any, clips: list[Path], runs: int) -> Timer:
    """Per-stage and end-to-end latency, old and new path alternately."""
    from mmfer.features.units import SampleFeatures
    from mmfer.features.video import read_video_frames
    from mmfer.features.voice.loading import load_audio

    parts = _parts(model)
    preds = [p for _, p in parts]
    face_p = next((p for p in preds if "face" in p.modalities), None)
    voice_p = next((p for p in preds if "audio" in p.modalities), None)
    fext = None if face_p is None else _wing(face_p.features_cfg, "face")
    aext = None if voice_p is None else _wing(voice_p.features_cfg, "audio")
    t = Timer()
    model.predict(clips[0])  # warm-up: loads the CNN, the Whisper model, first-call costs
    with _OldPath(preds):
        model.predict(clips[0])
    for _ in range(runs):
        for clip in clips:
            for path in ("old", "new"):
                if path == "old":
                    with _OldPath(preds):
                        ref = t("end to end predict()", path, lambda c=clip: model.predict(c))[0]
                else:
                    new = t("end to end predict()", path, lambda c=clip: model.predict(c))[0]
                    # the accelerated path must give the reference's probabilities
                    diff = max(abs(ref.probabilities[k] - new.probabilities[k]) for k in ref.probabilities)
                    assert diff <= 1e-6, f"{clip}: fast path differs by {diff}"
                feats = {}
                if face_p is not None and fext is not None:
                    cfg = face_p.features_cfg
                    ext = fext
                    frames, _ = t(
                        "video decode (sampled frames)",
                        path,
                        lambda c=clip, cfg=cfg: read_video_frames(
                            c, fps=cfg.face.fps, max_frames=cfg.face.max_frames
                        ),
                    )
                    frames = list(frames)
                    used = None if path == "old" else face_p.recognizer.fuser.face_frames_used(len(frames))
                    if used is None:
                        _, crop, _ = t("face detection", path, lambda f=frames, ext=ext: ext._boxes(f))
                        sel = frames
                    else:
                        _, crop, _ = t(
                            "face detection", path, lambda f=frames, u=used, ext=ext: ext._boxes_of(f, u)
                        )
                        sel = [frames[i] for i in used]
                    emb = t(
                        "face encoder",
                        path,
                        lambda s=sel, b=crop, ext=ext: ext.embed(ext._backbone_input(s, b)),
                    )
                    feats[id(face_p)] = SampleFeatures(face=emb)
                if voice_p is not None:
                    acfg = voice_p.features_cfg.audio
                    wave = t(
                        "audio decode",
                        path,
                        lambda c=clip, a=acfg: load_audio(
                            c,
                            sample_rate=a.sample_rate,
                            max_seconds=a.max_seconds,
                            silence_dbfs=a.silence_dbfs,
                        ),
                    )
                    a = t(
                        "voice encoder",
                        path,
                        lambda w=wave, a=acfg, e=aext: e.transform_wave(w, a.sample_rate),
                    )
                    feats[id(voice_p)] = SampleFeatures(audio=a)

                def heads(feats: dict[int, Any] = feats) -> None:
                    for p in preds:
                        if id(p) in feats:
                            p.recognizer.predict_proba([feats[id(p)]])

                t("fusion + model", path, heads)
    return t


def print_stages(t: Timer, n_frames: str) -> None:
    stages = [
        "video decode (sampled frames)",
        "audio decode",
        "face detection",
        "face encoder",
        "voice encoder",
        "fusion + model",
        "end to end predict()",
    ]
    print(f"\n== per clip, median ms ({n_frames})")
    head = f"{'old wall':>10}{'new wall':>10}{'ratio':>7}   {'old cpu':>9}{'new cpu':>9}{'ratio':>7}"
    print(f"{'stage':<32}{head}")
    for s in stages:
        ow, nw, oc, nc = t.med(s, "old"), t.med(s, "new"), t.med(s, "old", True), t.med(s, "new", True)
        if np.isnan(ow):
            continue
        print(f"{s:<32}{ow:10.1f}{nw:10.1f}{ow / nw:7.1f}x  {oc:9.1f}{nc:9.1f}{oc / max(nc, 1e-9):7.1f}x")
    parts = stages[:-1]
    for path in ("old", "new"):
        w = sum(t.med(s, path) for s in parts if not np.isnan(t.med(s, path)))
        print(f"  sum of stages, {path}: {w:.1f} ms wall")


def bench_stream(model: Any, clip: Path) -> None:
    """Real-time factor of ``mmfer stream`` (2 s windows, 0.5 s hop) for each part, old and new."""
    from mmfer.inference.stream import stream_predictions

    dur = _duration(clip)
    print(f"\n== mmfer stream on {clip.name} ({dur:.2f} s, 2.0 s windows, 0.5 s hop)")
    for name, pred in _parts(model):
        for path in ("old", "new"):
            ctx = _OldPath([pred]) if path == "old" else None
            if ctx is not None:
                ctx.__enter__()
            try:
                w0, c0 = time.perf_counter(), time.process_time()
                lat = [r.latency_s for r in stream_predictions(pred, clip, window_s=2.0, hop_s=0.5)]
                wall, cpu = time.perf_counter() - w0, time.process_time() - c0
            finally:
                if ctx is not None:
                    ctx.__exit__()
            print(
                f"  {name:<6} ({'+'.join(pred.modalities)}) {path}: {len(lat)} windows, "
                f"median window latency {1000 * statistics.median(lat):6.1f} ms; "
                f"real-time factor {wall / dur:.2f} wall, {cpu / dur:.2f} CPU (incl. decode + warm-up)"
            )


def bench_extractors(clips: list[Path]) -> None:
    """Throughput of every extractor over the clips (one pass after one warm-up clip)."""
    from mmfer.config import AudioConfig, FaceConfig, TextConfig
    from mmfer.features.face.extractor import FaceFeatureExtractor
    from mmfer.features.voice.mfcc import MFCCExtractor
    from mmfer.features.voice.whisper import WhisperEncoderExtractor

    dur = sum(_duration(c) for c in clips)
    print(f"\n== extractor throughput over {len(clips)} clips ({dur:.1f} s of video), every sampled frame")
    faces = {
        "face fer2013 + Haar (default)": FaceConfig(backbone="fer2013"),
        "face efficientnet_lite0 224 + Haar (paper)": FaceConfig(backbone="efficientnet_lite0"),
    }
    for name, fc in faces.items():
        ext = FaceFeatureExtractor(fc)
        ext.run_video(clips[0])
        w0, c0 = time.perf_counter(), time.process_time()
        n = sum(ext.run_video(c).frames for c in clips)
        wall, cpu = time.perf_counter() - w0, time.process_time() - c0
        print(
            f"  {name:<44}{n / wall:7.1f} face frames/s {len(clips) / wall:6.2f} clips/s "
            f"(CPU {1000 * cpu / n:.1f} ms/frame)"
        )
    audios = {
        "voice whisper tiny.en int8 (default)": WhisperEncoderExtractor(AudioConfig(extractor="whisper")),
        "voice MFCC + deltas (paper)": MFCCExtractor(AudioConfig(extractor="mfcc")),
    }
    for name, ext in audios.items():
        ext.extract(clips[0])
        w0, c0 = time.perf_counter(), time.process_time()
        for c in clips:
            ext.extract(c)
        wall, cpu = time.perf_counter() - w0, time.process_time() - c0
        print(
            f"  {name:<44}{len(clips) / wall:7.2f} clips/s {dur / wall:6.1f} s audio/s "
            f"(CPU {1000 * cpu / len(clips):.1f} ms/clip, decode included)"
        )
    try:
        from mmfer.features.words.sentence import SentenceEncoder

        tc = TextConfig()
        enc = SentenceEncoder(tc.embedding_model, max_tokens=tc.embedding_max_tokens)
        sents = [f"Kids are talking by the door, said speaker number {i}." for i in range(64)]
        enc.encode(sents[:4])
        w0 = time.perf_counter()
        enc.encode(sents)
        wall = time.perf_counter() - w0
        print(f"  {'words MiniLM-L6 sentence embedding':<44}{len(sents) / wall:7.1f} sentences/s (batch 64)")
    except Exception as e:  # optional wheel
        print(f"  words MiniLM-L6: skipped ({type(e).__name__}: {e})")


def bench_mogrifier(compile_too: bool) -> None:
    """Mogrifier time loop on a (32, 8, 64) batch: forward + backward (a training step)."""
    import torch

    from mmfer.models.mogrifier import MogrifierLSTM

    torch.manual_seed(0)
    m = MogrifierLSTM(64, 48, 2, rounds=3)
    x, mask = torch.randn(32, 8, 64), torch.ones(32, 8, dtype=torch.bool)  # (B, T, F), (B, T)

    def step(mod: Any) -> None:
        out, _ = mod(x, mask)  # (B, T, H)
        out.sum().backward()

    def run(mod: Any, n: int = 30) -> tuple[float, float]:
        for _ in range(3):
            step(mod)
        w, c = [], []
        for _ in range(n):
            w0, c0 = time.perf_counter(), time.process_time()
            step(mod)
            w.append(time.perf_counter() - w0)
            c.append(time.process_time() - c0)
        return 1000 * statistics.median(w), 1000 * statistics.median(c)

    print("\n== mogrifier LSTM (2 layers, 3 rounds, hidden 48) on (32, 8, 64), forward + backward")
    ew, ec = run(m)
    print(f"  eager           {ew:7.2f} ms wall {ec:7.2f} ms CPU")
    try:
        sw, sc = run(torch.jit.script(m))
        print(f"  torch.jit.script{sw:7.2f} ms wall {sc:7.2f} ms CPU ({ec / sc:.2f}x CPU)")
    except Exception as e:
        first = (str(e).strip().splitlines() or [""])[0][:120]
        print(f"  torch.jit.script: not scriptable as written ({type(e).__name__}: {first})")
    if compile_too:
        w0 = time.perf_counter()
        cm = torch.compile(m)
        step(cm)
        first_s = time.perf_counter() - w0
        cw, cc = run(cm)
        print(f"  torch.compile   {cw:7.2f} ms wall {cc:7.2f} ms CPU ({ec / cc:.2f}x CPU)")
        print(f"  torch.compile first call (compilation): {first_s:.1f} s")
    else:
        print("  torch.compile: skipped (--compile; its first call compiles for minutes on this machine)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=Path, default=ACTOR05, help="folder of 01-*.mp4 clips")
    ap.add_argument("--n", type=int, default=6, help="clips used")
    ap.add_argument("--runs", type=int, default=3, help="passes over the clips")
    ap.add_argument("--checkpoint", type=Path, default=None, help="model (default: the shipped one)")
    ap.add_argument("--no-stream", action="store_true")
    ap.add_argument("--no-extractors", action="store_true")
    ap.add_argument("--no-mogrifier", action="store_true")
    ap.add_argument("--compile", action="store_true", help="also time torch.compile of the mogrifier")
    args = ap.parse_args(argv)

    from mmfer.runtime import configure

    plan = configure()
    load1, load5, _ = os.getloadavg()
    print(
        f"load average {load1:.2f} (1 min), {load5:.2f} (5 min) at start; {plan.cores} core(s), "
        f"threads {plan.threads} (mmfer.runtime); python {platform.python_version()}, {platform.machine()}"
    )
    w0 = time.perf_counter()
    from mmfer.inference.loader import load

    model = load(args.checkpoint)
    print(f"model load (imports included): {time.perf_counter() - w0:.2f} s wall")
    with tempfile.TemporaryDirectory(prefix="mmfer-bench-") as tmp:
        clips = _clips(args, Path(tmp))
        durs = [_duration(c) for c in clips]
        print(f"clips: {len(clips)} x ~{statistics.median(durs):.2f} s from {clips[0].parent}")
        face_p = next((p for _, p in _parts(model) if "face" in p.modalities), None)
        n_frames = "all modalities of the model"
        if face_p is not None:
            from mmfer.features.video import read_video_frames

            fc = face_p.features_cfg.face
            n = len(read_video_frames(clips[0], fps=fc.fps, max_frames=fc.max_frames)[0])
            used = face_p.recognizer.fuser.face_frames_used(n)
            n_frames = (
                f"face: old {n} sampled frames, new {n if used is None else len(used)} read by the model"
            )
        t = bench_stages(model, clips, args.runs)
        print_stages(t, n_frames)
        e2e = t.med("end to end predict()", "new")
        print(
            f"\nend to end after load, new path: {e2e:.0f} ms per {statistics.median(durs):.1f} s clip "
            f"(goal <= 200 ms); old path {t.med('end to end predict()', 'old'):.0f} ms"
        )
        if not args.no_stream:
            bench_stream(model, clips[0])
        if not args.no_extractors:
            bench_extractors(clips)
    if not args.no_mogrifier:
        bench_mogrifier(args.compile)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    load1b, _, _ = os.getloadavg()
    print(f"\npeak resident memory {peak:.0f} MB; load average {load1b:.2f} (1 min) at the end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
