"""The shipped default model's metadata: its licence is recorded and no build-machine path leaks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from safetensors import safe_open

from mmfer.inference.default import (
    DEFAULT_MODEL_LICENSE,
    DEFAULT_MODEL_TRAINING_DATA,
    default_model_path,
    development_paths,
    finalise_metadata,
    model_license,
)


def _raw(path: Path) -> dict[str, str]:
    with safe_open(str(path), framework="pt") as fh:
        return dict(fh.metadata() or {})


def test_shipped_model_has_a_licence_and_no_development_paths() -> None:
    raw = _raw(default_model_path())
    assert development_paths(raw) == []
    text = json.dumps(raw)
    for bad in ("runs/", "/work", "/root", "/home/", "/tmp/", "~/"):
        assert bad not in text, bad
    # the licence, at the top of the header and in the model's own description
    assert "CC BY-NC-SA 4.0" in raw["license"] and "non-commercial" in raw["license"]
    meta = json.loads(raw["mmfer"])
    assert model_license(meta) == raw["license"] == DEFAULT_MODEL_LICENSE
    assert meta["about"]["training data"] == DEFAULT_MODEL_TRAINING_DATA
    # actor 05 left out of the voice part: the shared actor-05 videos are an unseen person
    voice = next(part for part in meta["parts"] if part["name"] == "voice")
    assert "actor 05 left out" in voice["about"]["training data"]
    assert all("licence" in part["about"] for part in meta["parts"])


@pytest.mark.parametrize(
    "value",
    ["runs/probe-cache", "/work/main/x", "/root/.cache", "C:\\data", "~/data", "cache=/tmp/x"],
)
def test_development_paths_are_found(value: str) -> None:
    assert development_paths({"mmfer": json.dumps({"features": {"cache_dir": value}})})


def test_finalise_metadata_keeps_the_tensors_byte_identical(tmp_path: Path) -> None:
    from mmfer.inference.default import _tensor_bytes

    src = default_model_path()
    dirty = tmp_path / "dirty.safetensors"
    # a model as the build leaves it: a feature-cache path of the build machine, no licence
    with safe_open(str(src), framework="pt") as fh:
        tensors = {k: fh.get_tensor(k) for k in fh.keys()}
        meta = json.loads(fh.metadata()["mmfer"])
    meta["parts"][0]["checkpoint"]["features"]["cache_dir"] = "runs/probe-ravdess-cache"
    meta["about"] = {}
    from safetensors.torch import save_file

    save_file(tensors, str(dirty), metadata={"mmfer": json.dumps(meta)})
    assert development_paths(_raw(dirty))
    out = finalise_metadata(dirty, tmp_path / "clean.safetensors")
    assert development_paths(_raw(out)) == [] and _raw(out)["license"] == DEFAULT_MODEL_LICENSE
    assert _tensor_bytes(out) == _tensor_bytes(dirty) == _tensor_bytes(src)
