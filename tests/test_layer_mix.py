"""Learned softmax layer weighting (``model.layer_mix``) and masked temporal steps of audio."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

from mmfer import pipeline
from mmfer.config import FeatureConfig, FusionConfig, ModelConfig, TextConfig, TrainConfig
from mmfer.errors import ConfigError
from mmfer.estimators.neural import NeuralEstimator
from mmfer.features.units import SampleFeatures
from mmfer.fusion import Fuser
from mmfer.models import create_model
from mmfer.models.layer_mix import AUTO, LayerMix, layer_span
from mmfer.recognizer import Recognizer

NETWORKS = ["rmlstm", "lstm", "mlp", "transformer"]
SMALL = {"hidden_size": 8, "num_layers": 1, "mogrify_rounds": 3, "num_heads": 2, "ff_size": 16}
L, D = 3, 4  # layers, block width
LABELS = ["angry", "happy", "sad"]


def _net(name: str, in_features: int, span: list[int], **over: object) -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model(
        name, in_features=in_features, num_classes=3, layer_mix=span[3], layer_mix_span=span, **SMALL, **over
    )


def test_mix_shapes_and_equal_initial_weights_are_the_mean_of_the_layers() -> None:
    # 2 pooled statistics x 3 layers x 4 wide, after 2 leading columns; 1 trailing flag
    mix = LayerMix([2, 2 + 2 * L * D, 2, L], in_features=2 + 2 * L * D + 1)
    x = torch.randn(5, 7, mix.stop + 1)
    out = mix(x)
    assert out.shape == (5, 7, 2 + 2 * D + 1) and mix.out_features == out.shape[-1]
    stack = x[..., 2:-1].reshape(5, 7, 2, L, D)
    torch.testing.assert_close(out[..., 2:-1], stack.mean(dim=3).reshape(5, 7, 2 * D))
    torch.testing.assert_close(out[..., :2], x[..., :2])  # outside the span: unchanged
    torch.testing.assert_close(out[..., -1], x[..., -1])


@pytest.mark.parametrize("name", NETWORKS)
def test_weights_sum_to_one_and_receive_gradients(name: str) -> None:
    model = _net(name, L * D + 1, [0, L * D, 1, L], input_proj=6)
    w = model.layer_weights()
    assert w is not None and w.shape == (L,)
    assert float(w.sum()) == pytest.approx(1.0, abs=1e-6)
    torch.testing.assert_close(w, torch.full((L,), 1 / L))
    x = torch.randn(4, 5, L * D + 1)
    x[..., D : 2 * D] *= 5.0  # layers differ, so moving weight between them changes the loss
    torch.nn.functional.cross_entropy(model(x), torch.tensor([0, 1, 2, 0])).backward()
    grad = model.layer_mix.logits.grad
    assert grad is not None and torch.isfinite(grad).all() and float(grad.abs().max()) > 0


@pytest.mark.parametrize("name", NETWORKS)
def test_padded_steps_do_not_change_any_output(name: str) -> None:
    model = _net(name, 2 * L * D + 1, [0, 2 * L * D, 2, L], input_proj=6).eval()
    lengths = [32, 3, 17, 1]
    x = torch.randn(len(lengths), 32, 2 * L * D + 1)
    mask = torch.arange(32)[None, :] < torch.tensor(lengths)[:, None]  # (B, T)
    garbage = x.clone()
    garbage[~mask] = torch.randn(int((~mask).sum()), x.shape[-1]) * 1e3
    garbage[1, 20] = float("nan")
    with torch.no_grad():
        clean, perturbed = model(x.masked_fill(~mask[..., None], 0.0), mask), model(garbage, mask)
    assert torch.equal(clean, perturbed)


def test_width_not_divisible_is_a_clear_config_error() -> None:
    with pytest.raises(ConfigError, match=r"layer_mix=5.*41 columns wide"):
        layer_span(5, 41)
    with pytest.raises(ConfigError, match=r"layer_mix=5.*41 columns wide"):
        create_model("mlp", in_features=41, num_classes=3, layer_mix=5)
    with pytest.raises(ConfigError, match=r"holds 3 layer block"):
        layer_span(5, 13, (0, 12), layers=3)
    with pytest.raises(ConfigError, match=r"needs a known layer count"):
        layer_span(AUTO, 13, (0, 12), layers=0)
    with pytest.raises(ConfigError, match=r"model\.layer_mix must be"):
        create_model("mlp", in_features=12, num_classes=3, layer_mix=-2)
    assert layer_span(AUTO, 25, (0, 24), stats=2, layers=3) == [0, 24, 2, 3]


def _feats(n: int, frames: int, seed: int = 0) -> list[SampleFeatures]:
    rng = np.random.default_rng(seed)
    return [
        SampleFeatures(audio=rng.standard_normal((frames - i % 3, L * D)).astype(np.float32))
        for i in range(n)
    ]


@pytest.mark.parametrize("pool", ["mean", "stats", "clipstats"])
@pytest.mark.parametrize("norm", ["none", "frame"])
def test_fuser_layout_gives_the_layer_geometry_the_mix_expects(pool: str, norm: str) -> None:
    cfg = FusionConfig(modalities=["audio"], steps=4, audio_pool=pool, audio_block=D, audio_norm=norm)
    fuser = Fuser(cfg, TextConfig()).fit(_feats(6, 20))
    layout = fuser.layout()
    stats = {"mean": 1, "stats": 4, "clipstats": 2}[pool]
    assert (layout.audio_stats, layout.audio_layers) == (stats, L)
    span = layer_span(AUTO, layout.width, layout.blocks[0], stats=stats, layers=layout.audio_layers)
    fused = fuser.transform(_feats(2, 20, seed=1))
    x = torch.from_numpy(fused.x)
    for layer in range(L):
        mix = LayerMix(span, layout.width)
        with torch.no_grad():
            mix.logits[:] = -1e4
            mix.logits[layer] = 0.0  # one-hot on this layer: must read exactly its columns
        want = x[..., : stats * L * D].reshape(2, 4, stats, L, D)[:, :, :, layer].reshape(2, 4, -1)
        torch.testing.assert_close(mix(x)[..., : stats * D], want)
    view = Fuser(replace(cfg, audio_layers=[2]), TextConfig()).fit(_feats(6, 20)).layout()
    assert view.audio_layers == 1  # a one-layer view: nothing to mix


def test_short_clips_get_masked_steps_not_repeated_frames() -> None:
    cfg = FusionConfig(modalities=["audio"], steps=32, audio_block=D, standardise=False, balance=False)
    short = SampleFeatures(audio=np.arange(10 * L * D, dtype=np.float32).reshape(10, L * D))
    fuser = Fuser(cfg, TextConfig()).fit([short, *_feats(3, 40)])
    fused = fuser.transform([short])
    assert fused.mask[0].tolist() == [True] * 10 + [False] * 22
    np.testing.assert_array_equal(fused.x[0, :10, : L * D], short.audio)  # one step per frame
    assert not fused.x[0, 10:].any()


def _corpus(seed: int = 0) -> tuple[pd.DataFrame, dict[str, SampleFeatures]]:
    """4 speakers x 3 emotions x 4 clips of 3 stacked 4-wide layers; only layer 2 carries the class."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((3, D)) * 2
    rows, feats = [], {}
    for s in range(4):
        for e, emo in enumerate(LABELS):
            for k in range(4):
                sid = f"s{s}_{emo}_{k}"
                a = rng.standard_normal((6 + k, L * D))
                a[:, 2 * D :] += centres[e]
                feats[sid] = SampleFeatures(audio=a.astype(np.float32))
                rows.append({"id": sid, "speaker": f"s{s}", "emotion": emo})
    return pd.DataFrame(rows), feats


def test_fit_through_the_pipeline_sets_the_span_and_save_load_keeps_the_weights(tmp_path: object) -> None:
    table, feats = _corpus()
    fusion = FusionConfig(modalities=["audio"], steps=8, audio_block=D)
    train = TrainConfig(epochs=3, patience=0, progress=False, threads=1, batch_size=8)
    est = pipeline.make_estimator("rmlstm", ModelConfig(name="rmlstm", layer_mix=AUTO, **SMALL), train)
    rec = pipeline.fit_rows(
        table, feats, np.arange(len(table)), labels=LABELS, estimator=est, fusion_cfg=fusion,
        text_cfg=TextConfig(), features_cfg=FeatureConfig(),
    )  # fmt: skip
    fitted = rec.estimator
    assert isinstance(fitted, NeuralEstimator)
    assert rec.model_cfg.layer_mix_span == [0, L * D, 1, L]  # the audio block, not the presence flag
    weights = fitted.layer_weights()
    assert weights is not None and weights.sum() == pytest.approx(1.0, abs=1e-6)
    assert not np.allclose(weights, 1 / L)  # trained jointly with the classifier
    path = rec.save(tmp_path / "mix.safetensors")  # type: ignore[operator]
    back = Recognizer.load(path)
    np.testing.assert_array_equal(back.estimator.layer_weights(), weights)  # type: ignore[attr-defined]
    probe = [feats[i] for i in table["id"][:5]]
    np.testing.assert_allclose(back.predict_proba(probe), rec.predict_proba(probe), atol=1e-6)
    arrays, meta = fitted.state()  # the estimator's own round trip too
    again = NeuralEstimator("rmlstm", **fitted.params).load_state(arrays, meta)
    np.testing.assert_array_equal(again.layer_weights(), weights)  # type: ignore[attr-defined]


def test_every_layer_without_a_layer_view_is_a_config_error() -> None:
    _, feats = _corpus()
    est = pipeline.make_estimator(
        "mlp", ModelConfig(name="mlp", layer_mix=AUTO), TrainConfig(epochs=1, patience=0, progress=False)
    )
    no_view = Fuser(FusionConfig(modalities=["audio"], steps=2), TextConfig()).fit(list(feats.values()))
    est.set_layout(no_view.layout())  # no fusion.audio_block: the layer count is unknown
    x = np.zeros((6, 2, L * D + 1), dtype=np.float32)
    with pytest.raises(ConfigError, match="needs a known layer count"):
        est.fit(x, np.ones((6, 2), dtype=bool), np.array([0, 1, 2] * 2), num_classes=3)


def test_layer_mix_is_searchable_and_the_export_forward_mixes_too() -> None:
    from mmfer.inference.export import ExportableModel

    est = pipeline.make_estimator("rmlstm", ModelConfig(name="rmlstm"), TrainConfig(progress=False))
    space = pipeline.search_space(est, {"rmlstm": {"layer_mix": [0, AUTO], "lr": [0.001]}})
    assert space == {"layer_mix": [0, AUTO], "lr": [0.001]}
    model = _net("mlp", 2 * L * D + 1, [0, 2 * L * D, 2, L], input_proj=6).eval()
    with torch.no_grad():
        model.layer_mix.logits[:] = torch.tensor([1.0, -2.0, 0.5])
        x = torch.randn(3, 5, 2 * L * D + 1)
        mask = torch.arange(5)[None, :] < torch.tensor([5, 2, 4])[:, None]
        torch.testing.assert_close(ExportableModel(model)(x, mask), model(x, mask))
