"""Session fixtures shared by the inference test modules."""

from __future__ import annotations

import pytest

from infer_assets import Assets, shared_assets
from mmfer.inference.loader import load
from mmfer.inference.predictor import Predictor


@pytest.fixture(scope="session")
def assets(tmp_path_factory: pytest.TempPathFactory) -> Assets:
    return shared_assets(tmp_path_factory)


@pytest.fixture(scope="session")
def predictor(assets: Assets) -> Predictor:
    return load(assets.checkpoint)
