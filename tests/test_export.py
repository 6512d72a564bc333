"""ONNX export (mmfer.inference.export): ONNX Runtime outputs equal PyTorch's for every registered model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from infer_assets import Assets, shared_assets
from mmfer.config import ModelConfig
from mmfer.inference.export import ExportableModel, example_inputs, export_onnx
from mmfer.models import create_model, list_models
from mmfer.registry import MODELS

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

STEPS, IN_FEATURES, CLASSES = 6, 10, 4
SMALL = ModelConfig(hidden_size=8, num_layers=2, mogrify_rounds=3, num_heads=2, ff_size=16, dropout=0.1)


def _batches() -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Batch sizes 1, 4, 7; padding anywhere (not only at the end), and one batch with none."""
    g = torch.Generator().manual_seed(3)
    out = []
    for b in (1, 4, 7):
        x = torch.randn(b, STEPS, IN_FEATURES, generator=g)  # (B, T, F)
        mask = torch.rand(b, STEPS, generator=g) > 0.4  # (B, T)
        mask[:, 2] = True  # every row keeps at least one valid step
        out.append((x, mask))
    out.append((torch.randn(3, STEPS, IN_FEATURES, generator=g), torch.ones(3, STEPS, dtype=torch.bool)))
    return out


# models on pixels (fer2013_ft) need 64x64 crops, not these toy inputs; their export is not covered
FEATURE_MODELS = [n for n in list_models() if not getattr(MODELS.get(n), "raw_modalities", ())]
CASES = [(name, "mean") for name in FEATURE_MODELS] + [("rmlstm", "last"), ("lstm", "last")]


@pytest.mark.parametrize(("name", "pooling"), CASES)
def test_onnx_matches_pytorch(name: str, pooling: str, tmp_path: Path) -> None:
    torch.manual_seed(0)
    cfg = ModelConfig(**{**SMALL.__dict__, "pooling": pooling, "input_proj": 6 if name == "rmlstm" else 0})
    model = create_model(name, in_features=IN_FEATURES, num_classes=CLASSES, cfg=cfg).eval()
    res = export_onnx(model, tmp_path / f"{name}.onnx", steps=STEPS)
    assert res.method == "onnx-legacy" and res.path.suffix == ".onnx"
    assert res.max_abs_diff is not None and res.max_abs_diff < 1e-4
    sess = ort.InferenceSession(str(res.path), providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == ["x", "mask"]
    for x, mask in _batches():
        got = sess.run(["logits"], {"x": x.numpy(), "mask": mask.numpy()})[0]
        with torch.inference_mode():
            ref = model(x, mask).numpy()  # (B, C), the model's own forward
        assert got.shape == (x.shape[0], CLASSES)
        np.testing.assert_allclose(got, ref, atol=1e-4, rtol=0)


def test_wrapper_equals_model_and_ignores_padding_values() -> None:
    torch.manual_seed(1)
    model = create_model("rmlstm", in_features=IN_FEATURES, num_classes=CLASSES, cfg=SMALL).eval()
    wrapper = ExportableModel(model)
    x, mask = example_inputs(5, STEPS, IN_FEATURES, seed=4)
    noisy = x.masked_fill(~mask.unsqueeze(-1), float("nan"))  # padding holds garbage
    with torch.inference_mode():
        np.testing.assert_allclose(wrapper(noisy, mask).numpy(), model(x, mask).numpy(), atol=1e-6)


def test_export_checkpoint_with_metadata_and_cli(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from mmfer.inference.cli import main
    from mmfer.inference.loader import load

    assets: Assets = shared_assets(tmp_path_factory)
    out = tmp_path / "model.onnx"
    assert main(["export", "--model", str(assets.checkpoint), "--out", str(out)]) == 0
    assert "onnx-legacy" in capsys.readouterr().out
    proto = onnx.load(str(out))
    meta = {p.key: p.value for p in proto.metadata_props}
    rec = load(assets.checkpoint).recognizer
    assert json.loads(meta["mmfer.labels"]) == assets.labels
    assert json.loads(meta["mmfer.modalities"]) == ["audio", "text"]
    assert (
        int(meta["mmfer.steps"]) == rec.fuser.cfg.steps
        and int(meta["mmfer.in_features"]) == rec.fuser.n_features
    )
    # end to end: fused features of a real clip through ONNX Runtime == the Python predictor
    from mmfer.features.units import SampleFeatures
    from mmfer.features.voice.mfcc import MFCCExtractor

    feats = [
        SampleFeatures(audio=MFCCExtractor(assets.features_cfg.audio).extract(w))
        for w in assets.wavs.values()
    ]
    fused = rec.fuser.transform(feats)
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    logits = sess.run(["logits"], {"x": fused.x, "mask": fused.mask})[0]  # (N, C)
    proba = np.exp(logits - logits.max(1, keepdims=True))
    proba /= proba.sum(1, keepdims=True)
    np.testing.assert_allclose(proba, rec.predict_proba(feats), atol=1e-5)


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
def test_torchscript_fallback_when_onnx_export_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mmfer.errors import MmferError

    torch.manual_seed(2)
    model = create_model("mlstm", in_features=IN_FEATURES, num_classes=CLASSES, cfg=SMALL).eval()

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("exporter unavailable")

    monkeypatch.setattr(torch.onnx, "export", broken)
    with pytest.raises(MmferError, match="exporter unavailable"):
        export_onnx(model, tmp_path / "m.onnx", steps=STEPS, allow_torchscript=False)
    res = export_onnx(model, tmp_path / "m.onnx", steps=STEPS)
    assert (
        res.method == "torchscript" and res.path == tmp_path / "m.pt" and not (tmp_path / "m.onnx").exists()
    )
    scripted = torch.jit.load(str(res.path))
    for x, mask in _batches():
        with torch.inference_mode():
            np.testing.assert_allclose(scripted(x, mask).numpy(), model(x, mask).numpy(), atol=1e-5)


def test_composed_checkpoint_is_refused_clearly(tmp_path: Path) -> None:
    """The shipped model is composed (fusion in Python): a ConfigError, not an AttributeError."""
    from mmfer.errors import ConfigError
    from mmfer.inference.default import default_model_path
    from mmfer.inference.export import export_onnx

    with pytest.raises(ConfigError, match="composed"):
        export_onnx(default_model_path(), tmp_path / "m.onnx")
