from __future__ import annotations

from pathlib import Path

import pytest

from mmfer.config import ExperimentConfig, dump_config, load_config
from mmfer.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


def test_defaults_and_overrides() -> None:
    cfg = load_config(
        None,
        [
            "train.epochs=3",
            "model.name=lstm",
            "fusion.modalities=[audio, text]",
            "features.audio.fmax=8000",
            "data.root=null",
        ],
    )
    assert isinstance(cfg, ExperimentConfig)
    assert cfg.train.epochs == 3
    assert cfg.model.name == "lstm"
    assert cfg.fusion.modalities == ["audio", "text"]
    assert cfg.features.audio.fmax == 8000.0 and isinstance(cfg.features.audio.fmax, float)
    assert cfg.data.root is None


def test_yaml_then_override(tmp_path: Path) -> None:
    p = tmp_path / "c.yaml"
    p.write_text("train:\n  epochs: 7\n  lr: 0.01\nmodel:\n  hidden_size: 32\n")
    cfg = load_config(p, ["train.epochs=9"])
    assert (cfg.train.epochs, cfg.train.lr, cfg.model.hidden_size) == (9, 0.01, 32)


def test_round_trip(tmp_path: Path) -> None:
    cfg = load_config(None, ["eval.protocol=stratified_kfold", "train.seed=4"])
    p = tmp_path / "c.yaml"
    p.write_text(dump_config(cfg))
    assert load_config(p) == cfg


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        ("train.epoch=3", "unknown config key train.epoch"),
        ("trian.epochs=3", "unknown config key trian"),
        ("train.epochs=abc", "train.epochs: expected an integer"),
        ("train.epochs=2.5", "train.epochs: expected an integer"),
        ("train.progress=maybe", "train.progress: expected true/false"),
        ("eval.protocol=random", "eval.protocol: 'random' is not one of"),
        ("fusion.modalities=face", "fusion.modalities: expected a list"),
        ("train=3", "train: expected a mapping"),
        ("noequals", "must look like key=value"),
    ],
)
def test_bad_overrides_are_rejected(override: str, needle: str) -> None:
    with pytest.raises(ConfigError, match=None) as e:
        load_config(None, [override])
    assert needle in str(e.value)


def test_unknown_key_lists_valid_ones() -> None:
    with pytest.raises(ConfigError) as e:
        load_config(None, ["model.hiden_size=3"])
    assert "hidden_size" in str(e.value)


def test_bad_yaml_file(tmp_path: Path) -> None:
    p = tmp_path / "bad.yaml"
    p.write_text("train: [unclosed\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_config(p)
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "missing.yaml")
    p.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(p)


@pytest.mark.parametrize("path", sorted((REPO / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_configs_load(path: Path) -> None:
    load_config(path)
