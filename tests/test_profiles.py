"""Feature profiles: ``default`` (strong front ends) vs ``paper``; explicit settings always win."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mmfer.config import (
    AudioConfig,
    ExperimentConfig,
    FeatureConfig,
    dump_config,
    from_dict,
    load_config,
    to_dict,
)
from mmfer.errors import ConfigError

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def test_default_profile_picks_whisper_audio() -> None:
    cfg = FeatureConfig()
    assert cfg.profile == "default" and cfg.audio.extractor == "whisper"
    assert load_config(None).features.audio.extractor == "whisper"


def test_paper_profile_is_the_papers_stack() -> None:
    f = load_config(None, ["features.profile=paper"]).features
    assert (f.audio.extractor, f.face.backbone, f.text.idf) == ("mfcc", "efficientnet_lite0", "paper")
    # EfficientNet-B0 when weights for it are given
    f = load_config(None, ["features.profile=paper", "features.face.weights=/w/b0.pth"]).features
    assert f.face.backbone == "efficientnet_b0"
    # built directly, fields left at "auto" follow the profile too
    assert FeatureConfig(profile="paper").audio.extractor == "mfcc"


def test_explicit_settings_override_the_profile() -> None:
    f = load_config(
        None, ["features.profile=paper", "features.audio.extractor=whisper", "features.text.idf=smooth"]
    ).features
    assert (f.audio.extractor, f.face.backbone, f.text.idf) == ("whisper", "efficientnet_lite0", "smooth")
    f = load_config(None, ["features.audio.extractor=mfcc"]).features
    assert f.audio.extractor == "mfcc"
    assert FeatureConfig(profile="paper", audio=AudioConfig(extractor="whisper")).audio.extractor == "whisper"


def test_resolved_settings_are_dumped_and_round_trip() -> None:
    cfg = load_config(None, ["features.profile=paper"])
    dumped = yaml.safe_load(dump_config(cfg))
    assert dumped["features"]["profile"] == "paper"
    assert dumped["features"]["audio"]["extractor"] == "mfcc" and dumped["features"]["text"]["idf"] == "paper"
    # reloading what was dumped (e.g. a checkpoint's config) gives the same config
    assert from_dict(ExperimentConfig, to_dict(cfg)) == cfg


def test_config_dumped_before_profiles_keeps_mfcc() -> None:
    # a checkpoint written before audio.extractor existed holds every other AudioConfig field
    old = {
        k: v for k, v in to_dict(AudioConfig()).items() if k != "extractor" and not k.startswith("whisper_")
    }
    assert from_dict(FeatureConfig, {"audio": old}).audio.extractor == "mfcc"
    # a user config giving some audio fields still gets the profile's extractor
    assert from_dict(FeatureConfig, {"audio": {"n_mfcc": 13}}).audio.extractor == "whisper"


def test_bad_profile_is_rejected() -> None:
    with pytest.raises(ConfigError, match=r"features\.profile"):
        load_config(None, ["features.profile=fast"])
    with pytest.raises(ConfigError, match=r"features\.profile"):
        FeatureConfig(profile="fast")  # type: ignore[arg-type]


def test_demo_config_keeps_its_fast_front_ends() -> None:
    # the demo runs on synthetic tones and drawn faces: MFCC / EfficientNet-lite0 pinned explicitly
    f = load_config(CONFIGS / "default.yaml").features
    assert (f.audio.extractor, f.face.backbone) == ("mfcc", "efficientnet_lite0")
