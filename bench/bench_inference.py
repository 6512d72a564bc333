"""Inference latency: end to end per 3 s video clip, and the recognition model alone.

Usage::

    python bench/bench_inference.py [--runs 10] [--checkpoint model.safetensors] [--keep DIR]

Without ``--checkpoint`` a model is trained quickly on a small generated
SYNTHETIC corpus (2 speakers x 6 emotions x 1 clip of 3 s, face + audio + text,
RMLSTM, 3 epochs); its accuracy is meaningless, latency does not depend on it.

Measured (median and p90 over ``--runs`` runs, after one warm-up run):

* end to end: ``Predictor.predict(clip.mp4, transcript=...)`` with an empty
  feature cache each time = video decode + face detection/crop + EfficientNet
  on the sampled frames + audio decode + MFCC + text cleaning + fusion + model;
* the same stages timed one by one;
* model only: fused tensor ``(1, T, F)`` -> logits in PyTorch, and through the
  exported ONNX graph in ONNX Runtime.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch


def _stats(times: list[float]) -> str:
    ms = np.asarray(times) * 1000.0
    return f"median {np.median(ms):8.1f} ms   p90 {np.percentile(ms, 90):8.1f} ms   (n={len(ms)})"


def _time(fn: Callable[[], Any], runs: int, warmup: int = 1) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def train_synthetic(work: Path) -> tuple[Path, Any]:
    """Generate a small synthetic corpus and fit an RMLSTM on face + audio + text; return (ckpt, table)."""
    from mmfer.config import AudioConfig, FeatureConfig, FusionConfig, ModelConfig, TrainConfig
    from mmfer.demo import load_synthetic
    from mmfer.emotions import label_order
    from mmfer.pipeline import extract, fit_recognizer

    t0 = time.perf_counter()
    table = load_synthetic(work / "corpus", speakers=2, clips_per_emotion=1, seconds=3.0)
    fcfg = FeatureConfig(audio=AudioConfig(extractor="mfcc"))  # this bench times the MFCC path
    feats = extract(table, fcfg, work / "cache", ["face", "audio", "text"], progress=False)
    labels = label_order(set(table["emotion"]))
    out = fit_recognizer(
        table,
        feats,
        np.arange(len(table)),
        labels=labels,
        model_cfg=ModelConfig(name="rmlstm"),
        fusion_cfg=FusionConfig(),
        text_cfg=fcfg.text,
        train_cfg=TrainConfig(epochs=3, progress=False, patience=0),
        features_cfg=fcfg,
    )
    out.recognizer.extra = {"corpus": "synthetic", "synthetic": True, "bench": True}
    ckpt = out.recognizer.save(work / "model.safetensors")
    print(
        f"trained on {len(table)} SYNTHETIC clips (face+audio+text, rmlstm, 3 epochs) "
        f"in {time.perf_counter() - t0:.1f} s"
    )
    return ckpt, table


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--checkpoint", type=Path, default=None, help="use this model instead of training one")
    ap.add_argument("--clip", type=Path, default=None, help="3 s video (default: a synthetic clip)")
    ap.add_argument("--keep", type=Path, default=None, help="work folder to keep (default: temporary)")
    args = ap.parse_args(argv)

    from mmfer.features.audio import MFCCExtractor, load_audio
    from mmfer.features.extract import SampleFeatures
    from mmfer.features.face import FaceFeatureExtractor
    from mmfer.features.text import clean_text
    from mmfer.features.video import read_video_frames
    from mmfer.inference.predictor import load

    tmp = None if args.keep else tempfile.TemporaryDirectory(prefix="mmfer-bench-")
    work = args.keep or Path(tmp.name)  # type: ignore[union-attr]
    work.mkdir(parents=True, exist_ok=True)
    load1, load5, _ = os.getloadavg()
    print(f"load average {load1:.2f} (1 min), {load5:.2f} (5 min) before the run")
    print(
        f"python {platform.python_version()}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{platform.processor() or platform.machine()}"
    )
    table = None
    if args.checkpoint is None:
        ckpt, table = train_synthetic(work)
    else:
        ckpt = args.checkpoint
        print(f"checkpoint: {ckpt}")
    pred = load(ckpt)
    info = pred.info()
    print(
        f"model {info['model']}, modalities {'+'.join(info['modalities'])}, {len(info['labels'])} classes, "
        f"fused input (T={info['steps']}, F={info['in_features']})"
    )
    if args.clip is not None:
        clip, words = args.clip, "I can't believe it, this is wonderful."
    elif table is not None:
        row = table.iloc[0]
        clip, words = Path(row["video"]), str(row["transcript"])
    else:
        ap.error("--clip is required with --checkpoint")
    import av

    with av.open(str(clip)) as c:
        dur = float(c.duration / av.time_base) if c.duration else float("nan")
    print(f"clip: {clip.name} ({dur:.2f} s)")

    cfg = pred.features_cfg
    tc = cfg.text
    face = FaceFeatureExtractor(cfg.face) if "face" in pred.modalities else None
    mfcc = MFCCExtractor(cfg.audio)
    frames, _ = read_video_frames(clip, fps=cfg.face.fps, max_frames=cfg.face.max_frames)
    wave = load_audio(clip, sample_rate=cfg.audio.sample_rate)
    sf = SampleFeatures(
        face=None if face is None else face.run_frames(frames).features,
        audio=mfcc.transform_wave(wave, cfg.audio.sample_rate),
        text=clean_text(words, lowercase=tc.lowercase, remove_stop_words=tc.remove_stop_words),
    )
    fused = pred.recognizer.fuser.transform([sf])
    x, mask = torch.from_numpy(fused.x), torch.from_numpy(fused.mask)  # (1, T, F), (1, T)
    model = pred.recognizer.model.eval()

    def end_to_end() -> None:
        # the default Predictor uses a fresh temporary feature cache per call: nothing is reused
        (p,) = pred.predict(clip, transcript=words)
        assert p.error is None, p.error

    def torch_only() -> None:
        with torch.inference_mode():
            model(x, mask)

    stages: dict[str, Callable[[], Any]] = {
        f"video decode ({len(frames)} frames)": lambda: read_video_frames(
            clip, fps=cfg.face.fps, max_frames=cfg.face.max_frames
        ),
        "audio decode (PyAV)": lambda: load_audio(clip, sample_rate=cfg.audio.sample_rate),
        "MFCC": lambda: mfcc.transform_wave(wave, cfg.audio.sample_rate),
        "text cleaning": lambda: clean_text(
            words, lowercase=tc.lowercase, remove_stop_words=tc.remove_stop_words
        ),
    }
    if face is not None:
        stages[f"face detect+crop+CNN ({len(frames)})"] = lambda: face.run_frames(frames)
    stages["fusion + model (predict_proba)"] = lambda: pred.recognizer.predict_proba([sf])

    (p,) = pred.predict(clip, transcript=words)
    print(f"modalities used: {'+'.join(p.modalities_used)}")
    default_threads = torch.get_num_threads()
    e2e_means = {}
    for threads in dict.fromkeys((default_threads, 1)):
        torch.set_num_threads(threads)
        print(f"\n== torch threads: {threads}")
        e2e = _time(end_to_end, args.runs)
        e2e_means[threads] = statistics.mean(e2e)
        print(f"  end to end predict()            {_stats(e2e)}")
        for name, fn in stages.items():
            print(f"    {name:<32}{_stats(_time(fn, args.runs))}")
        torch_t = _time(torch_only, max(args.runs, 50), warmup=3)
        print(f"  model only, PyTorch (batch 1)   {_stats(torch_t)}")
    torch.set_num_threads(default_threads)
    try:
        import onnxruntime as ort

        from mmfer.inference.export import export_onnx

        res = export_onnx(pred.recognizer, work / "model.onnx")
        feeds = {"x": fused.x, "mask": fused.mask}
        print(f"\n== ONNX Runtime, model only (batch 1; |onnx - torch| {res.max_abs_diff:.1e})")
        for intra in (0, 1):
            so = ort.SessionOptions()
            so.intra_op_num_threads = intra
            sess = ort.InferenceSession(str(res.path), so, providers=["CPUExecutionProvider"])
            onnx_t = _time(lambda s=sess: s.run(["logits"], feeds), max(args.runs, 50), warmup=3)
            print(f"  intra-op threads {intra or 'default':<15}{_stats(onnx_t)}")
    except ImportError:
        print("\nONNX Runtime not installed: skipped")
    print()
    for threads, mean in e2e_means.items():
        print(
            f"mean end to end with {threads} torch thread(s): {mean * 1000:.1f} ms per {dur:.1f} s clip "
            f"= {mean / dur:.2f} x real time"
        )
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
