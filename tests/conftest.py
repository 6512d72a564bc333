"""Session fixtures shared by the inference test modules."""

from __future__ import annotations

import numpy as np
import pytest

from infer_assets import CLASSES, SR, Assets, shared_assets, tone
from mmfer.config import FaceConfig, FeatureConfig, FusionConfig, TextConfig
from mmfer.features.units import SampleFeatures
from mmfer.inference.loader import load
from mmfer.inference.predictor import Predictor


@pytest.fixture(scope="session")
def assets(tmp_path_factory: pytest.TempPathFactory) -> Assets:
    return shared_assets(tmp_path_factory)


@pytest.fixture(scope="session")
def predictor(assets: Assets) -> Predictor:
    return load(assets.checkpoint)


@pytest.fixture(scope="session")
def av_predictor(assets: Assets, tmp_path_factory: pytest.TempPathFactory) -> Predictor:
    """Face+audio model on random face vectors (the real face branch runs on new files)."""
    import pandas as pd

    from mmfer.config import ModelConfig, TrainConfig
    from mmfer.features.face.extractor import FaceFeatureExtractor
    from mmfer.features.voice.mfcc import MFCCExtractor
    from mmfer.pipeline import fit_recognizer

    fcfg = FeatureConfig(
        face=FaceConfig(image_size=64, fps=2.0, max_frames=3, detector="haar"),
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
    out = fit_recognizer(
        pd.DataFrame(records), feats, np.arange(len(records)), labels=list(CLASSES),
        model_cfg=ModelConfig(name="lstm", hidden_size=8, num_layers=1, input_proj=16, dropout=0.0),
        fusion_cfg=FusionConfig(modalities=["face", "audio"], steps=4), text_cfg=TextConfig(),
        train_cfg=TrainConfig(epochs=1, progress=False, patience=0), features_cfg=fcfg,
    )  # fmt: skip
    return load(out.recognizer.save(tmp_path_factory.mktemp("av") / "av.safetensors"))
