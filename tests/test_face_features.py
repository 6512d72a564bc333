"""Face branch: detection/crop, eq. 1 normalisation, EfficientNet backbones and the extractor."""

from __future__ import annotations

import json
import logging
import math
import pickle
from dataclasses import replace
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from mmfer.config import FaceConfig
from mmfer.errors import ConfigError, FeatureError
from mmfer.features.face import backbones as B
from mmfer.features.face import efficientnet as E
from mmfer.features.face import efficientnet_weights as W
from mmfer.features.face.crops import crop_face, minmax_normalise
from mmfer.features.face.detection import detect_face
from mmfer.features.face.extractor import FaceFeatureExtractor
from mmfer.features.video import read_image

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def draw_face(img: np.ndarray, cx: int, cy: int, size: int) -> np.ndarray:
    """Cartoon frontal face (skin oval, brows, eyes, nose, mouth) that the Haar cascade accepts."""
    cv2.ellipse(img, (cx, cy), (int(size * 0.30), int(size * 0.40)), 0, 0, 360, (205, 175, 150), -1)
    for dx in (-1, 1):
        ex, ey = cx + dx * int(size * 0.12), cy - int(size * 0.08)
        cv2.ellipse(
            img,
            (ex, ey - int(size * 0.07)),
            (int(size * 0.08), int(size * 0.02)),
            0,
            0,
            360,
            (70, 50, 40),
            -1,
        )
        cv2.ellipse(img, (ex, ey), (int(size * 0.065), int(size * 0.035)), 0, 0, 360, (235, 235, 235), -1)
        cv2.circle(img, (ex, ey), int(size * 0.03), (30, 20, 20), -1)
    cv2.ellipse(
        img, (cx, cy + int(size * 0.07)), (int(size * 0.04), int(size * 0.02)), 0, 0, 360, (170, 135, 120), -1
    )
    cv2.ellipse(
        img, (cx, cy + int(size * 0.2)), (int(size * 0.11), int(size * 0.035)), 0, 0, 360, (140, 70, 70), -1
    )
    return img


def face_frame(w: int = 160, h: int = 120, dx: int = 0, bg: int = 60) -> np.ndarray:
    img = np.full((h, w, 3), bg, np.uint8)
    return draw_face(img, w // 2 + dx, h // 2, int(min(w, h) * 0.85))


def noise_frames(n: int, seed: int = 0, h: int = 120, w: int = 160) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, h, w, 3), dtype=np.uint8)


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    # On a shared 2-core box, 2 OpenMP threads spin against other processes and run ~5x slower.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def lite_extractor() -> FaceFeatureExtractor:
    # 128 px instead of 224 keeps the suite fast; the pipeline is identical.
    return FaceFeatureExtractor(FaceConfig(batch_size=4, max_frames=4, fps=4.0, image_size=128))


# --------------------------------------------------------------------------- eq. 1 and crops


def test_minmax_hand_case() -> None:
    img = np.array([[0, 50], [100, 200]], dtype=np.uint8)
    out = minmax_normalise(img)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [[0.0, 0.25], [0.5, 1.0]])
    # Offset range: (x - 10) / (60 - 10), over all channels at once.
    rgb = np.array([[[10, 20, 60]], [[35, 10, 10]]], dtype=np.uint8)
    np.testing.assert_allclose(minmax_normalise(rgb), (rgb - 10.0) / 50.0, rtol=1e-6)


def test_minmax_constant_image_is_zeros_not_nan() -> None:
    out = minmax_normalise(np.full((4, 4, 3), 77, np.uint8))
    assert out.dtype == np.float32 and np.all(out == 0) and not np.isnan(out).any()


def test_crop_face_box_margin_and_centre_square() -> None:
    frame = np.zeros((100, 300, 3), np.uint8)
    frame[:, 100:200] = 255  # white centre square
    centre = crop_face(frame, None, margin=0.2, size=32)
    assert centre.shape == (32, 32, 3) and centre.min() == 255  # centre square of a wide frame
    frame2 = np.zeros((200, 200, 3), np.uint8)
    frame2[80:120, 80:120] = 200  # 40 px "face" box
    crop = crop_face(frame2, (80, 80, 40, 40), margin=0.25, size=60)  # side 40 * 1.5 = 60 px
    assert crop.shape == (60, 60, 3)
    assert np.all(crop[15:45, 15:45] == 200) and crop[0, 0, 0] == 0 and crop[-1, -1, 0] == 0
    # A box at the border is shifted inside instead of padded (no invented black pixels).
    frame3 = np.full((50, 50, 3), 128, np.uint8)
    edge = crop_face(frame3, (0, 0, 30, 30), margin=0.5, size=16)
    assert edge.shape == (16, 16, 3) and np.all(edge == 128)


def test_detect_face_on_drawn_face_and_none_on_noise() -> None:
    img = face_frame(160, 120)
    box = detect_face(img)
    assert box is not None
    x, y, w, h = box
    assert abs((x + w / 2) - 80) < 15 and abs((y + h / 2) - 60) < 20 and 40 < w < 130
    moved = detect_face(face_frame(320, 240, dx=40))
    assert moved is not None and moved[0] + moved[2] / 2 > 180  # follows the face to the right
    assert detect_face(noise_frames(1)[0]) is None


# --------------------------------------------------------------------------- backbones


def test_lite0_loads_every_shipped_tensor_strictly() -> None:
    shipped = torch.load(W.lite0_weights_path(), map_location="cpu", weights_only=True)
    model = B.efficientnet_lite0(pretrained=True)
    mapping = W.key_map(model, "lukemelas")
    assert set(mapping.values()) == set(shipped)  # nothing missing, nothing left over
    own = model.state_dict()
    for native, foreign in mapping.items():
        assert torch.equal(own[native], shipped[foreign]), native
    assert model.pretrained and sum(p.numel() for p in model.parameters()) == 4_652_008  # Lite0: 4.65M


def test_lite0_is_imagenet_trained(lite_extractor: FaceFeatureExtractor) -> None:
    """A natural photo (bundled with scikit-learn) gets a confident, sensible ImageNet class."""
    from sklearn.datasets import load_sample_image

    model = lite_extractor.backbone
    img = load_sample_image("china.jpg")  # Chinese temple/palace, 427x640
    crop = cv2.resize(crop_face(img, None, 0.0, 224), (224, 224)).astype(np.float32) / 255
    x = (crop - np.array(model.mean, np.float32)) / np.array(model.std, np.float32)
    with torch.inference_mode():
        p = model(torch.from_numpy(x.transpose(2, 0, 1)[None].copy())).softmax(-1)[0]  # (1000,)
    entropy = float(-(p * p.clamp_min(1e-12).log()).sum())
    assert entropy < 0.6 * math.log(1000)  # far from uniform
    # ImageNet ids: 698 palace, 663 monastery, 442 bell cote, 483 castle, 832 stupa.
    assert int(p.argmax()) in {698, 663, 442, 483, 832}
    rnd = E.EfficientNet(E.LITE0_SPEC).eval()  # untrained net of the same shape, for contrast
    with torch.inference_mode():
        q = rnd(torch.from_numpy(x.transpose(2, 0, 1)[None].copy())).softmax(-1)[0]
    assert float(q.max()) < float(p.max())


def test_tf_same_padding_matches_explicit_asymmetric_pad() -> None:
    layer = E.ConvBNAct(3, 4, 3, stride=2, act=None, padding="same", bn_eps=1e-3).eval()
    x = torch.randn(1, 3, 8, 8)
    ref = layer.bn(
        F.conv2d(F.pad(x, [0, 1, 0, 1]), layer.conv.weight, stride=2)
    )  # TF: extra pixel bottom/right
    with torch.inference_mode():
        assert torch.allclose(layer(x), ref, atol=1e-6)
    assert layer(torch.randn(1, 3, 9, 9)).shape[-1] == 5  # ceil(9 / 2)


def _torchvision_b0_keys() -> set[str]:
    """torchvision efficientnet_b0 state-dict names, written out from its module tree."""
    bn = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
    keys = {"features.0.0.weight"} | {f"features.0.1.{b}" for b in bn}
    repeats = [1, 2, 2, 3, 3, 4, 1]
    for stage, r in enumerate(repeats, start=1):
        for j in range(r):
            p = f"features.{stage}.{j}.block"
            layers = ["dw", "se", "proj"] if stage == 1 else ["exp", "dw", "se", "proj"]
            for i, kind in enumerate(layers):
                if kind == "se":
                    keys |= {
                        f"{p}.{i}.fc1.weight",
                        f"{p}.{i}.fc1.bias",
                        f"{p}.{i}.fc2.weight",
                        f"{p}.{i}.fc2.bias",
                    }
                else:
                    keys |= {f"{p}.{i}.0.weight"} | {f"{p}.{i}.1.{b}" for b in bn}
    keys |= {"features.8.0.weight"} | {f"features.8.1.{b}" for b in bn}
    return keys | {"classifier.1.weight", "classifier.1.bias"}


def _timm_b0_keys() -> set[str]:
    """timm efficientnet_b0 names: conv_stem/bn1, blocks.s.j.{conv_dw,conv_pw,conv_pwl,bn1-3,se}, head."""
    bn = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
    keys = {"conv_stem.weight"} | {f"bn1.{b}" for b in bn}
    se = ("se.conv_reduce.weight", "se.conv_reduce.bias", "se.conv_expand.weight", "se.conv_expand.bias")
    for s, r in enumerate([1, 2, 2, 3, 3, 4, 1]):
        for j in range(r):
            p = f"blocks.{s}.{j}"
            convs = ["conv_dw", "conv_pw"] if s == 0 else ["conv_pw", "conv_dw", "conv_pwl"]
            for i, c in enumerate(convs, start=1):
                keys |= {f"{p}.{c}.weight"} | {f"{p}.bn{i}.{b}" for b in bn}
            keys |= {f"{p}.{k}" for k in se}
    keys |= {"conv_head.weight"} | {f"bn2.{b}" for b in bn}
    return keys | {"classifier.weight", "classifier.bias"}


def test_b0_batchnorm_follows_its_conv_in_foreign_layouts() -> None:
    """Expand-BN and depthwise-BN have equal shapes, so only the pairing can catch a swap."""
    m = E.EfficientNet(E.B0_SPEC)
    timm_pairs = {"conv_pw": "bn1", "conv_dw": "bn2", "conv_pwl": "bn3"}  # InvertedResidual
    timm_ds_pairs = {"conv_dw": "bn1", "conv_pw": "bn2"}  # DepthwiseSeparableConv (stage 0)
    tv, tm = W.key_map(m, "torchvision"), W.key_map(m, "timm")
    n_pairs = 0
    for name, mod in m.named_modules():
        if not isinstance(mod, E.ConvBNAct) or not name.startswith("blocks."):
            continue
        conv, bn = f"{name}.conv.weight", f"{name}.bn.weight"
        # torchvision: Conv2dNormActivation = Sequential(conv at .0, bn at .1)
        assert tv[conv].removesuffix(".0.weight") == tv[bn].removesuffix(".1.weight")
        block, conv_name = tm[conv].removesuffix(".weight").rsplit(".", 1)
        pairs = timm_ds_pairs if block.startswith("blocks.0.") else timm_pairs
        assert tm[bn] == f"{block}.{pairs[conv_name]}.weight"
        n_pairs += 1
    assert n_pairs == 3 * 16 - 1  # 16 blocks x (expand, dw, project), block 0 has no expand


def _randomised_b0() -> E.EfficientNet:
    """B0 with every tensor (BN statistics included) random, so a wrong mapping cannot hide."""
    torch.manual_seed(1)
    m = E.EfficientNet(E.B0_SPEC)
    with torch.no_grad():
        for k, t in m.state_dict().items():
            if t.is_floating_point():
                t.copy_(torch.rand_like(t) + 0.5 if k.endswith("running_var") else torch.randn_like(t) * 0.1)
    return m.eval()


def test_b0_architecture_matches_torchvision_parameter_count() -> None:
    m = E.EfficientNet(E.B0_SPEC)
    assert sum(p.numel() for p in m.parameters()) == 5_288_548  # torchvision EfficientNet_B0 num_params
    assert any(isinstance(x, E.SqueezeExcite) for x in m.modules())
    assert isinstance(m.stem.act, torch.nn.SiLU)


@pytest.mark.parametrize(
    ("layout", "expected", "suffix"),
    [("torchvision", _torchvision_b0_keys, ".pth"), ("timm", _timm_b0_keys, ".safetensors")],
)
def test_b0_foreign_weights_roundtrip(tmp_path: Path, layout: str, expected, suffix: str) -> None:
    src = _randomised_b0()
    exported = W.export_state_dict(src, layout)
    assert set(exported) == expected()
    path = tmp_path / f"b0_{layout}{suffix}"
    if suffix == ".pth":
        torch.save(exported, path)
    else:
        save_file({k: v.contiguous() for k, v in exported.items()}, str(path))
    loaded = B.efficientnet_b0(str(path))
    assert loaded.pretrained
    x = torch.randn(2, 3, 64, 64)
    with torch.inference_mode():
        assert torch.equal(loaded.forward_features(x), src.forward_features(x))
        assert torch.equal(loaded(x), src(x))


def test_b0_weights_with_missing_or_misshapen_tensors_are_rejected(tmp_path: Path) -> None:
    sd = W.export_state_dict(_randomised_b0(), "timm")
    del sd["blocks.3.1.conv_dw.weight"]
    bad = tmp_path / "partial.pth"
    torch.save(sd, bad)
    with pytest.raises(ConfigError, match=r"partial\.pth.*missing.*blocks\.3\.1\.conv_dw\.weight"):
        B.efficientnet_b0(str(bad))
    sd = W.export_state_dict(_randomised_b0(), "torchvision")
    sd["features.0.0.weight"] = torch.zeros(16, 3, 3, 3)
    torch.save({"state_dict": sd}, bad)  # wrapped checkpoints are unwrapped first
    with pytest.raises(ConfigError, match="shape"):
        B.efficientnet_b0(str(bad))
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ConfigError, match=r"junk\.pth"):
        B.efficientnet_b0(str(junk))
    with pytest.raises(ConfigError, match="unrecognised"):
        W.load_weights(E.EfficientNet(E.B0_SPEC), {"foo.weight": torch.zeros(1)})


def test_b0_random_init_is_seeded_finite_and_warns(caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="mmfer.features.face.backbones"):
        a = B.efficientnet_b0(None)
    assert any("RANDOMLY" in r.getMessage() for r in caplog.records)
    b = B.efficientnet_b0(None)
    x = torch.rand(2, 3, 96, 96)
    with torch.inference_mode():
        fa, fb = a.forward_features(x), b.forward_features(x)
    assert not a.pretrained
    assert fa.shape == (2, 1280) and torch.isfinite(fa).all() and torch.equal(fa, fb)
    assert float(fa.std()) > 1e-3  # BN calibration keeps activations from vanishing


def test_backbone_registry() -> None:
    assert set(B.BACKBONES.names()) == {
        "efficientnet_lite0",
        "efficientnet_b0",
        "fer2013",
        "faceapi",
        "fer2013+faceapi",
        "fer2013_crop",
    }
    with pytest.raises(ConfigError, match="valid names"):
        B.create_backbone("resnet50")


# --------------------------------------------------------------------------- extractor


def test_extract_frames_shape_dtype_finite_deterministic(lite_extractor: FaceFeatureExtractor) -> None:
    frames = np.stack([face_frame(), face_frame(dx=10), noise_frames(1)[0]])
    a = lite_extractor.extract_frames(frames)
    b = lite_extractor.extract_frames(frames)
    assert a.shape == (3, 1280) and a.dtype == np.float32 and np.isfinite(a).all()
    assert lite_extractor.dim == 1280
    assert np.array_equal(a, b)


def test_pretrained_features_separate_images(lite_extractor: FaceFeatureExtractor) -> None:
    same = lite_extractor.extract_frames(np.stack([face_frame(), face_frame()]))
    assert np.array_equal(same[0], same[1])
    feats = lite_extractor.extract_frames(np.stack([face_frame(), noise_frames(1, seed=3)[0]]))
    cos = feats[0] @ feats[1] / (np.linalg.norm(feats[0]) * np.linalg.norm(feats[1]))
    assert cos < 0.95 and np.abs(feats[0] - feats[1]).max() > 0.1


def test_batch_size_does_not_change_features(lite_extractor: FaceFeatureExtractor) -> None:
    frames = noise_frames(5, seed=7)
    small = FaceFeatureExtractor(replace(lite_extractor.cfg, batch_size=2), backbone=lite_extractor.backbone)
    np.testing.assert_allclose(small.extract_frames(frames), lite_extractor.extract_frames(frames), atol=1e-4)


def test_no_face_falls_back_and_is_counted_once(lite_extractor: FaceFeatureExtractor, caplog) -> None:
    frames = noise_frames(3, seed=5)
    with caplog.at_level(logging.WARNING, logger="mmfer.features.face.extractor"):
        res = lite_extractor.run_frames(frames, source="clip42.mp4")
    assert res.no_face == 3 and res.boxes == [None, None, None] and res.frames == 3
    assert res.issue is not None and "3/3" in res.issue
    warnings = [r for r in caplog.records if "clip42.mp4" in r.getMessage()]
    assert len(warnings) == 1
    # The fallback crop is the centre square: same features as cropping it by hand with detection off.
    off = FaceFeatureExtractor(replace(lite_extractor.cfg, detector="none"), backbone=lite_extractor.backbone)
    np.testing.assert_allclose(off.extract_frames(frames), res.features, atol=1e-5)


def test_missed_frame_reuses_nearest_face_box(lite_extractor: FaceFeatureExtractor) -> None:
    face = face_frame(320, 240, dx=60)
    # No face here, but a horizontal ramp so crops at different places differ.
    ramp = np.linspace(0, 255, face.shape[1]).astype(np.uint8)
    blank = np.ascontiguousarray(np.broadcast_to(ramp[None, :, None], face.shape))
    res = lite_extractor.run_frames(np.stack([face, blank]))
    assert res.no_face == 1 and res.boxes[0] is not None and res.boxes[1] is None
    crop_at_face = FaceFeatureExtractor(
        replace(lite_extractor.cfg, detector="none"), backbone=lite_extractor.backbone
    )
    centre = crop_at_face.extract_frames(blank[None])[0]
    assert not np.allclose(res.features[1], centre)  # it used the face box, not the centre square


def _write_face_video(path: Path, n: int = 12) -> Path:
    c = av.open(str(path), "w")
    s = c.add_stream("libx264", rate=10)
    s.width, s.height, s.pix_fmt = 160, 120, "yuv420p"
    for i in range(n):
        for p in s.encode(av.VideoFrame.from_ndarray(face_frame(dx=(i % 3) - 1), format="rgb24")):
            c.mux(p)
    for p in s.encode():
        c.mux(p)
    c.close()
    return path


def test_extract_video_image_and_folder(lite_extractor: FaceFeatureExtractor, tmp_path: Path) -> None:
    vid = _write_face_video(tmp_path / "face.mp4", n=12)  # 1.2 s at 4 fps -> 5 samples, capped at 4
    res = lite_extractor.run_video(vid)
    assert res.features.shape == (4, 1280) and res.no_face == 0
    img = tmp_path / "face.png"
    cv2.imwrite(str(img), cv2.cvtColor(face_frame(), cv2.COLOR_RGB2BGR))
    one = lite_extractor.extract_image(img)
    assert one.shape == (1, 1280) and one.dtype == np.float32
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(6):
        cv2.imwrite(str(folder / f"f{i}.png"), cv2.cvtColor(face_frame(dx=2 * i), cv2.COLOR_RGB2BGR))
    (folder / "notes.txt").write_text("ignored")
    assert lite_extractor.extract_frames_dir(folder).shape == (4, 1280)
    empty = tmp_path / "none"
    empty.mkdir()
    with pytest.raises(FeatureError, match="no image files"):
        lite_extractor.extract_frames_dir(empty)
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\x00" * 100)
    with pytest.raises(FeatureError, match=r"bad\.jpg"):
        lite_extractor.extract_image(bad)


def test_config_dict_and_pickling(lite_extractor: FaceFeatureExtractor, tmp_path: Path) -> None:
    d = lite_extractor.config_dict()
    json.dumps(d)
    assert d["backbone"] == "efficientnet_lite0" and d["weights_sha256"] is None
    assert FaceFeatureExtractor(FaceConfig(image_size=160)).config_dict() != d
    w = tmp_path / "w.pth"
    torch.save({"x": torch.zeros(1)}, w)
    assert len(FaceFeatureExtractor(FaceConfig(weights=str(w))).config_dict()["weights_sha256"]) == 64
    clone = pickle.loads(pickle.dumps(lite_extractor))
    frame = face_frame()[None]
    np.testing.assert_array_equal(clone.extract_frames(frame), lite_extractor.extract_frames(frame))


def test_bad_face_config_values() -> None:
    with pytest.raises(ConfigError, match="detector"):
        FaceFeatureExtractor(FaceConfig(detector="mtcnn"))
    with pytest.raises(ConfigError, match="backbone"):
        FaceFeatureExtractor(FaceConfig(backbone="vgg"))
    with pytest.raises(ConfigError, match="image_size"):
        FaceFeatureExtractor(FaceConfig(image_size=8))


@pytest.mark.realdata
def test_ckplus_faces_are_detected_and_distinct(lite_extractor: FaceFeatureExtractor) -> None:
    root = DATA / "ckplus48" / "CK+48"
    if not root.is_dir():
        pytest.skip(f"{root} not present")
    files = sorted((root / "happy").glob("*.png"))[:3] + sorted((root / "surprise").glob("*.png"))[:3]
    res = lite_extractor.run_frames([read_image(f) for f in files], source="ck+ sample")
    assert res.no_face <= 1  # 48x48 crops are upsampled for the cascade
    feats = res.features  # (6, 1280)
    assert np.isfinite(feats).all()
    assert len({f.tobytes() for f in feats}) == len(files)
