from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest

from mmfer.config import FusionConfig, TextConfig
from mmfer.errors import ConfigError
from mmfer.fusion import Fuser, NotFittedError, pool_steps, resample_steps


@dataclass
class F:
    face: np.ndarray | None
    audio: np.ndarray | None
    text: str | None
    issues: dict[str, str] = field(default_factory=dict)


def _sample(
    rng: np.random.Generator, *, face: bool = True, audio: bool = True, text: str | None = "happy day"
) -> F:
    return F(
        rng.normal(size=(int(rng.integers(1, 12)), 5)).astype(np.float32) if face else None,
        rng.normal(size=(int(rng.integers(3, 40)), 4)).astype(np.float32) if audio else None,
        text,
    )


def test_resample_and_pool() -> None:
    a = np.arange(10, dtype=np.float32)[:, None]
    assert resample_steps(a, 5)[:, 0].tolist() == [0, 2, 4, 6, 8]
    assert resample_steps(a[:1], 3)[:, 0].tolist() == [0, 0, 0]
    assert pool_steps(a, 2)[:, 0].tolist() == [2.0, 7.0]
    assert pool_steps(a[:2], 4).shape == (4, 1)


def test_shapes_masks_and_missing_modalities() -> None:
    rng = np.random.default_rng(0)
    train = [_sample(rng, text=f"word{i % 3} shared") for i in range(12)]
    fuser = Fuser(FusionConfig(steps=4), TextConfig(max_features=50)).fit(train)
    v = len(fuser.tfidf_.vocabulary_)
    assert fuser.n_features == 5 + 4 + v + 3
    test = [_sample(rng, face=False), _sample(rng, audio=False, text=None), _sample(rng)]
    fb = fuser.transform(test)
    assert fb.x.shape == (3, 4, fuser.n_features) and fb.x.dtype == np.float32
    assert fb.mask.all() and np.isfinite(fb.x).all()
    assert fb.present.tolist() == [[False, True, True], [True, False, False], [True, True, True]]
    # a missing modality is zeros and its presence flag is 0
    assert np.all(fb.x[0, :, :5] == 0) and np.all(fb.x[0, :, -3] == 0) and np.all(fb.x[0, :, -2] == 1)
    assert np.all(fb.x[1, :, 5:9] == 0) and np.all(fb.x[1, :, 9 : 9 + v] == 0)


def test_modality_subset_and_standardisation() -> None:
    rng = np.random.default_rng(1)
    train = [_sample(rng) for _ in range(20)]
    fuser = Fuser(FusionConfig(modalities=["audio"], steps=3, balance=False), TextConfig()).fit(train)
    assert fuser.n_features == 4 + 1
    x = fuser.transform(train).x
    frames = np.concatenate([fuser.scalers_["audio"](s.audio) for s in train])
    assert np.allclose(frames.mean(0), 0, atol=1e-5) and np.allclose(frames.std(0), 1, atol=1e-4)
    assert x.shape == (20, 3, 5)


def test_fit_only_on_train_and_state_round_trip() -> None:
    rng = np.random.default_rng(2)
    train = [_sample(rng, text="calm quiet morning") for _ in range(5)]
    fuser = Fuser(FusionConfig(steps=2), TextConfig(idf="paper")).fit(train)
    assert "unseenword" not in fuser.tfidf_.vocabulary_
    state = fuser.get_state()
    import json

    clone = Fuser.from_state(json.loads(json.dumps(state)))
    test = [_sample(rng, text="unseenword calm")]
    assert np.allclose(clone.transform(test).x, fuser.transform(test).x)


def test_errors() -> None:
    with pytest.raises(ConfigError, match=r"fusion\.modalities"):
        Fuser(FusionConfig(modalities=["smell"]), TextConfig())
    with pytest.raises(ConfigError, match=r"fusion\.steps"):
        Fuser(FusionConfig(steps=0), TextConfig())
    fuser = Fuser(FusionConfig(), TextConfig())
    with pytest.raises(NotFittedError):
        fuser.transform([])
    rng = np.random.default_rng(3)
    with pytest.raises(ConfigError, match="no training sample has it"):
        fuser.fit([_sample(rng, face=False) for _ in range(3)])


def test_balance_gives_each_block_unit_total_variance() -> None:
    rng = np.random.default_rng(4)
    train = [_sample(rng) for _ in range(40)]
    fuser = Fuser(FusionConfig(modalities=["face", "audio"], steps=2, balance=True), TextConfig()).fit(train)
    face = np.concatenate([fuser.scalers_["face"](s.face) for s in train]) / np.sqrt(5)
    audio = np.concatenate([fuser.scalers_["audio"](s.audio) for s in train]) / np.sqrt(4)
    # total variance of every standardised block is its width; balancing brings both to 1
    assert np.isclose(face.var(0).sum(), 1.0, atol=1e-3) and np.isclose(audio.var(0).sum(), 1.0, atol=1e-3)
    x = fuser.transform(train[:1]).x
    expect = face[: len(train[0].face)]
    from mmfer.fusion import resample_steps

    assert np.allclose(x[0, :, :5], resample_steps(expect, 2), atol=1e-5)


def test_audio_stats_pooling() -> None:
    from mmfer.fusion import pool_stats

    a = np.arange(12, dtype=np.float32).reshape(6, 2)  # frames 0..5, two dims
    z = pool_stats(a, 2)  # segments = frames 0-2 and 3-5
    assert z.shape == (2, 8)
    seg = a[:3]
    assert np.allclose(z[0], np.concatenate([seg.mean(0), seg.std(0), seg.min(0), seg.max(0)]))
    assert pool_stats(a[:1], 3).shape == (3, 8) and np.all(pool_stats(a[:1], 3)[:, 2:4] == 0)

    rng = np.random.default_rng(5)
    train = [_sample(rng) for _ in range(10)]
    cfg = FusionConfig(modalities=["audio"], steps=2, audio_pool="stats", balance=False)
    fuser = Fuser(cfg, TextConfig()).fit(train)
    assert fuser.n_features == 4 * 4 + 1
    x = fuser.transform(train[:1]).x
    assert np.allclose(x[0, :, :16], fuser.scalers_["audio"](pool_stats(train[0].audio, 2)), atol=1e-5)
    # the scaler is fitted on the pooled statistics: every stats column is standardised on train
    pooled = fuser.transform(train).x[:, :, :16].reshape(-1, 16)
    assert np.allclose(pooled.mean(0), 0, atol=1e-4) and np.allclose(pooled.std(0), 1, atol=1e-3)
    clone = Fuser.from_state(fuser.get_state())
    assert np.allclose(clone.transform(train[:3]).x, fuser.transform(train[:3]).x)
