from __future__ import annotations

from dataclasses import dataclass, field, replace

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


# --------------------------------------------------------------------------- masks, clipstats


def _audio_only(frames: list[np.ndarray]) -> list[F]:
    return [F(None, a, None) for a in frames]


def test_short_audio_clip_masks_extra_steps_instead_of_repeating() -> None:
    rng = np.random.default_rng(6)
    train = _audio_only(
        [rng.normal(size=(int(rng.integers(8, 30)), 3)).astype(np.float32) for _ in range(10)]
    )
    short = rng.normal(size=(2, 3)).astype(np.float32)  # 2 frames, 4 steps
    for pool in ("mean", "stats"):
        fuser = Fuser(FusionConfig(modalities=["audio"], steps=4, audio_pool=pool), TextConfig()).fit(train)
        fb = fuser.transform([*_audio_only([short]), train[0]])
        assert fb.mask.tolist() == [[True, True, False, False], [True, True, True, True]]
        assert np.all(fb.x[0, 2:] == 0)  # masked steps carry nothing, not repeated frames
        assert np.all(fb.x[0, :2, -1] == 1)  # presence flag on the valid steps
        if pool == "mean":  # one frame per valid step, standardised and balanced
            d = fuser.dims_["audio"]
            want = fuser.scalers_["audio"](short) / np.sqrt(d)
            np.testing.assert_allclose(fb.x[0, :2, :3], want, rtol=1e-6, atol=1e-6)
    # with a sequence that fills every step (face), all steps stay valid; audio is zero after its frames
    both = [F(rng.normal(size=(5, 2)).astype(np.float32), a.audio, None) for a in train]
    fuser = Fuser(FusionConfig(modalities=["face", "audio"], steps=4), TextConfig()).fit(both)
    fb = fuser.transform([F(rng.normal(size=(5, 2)).astype(np.float32), short, None)])
    assert fb.mask.all() and np.all(fb.x[0, 2:, 2:5] == 0)


def test_clipstats_gives_whole_clip_mean_and_std() -> None:
    rng = np.random.default_rng(7)
    frames = [rng.normal(loc=i % 3, size=(int(rng.integers(1, 40)), 3)).astype(np.float32) for i in range(12)]
    cfg = FusionConfig(modalities=["audio"], steps=3, audio_pool="clipstats", balance=False)
    fuser = Fuser(cfg, TextConfig()).fit(_audio_only(frames))
    assert fuser.dims_ == {"audio": 6} and fuser.n_features == 7
    fb = fuser.transform(_audio_only(frames))
    assert fb.mask.all()  # one-frame clips too: the statistics fill every step
    raw = np.stack([np.concatenate([a.mean(0), a.std(0)]) for a in frames])  # (N, 6)
    want = (raw - raw.mean(0)) / raw.std(0)  # standardised on the (training) clips' statistics
    for s in range(3):
        np.testing.assert_allclose(fb.x[:, s, :6], want, rtol=1e-4, atol=1e-4)
    clone = Fuser.from_state(fuser.get_state())
    np.testing.assert_array_equal(clone.transform(_audio_only(frames[:2])).x, fb.x[:2])


# --------------------------------------------------------------------------- speaker normalisation


def _speaker_data(rng: np.random.Generator, speakers: list[str], per: int = 4) -> tuple[list[F], list[str]]:
    feats, spk = [], []
    for k, s in enumerate(speakers):
        offset = 5.0 * (k + 1)  # a per-speaker "voice" offset and scale
        for _ in range(per):
            a = (offset + (k + 1) * rng.normal(size=(int(rng.integers(6, 20)), 3))).astype(np.float32)
            feats.append(F(None, a, None))
            spk.append(s)
    return feats, spk


def test_speaker_norm_needs_speakers() -> None:
    rng = np.random.default_rng(8)
    feats, spk = _speaker_data(rng, ["a", "b"])
    fuser = Fuser(FusionConfig(modalities=["audio"], steps=2, speaker_norm=True), TextConfig())
    with pytest.raises(ConfigError, match="speaker_norm"):
        fuser.fit(feats)
    with pytest.raises(ConfigError, match="speaker ids"):
        fuser.fit(feats, speakers=spk[:-1])
    fuser.fit(feats, speakers=spk)
    with pytest.raises(ConfigError, match="speaker_norm"):
        fuser.transform(feats)


def test_speaker_norm_uses_each_speakers_own_rows_only() -> None:
    rng = np.random.default_rng(9)
    train, train_spk = _speaker_data(rng, ["a", "b", "c"])
    test, test_spk = _speaker_data(rng, ["x", "y"])
    cfg = FusionConfig(modalities=["audio"], steps=2, audio_pool="clipstats", speaker_norm=True)
    fuser = Fuser(cfg, TextConfig()).fit(train, speakers=train_spk)
    state = fuser.get_state()
    # each training speaker's frames are z-normalised with its own statistics before fitting
    normed = []
    for s in ("a", "b", "c"):
        rows = [f.audio for f, k in zip(train, train_spk, strict=True) if k == s]
        allf = np.concatenate(rows).astype(np.float64)
        normed += [(r - allf.mean(0)) / allf.std(0) for r in rows]
    stats = np.stack([np.concatenate([r.mean(0), r.std(0)]) for r in normed])
    np.testing.assert_allclose(fuser.scalers_["audio"].mean, stats.mean(0), rtol=1e-5, atol=1e-5)

    both = fuser.transform(test, speakers=test_spk).x
    only_x = [i for i, k in enumerate(test_spk) if k == "x"]
    alone = fuser.transform([test[i] for i in only_x], speakers=["x"] * len(only_x)).x
    # speaker x's rows do not depend on the other speakers transformed with them
    np.testing.assert_allclose(both[only_x], alone, rtol=1e-6, atol=1e-6)
    # a speaker-wide offset and scale (the "voice") is removed
    shifted = [F(None, (3.0 * test[i].audio + 100.0).astype(np.float32), None) for i in only_x]
    np.testing.assert_allclose(
        fuser.transform(shifted, speakers=["x"] * len(only_x)).x, alone, rtol=1e-3, atol=1e-3
    )
    # nothing about the transformed (test) speakers is stored
    assert fuser.get_state() == state and state["speaker_norm"] is True
    clone = Fuser.from_state(state)
    np.testing.assert_array_equal(clone.transform(test, speakers=test_spk).x, both)


def test_speaker_norm_fit_sees_only_given_rows() -> None:
    rng = np.random.default_rng(10)
    train, train_spk = _speaker_data(rng, ["a", "b"])
    cfg = FusionConfig(modalities=["audio"], steps=2, speaker_norm=True)
    ref = Fuser(cfg, TextConfig()).fit(train, speakers=train_spk).get_state()
    # the same rows in another order (and an unrelated later transform) give the same fitted state
    order = rng.permutation(len(train))
    again = Fuser(cfg, TextConfig()).fit([train[i] for i in order], speakers=[train_spk[i] for i in order])
    again.transform(_speaker_data(rng, ["z"])[0], speakers=["z"] * 4)
    got = again.get_state()
    np.testing.assert_allclose(got["scalers"]["audio"]["mean"], ref["scalers"]["audio"]["mean"], atol=1e-9)
    np.testing.assert_allclose(got["scalers"]["audio"]["std"], ref["scalers"]["audio"]["std"], atol=1e-9)


@dataclass
class _AudioOnly:
    audio: np.ndarray | None
    face: np.ndarray | None = None
    text: str = ""


def test_audio_layers_view_keeps_chosen_blocks() -> None:
    rng = np.random.default_rng(0)
    # 3 blocks of width 4; block b of every frame is filled with b + noise
    feats = [
        _AudioOnly(
            np.concatenate([b + 0.01 * rng.standard_normal((6, 4)) for b in range(3)], axis=1).astype(
                np.float32
            )
        )
        for _ in range(5)
    ]
    cfg = FusionConfig(modalities=["audio"], steps=2, standardise=False, balance=False)
    full = Fuser(cfg, TextConfig()).fit(feats)
    assert full.n_features == 12 + 1  # three blocks + the presence flag
    view = Fuser(replace(cfg, audio_layers=[2, 0], audio_block=4), TextConfig()).fit(feats)
    x = view.transform(feats).x  # (5, 2, 8 + 1)
    assert x.shape == (5, 2, 9)
    assert view.n_features == 8 + 1
    assert np.all(np.abs(x[..., :4] - 2.0) < 0.1) and np.all(np.abs(x[..., 4:8]) < 0.1)
    again = Fuser.from_state(view.get_state())
    np.testing.assert_array_equal(again.transform(feats).x, x)
    with pytest.raises(ConfigError, match="audio_block"):
        Fuser(replace(cfg, audio_layers=[3], audio_block=4), TextConfig()).fit(feats)
    with pytest.raises(ConfigError, match="audio_block"):
        Fuser(replace(cfg, audio_layers=[0], audio_block=5), TextConfig()).fit(feats)


def test_frame_normalisation_uses_each_frame_only() -> None:
    from mmfer.fusion.fuser import frame_normalise

    rng = np.random.default_rng(1)
    a = rng.standard_normal((5, 8)).astype(np.float32)
    out = frame_normalise(a, 4)  # two 4-wide blocks per frame
    blocks = out.reshape(5, 2, 4)
    assert np.allclose(blocks.mean(axis=2), 0, atol=1e-5) and np.allclose(blocks.std(axis=2), 1, atol=1e-4)
    # a frame's result does not depend on the other frames, and a gain on the clip cancels
    np.testing.assert_allclose(frame_normalise(a[2:3], 4), out[2:3], atol=1e-6)
    np.testing.assert_allclose(frame_normalise(7.0 * a + 3.0, 4), out, atol=1e-4)
    feats = [_AudioOnly(a), _AudioOnly(3 * a)]
    cfg = FusionConfig(modalities=["audio"], steps=1, standardise=False, balance=False)
    on = Fuser(replace(cfg, audio_norm="frame", audio_block=4), TextConfig()).fit(feats)
    x = on.transform(feats).x
    np.testing.assert_allclose(x[0], x[1], atol=1e-5)  # the clip-level gain is gone
    assert Fuser.from_state(on.get_state()).cfg.audio_norm == "frame"
