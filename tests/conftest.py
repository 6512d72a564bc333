"""Session fixtures shared by the inference test modules."""

from __future__ import annotations

import pytest

from infer_assets import Assets, face_audio_checkpoint, shared_assets
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
    """Face+audio model on random face vectors, Haar detector (the real face branch runs on new files)."""
    out = tmp_path_factory.mktemp("av") / "av.safetensors"
    return load(face_audio_checkpoint(assets, out, detector="haar"))
