"""Shared assets of the inference tests: a tiny audio+text checkpoint trained once per session.

MFCC and TF-IDF are cheap, so the model is trained on generated tones and
cue-word transcripts; every inference test module (api, serve, export,
browser) reuses the same checkpoint through the ``assets``/``predictor``
fixtures in ``conftest.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from mmfer.config import AudioConfig, FeatureConfig, FusionConfig, ModelConfig, TextConfig, TrainConfig
from mmfer.data.table import COLUMNS

SR = 16000
#: Per class: tone frequency (Hz) and words that cue it.
CLASSES: dict[str, tuple[float, str]] = {
    "happy": (660.0, "wonderful sunny party laughing"),
    "sad": (220.0, "lonely grey tears crying"),
    "angry": (440.0, "furious shouting rage slammed"),
}


def tone(freq: float, seconds: float, seed: int, *, amp: float = 0.3) -> np.ndarray:
    """``(n,)`` float32 tone with a little noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(SR * seconds)) / SR
    wave = amp * np.sin(2 * np.pi * freq * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))
    return (wave + 0.01 * rng.normal(size=t.size)).astype(np.float32)


def write_video(
    path: Path, *, freq: float | None, seconds: float = 1.5, fps: int = 10, size: tuple[int, int] = (64, 48)
) -> Path:
    """Write an MPEG-4 video of moving gradients with (``freq`` not None) an AAC tone track."""
    import av

    w, h = size
    n = int(seconds * fps)
    with av.open(str(path), "w", format="mp4") as out:
        # every stream must exist before the first packet is muxed (the header is written then)
        vs = out.add_stream("mpeg4", rate=fps)
        vs.width, vs.height, vs.pix_fmt = w, h, "yuv420p"
        aus = out.add_stream("aac", rate=SR, layout="mono") if freq is not None else None
        yy, xx = np.mgrid[0:h, 0:w]
        for i in range(n):
            rgb = np.stack([(xx * 4 + i * 9) % 256, (yy * 5) % 256, np.full_like(xx, 128)], -1)  # (H, W, 3)
            frame = av.VideoFrame.from_ndarray(rgb.astype(np.uint8), format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, fps)
            out.mux(vs.encode(frame))
        out.mux(vs.encode())
        if aus is not None and freq is not None:
            wave = tone(freq, seconds, seed=1)
            for s in range(0, len(wave), 1024):
                block = np.ascontiguousarray(wave[None, s : s + 1024])  # (1, chunk)
                af = av.AudioFrame.from_ndarray(block, format="fltp", layout="mono")
                af.sample_rate, af.pts, af.time_base = SR, s, Fraction(1, SR)
                out.mux(aus.encode(af))
            out.mux(aus.encode())
    return path


@dataclass(frozen=True)
class Assets:
    """Files shared by the inference tests."""

    root: Path
    checkpoint: Path
    labels: list[str]
    wavs: dict[str, Path]  # one held-out clip per class, no sidecar
    features_cfg: FeatureConfig


def build_assets(root: Path) -> Assets:
    """Generate clips, extract audio+text features, fit a tiny RMLSTM, save it."""
    from mmfer.pipeline import extract, fit_recognizer

    data = root / "train"
    data.mkdir(parents=True)
    records = []
    for ci, (emo, (freq, words)) in enumerate(CLASSES.items()):
        for k in range(4):
            p = data / f"{emo}_{k}.wav"
            sf.write(p, tone(freq * (1 + 0.02 * k), 0.6, seed=10 * ci + k), SR)
            records.append(
                {
                    "id": f"{emo}{k}",
                    "corpus": "test",
                    "speaker": f"s{k % 2}",
                    "emotion": emo,
                    "audio": str(p),
                    "transcript": f"today {words}",
                }
            )
    table = pd.DataFrame(records).reindex(columns=list(COLUMNS)).astype(object)
    table = table.where(table.notna(), None)
    fcfg = FeatureConfig(audio=AudioConfig(extractor="mfcc", n_mfcc=13, n_mels=26))
    feats = extract(table, fcfg, root / "cache", ["audio", "text"], progress=False)
    labels = list(CLASSES)
    out = fit_recognizer(
        table,
        feats,
        np.arange(len(table)),
        labels=labels,
        model_cfg=ModelConfig(name="rmlstm", hidden_size=16, num_layers=1, mogrify_rounds=2, dropout=0.0),
        fusion_cfg=FusionConfig(modalities=["audio", "text"], steps=4),
        text_cfg=TextConfig(),
        train_cfg=TrainConfig(epochs=2, progress=False, patience=0, batch_size=4),
        features_cfg=fcfg,
    )
    ckpt = out.recognizer.save(root / "model.safetensors")
    held = root / "clips"
    held.mkdir()
    wavs = {}
    for ci, (emo, (freq, _)) in enumerate(CLASSES.items()):
        wavs[emo] = held / f"new_{emo}.wav"
        sf.write(wavs[emo], tone(freq * 1.01, 0.7, seed=100 + ci), SR)
    return Assets(root=root, checkpoint=ckpt, labels=labels, wavs=wavs, features_cfg=fcfg)


_SHARED: dict[str, Assets] = {}


def shared_assets(factory: pytest.TempPathFactory) -> Assets:
    """The session's :class:`Assets`, built on first use (shared by every inference test module)."""
    if "assets" not in _SHARED:
        _SHARED["assets"] = build_assets(factory.mktemp("mmfer_infer"))
    return _SHARED["assets"]


def face_audio_checkpoint(assets: Assets, out: Path, *, detector: str) -> Path:
    """A face+audio LSTM checkpoint fitted on random face vectors and the session's tones.

    Running the face CNN over a training set is slow, so the face rows are random vectors
    (class ``c`` centred on ``c``); predicting from files still runs the real face branch
    (frames -> ``detector`` -> CNN). Saved to ``out``, which is returned.
    """
    from mmfer.config import FaceConfig
    from mmfer.features.face.extractor import FaceFeatureExtractor
    from mmfer.features.units import SampleFeatures
    from mmfer.features.voice.mfcc import MFCCExtractor
    from mmfer.pipeline import fit_recognizer

    fcfg = FeatureConfig(
        face=FaceConfig(image_size=64, fps=2.0, max_frames=3, detector=detector),
        audio=assets.features_cfg.audio,
    )
    dim = FaceFeatureExtractor(fcfg.face).dim
    mfcc = MFCCExtractor(fcfg.audio)
    rng = np.random.default_rng(0)
    records, feats = [], {}
    for ci, (emo, (freq, _)) in enumerate(CLASSES.items()):
        for k in range(3):
            sid = f"{emo}{k}"
            records.append({"id": sid, "speaker": f"s{k}", "emotion": emo})
            face = rng.normal(loc=ci, size=(3, dim)).astype(np.float32)  # (T_v, D_v)
            feats[sid] = SampleFeatures(face=face, audio=mfcc.transform_wave(tone(freq, 0.5, seed=k), SR))
    table = pd.DataFrame(records)
    fitted = fit_recognizer(
        table, feats, np.arange(len(table)), labels=list(CLASSES),
        model_cfg=ModelConfig(name="lstm", hidden_size=8, num_layers=1, input_proj=16, dropout=0.0),
        fusion_cfg=FusionConfig(modalities=["face", "audio"], steps=4), text_cfg=TextConfig(),
        train_cfg=TrainConfig(epochs=1, progress=False, patience=0), features_cfg=fcfg,
    )  # fmt: skip
    return fitted.recognizer.save(out)
