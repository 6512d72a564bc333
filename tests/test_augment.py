"""Train-time voice augmentation (issue 20): copies are deterministic, cached as units, train-only."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from mmfer import pipeline as pl
from mmfer.config import AugmentConfig, ExperimentConfig, FeatureConfig, load_config
from mmfer.errors import ConfigError, ModalityMissing
from mmfer.evaluation.audit import FitRecord, audit_folds, source_id
from mmfer.features.cache import FeatureCache
from mmfer.features.extract import extract_features, keyed_units
from mmfer.features.extractors import Extractors
from mmfer.features.units import AUGMENTED_KIND, SampleFeatures, Unit, plan_augmented, plan_units
from mmfer.features.voice.augment import MIN_AUGMENT_SECONDS, augment_wave

SR = 16000


def _voice(seconds: float = 1.5, f0: float = 180.0, seed: int = 0) -> np.ndarray:
    """``(n,)`` float32 harmonic tone with a little noise (a stand-in for a voiced clip)."""
    t = np.arange(int(seconds * SR)) / SR
    rng = np.random.default_rng(seed)
    w = sum(0.2 / k * np.sin(2 * np.pi * f0 * k * t) for k in range(1, 5)) + 0.01 * rng.normal(size=t.size)
    return np.asarray(w, dtype=np.float32)


# --------------------------------------------------------------------------- the waveform


def test_copy_is_deterministic_per_content_copy_and_seed() -> None:
    w, cfg = _voice(), AugmentConfig(copies=3, noise_p=1.0)
    a1, again = augment_wave(w, SR, cfg, 1), augment_wave(w.copy(), SR, cfg, 1)
    assert np.array_equal(a1, again)  # same clip, copy and seed: bit-identical (cache hits on rerun)
    a2 = augment_wave(w, SR, cfg, 2)
    other_seed = augment_wave(w, SR, replace(cfg, seed=1), 1)
    for b in (a2, other_seed):
        n = min(a1.size, b.size)
        assert a1.size != b.size or np.max(np.abs(a1[:n] - b[:n])) > 1e-3
    # the global generators are left as they were
    np.random.seed(123)  # noqa: NPY002
    before = np.random.random()  # noqa: NPY002
    np.random.seed(123)  # noqa: NPY002
    augment_wave(w, SR, cfg, 1)
    assert np.random.random() == before  # noqa: NPY002


def test_copy_is_finite_and_keeps_its_length_class() -> None:
    w = _voice(2.0)
    stretch = AugmentConfig(copies=1, stretch_p=1.0, noise_p=0.0, gain_p=0.0, pitch_p=0.0)
    lengths = [augment_wave(w, SR, stretch, k).size for k in range(1, 9)]
    # rate r in [0.9, 1.1] -> length n / r, within a few windows of slack
    assert all(w.size / 1.1 - 0.02 * SR <= n <= w.size / 0.9 + 0.02 * SR for n in lengths)
    assert len(set(lengths)) > 1  # the rate is drawn per copy
    no_stretch = AugmentConfig(copies=1, noise_p=1.0, gain_p=1.0, pitch_p=1.0, stretch_p=0.0)
    for k in range(1, 5):
        a = augment_wave(w, SR, no_stretch, k)
        assert a.dtype == np.float32 and a.shape == w.shape and np.all(np.isfinite(a))
        # gain <= 6 dB and noise at >= 5 dB SNR: the level stays within ~ +-8 dB of the clip's
        ratio_db = 20 * np.log10(np.sqrt(np.mean(a.astype(np.float64) ** 2)) / np.sqrt(np.mean(w**2)))
        assert -8.0 < ratio_db < 8.0
        assert np.max(np.abs(a - w)) > 1e-3  # every transform on: the copy differs


def test_silent_or_too_short_clip_is_refused_with_a_reason() -> None:
    cfg = AugmentConfig(copies=1)
    with pytest.raises(ModalityMissing, match="too short"):
        augment_wave(_voice(MIN_AUGMENT_SECONDS / 2), SR, cfg, 1, source="short.wav")
    with pytest.raises(ModalityMissing, match="silent"):
        augment_wave(np.zeros(SR, dtype=np.float32), SR, cfg, 1)
    with pytest.raises(ValueError):
        augment_wave(_voice(), SR, cfg, 0)


def test_config_is_validated() -> None:
    with pytest.raises(ConfigError, match="copies"):
        AugmentConfig(copies=-1)
    with pytest.raises(ConfigError, match="noise_p"):
        AugmentConfig(noise_p=1.5)
    with pytest.raises(ConfigError, match="stretch_min_rate"):
        AugmentConfig(stretch_min_rate=1.2, stretch_max_rate=1.1)
    cfg = load_config(None, ["features.augment.copies=2", "features.augment.gain_db=3"])
    assert cfg.features.augment.copies == 2 and cfg.features.augment.gain_db == 3.0


# --------------------------------------------------------------------------- units and cache keys


def _wav(path: Path, wave: np.ndarray) -> str:
    sf.write(path, wave, SR)
    return str(path)


def _mfcc(copies: int, **aug: object) -> FeatureConfig:
    return replace(
        FeatureConfig(profile="paper"), augment=AugmentConfig(copies=copies, **aug)
    )  # MFCC: fast and stateless


def test_cache_key_holds_the_augmentation_config_and_the_copy(tmp_path: Path) -> None:
    clip = _wav(tmp_path / "a.wav", _voice())
    cache = FeatureCache(tmp_path / "cache")

    def keys(cfg: FeatureConfig, copies: int) -> dict[tuple[str, int], str]:
        units = [Unit("a", "audio", "audio", clip)]
        units += plan_augmented(units, copies)
        return {(u.kind, u.variant): u.key for u, err in keyed_units(units, cache, Extractors(cfg))}

    base = keys(_mfcc(2), 2)
    assert set(base) == {("audio", 0), (AUGMENTED_KIND, 1), (AUGMENTED_KIND, 2)}
    assert len(set(base.values())) == 3
    # the real clip's key does not depend on the augmentation at all
    assert keys(_mfcc(0), 0)[("audio", 0)] == base[("audio", 0)]
    # copy k keeps its key when more copies are asked for (cached copies are reused) ...
    more = keys(_mfcc(3), 3)
    assert more[(AUGMENTED_KIND, 2)] == base[(AUGMENTED_KIND, 2)]
    # ... and gets a new one when any augmentation setting changes
    for change in ({"seed": 1}, {"gain_db": 3.0}, {"noise_p": 0.1}, {"stretch_max_rate": 1.2}):
        assert keys(_mfcc(2, **change), 2)[(AUGMENTED_KIND, 1)] != base[(AUGMENTED_KIND, 1)], change


def test_extraction_caches_copies_and_masks_only_the_copies_of_a_short_clip(tmp_path: Path) -> None:
    table = pd.DataFrame(
        {
            "id": ["long", "short"],
            "audio": [_wav(tmp_path / "long.wav", _voice()), _wav(tmp_path / "short.wav", _voice(0.06))],
        }
    )
    cfg = _mfcc(2)
    feats = extract_features(table, cfg, tmp_path / "cache", modalities=["audio"], progress=False)
    long, short = feats["long"], feats["short"]
    assert long.audio is not None and sorted(long.audio_aug) == [1, 2]
    assert all(a.shape[1] == long.audio.shape[1] and np.all(np.isfinite(a)) for a in long.audio_aug.values())
    assert not np.allclose(long.audio_aug[1][:10], long.audio_aug[2][:10])
    # the short clip keeps its own audio; its copies are left out, with the reason noted
    assert short.audio is not None and short.audio_aug == {} and "audio" not in short.issues
    assert "too short to augment" in short.notes["audio_aug"]
    n_entries = len(FeatureCache(tmp_path / "cache").keys())
    assert n_entries == 6  # 2 clips x (audio + 2 copies), failures cached too
    again = extract_features(table, cfg, tmp_path / "cache", modalities=["audio"], progress=False)
    assert all(np.array_equal(again["long"].audio_aug[k], long.audio_aug[k]) for k in (1, 2))
    assert len(FeatureCache(tmp_path / "cache").keys()) == n_entries  # all read back
    off = extract_features(table, _mfcc(0), tmp_path / "cache", modalities=["audio"], progress=False)
    assert off["long"].audio_aug == {} and np.array_equal(off["long"].audio, long.audio)
    assert plan_units(table, ["audio"]) == [u for u in plan_units(table, ["audio"]) if u.variant == 0]


# --------------------------------------------------------------------------- fitting: train rows only


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> tuple[pd.DataFrame, dict[str, SampleFeatures]]:
    """The synthetic corpus (4 speakers x 3 emotions x 2 clips), MFCC audio with 2 copies."""
    tmp = tmp_path_factory.mktemp("aug")
    cfg = _experiment(2, tmp)
    table = pl.load_corpus(cfg.data)
    feats = pl.extract(table, cfg.features, tmp / "cache", ["audio"], progress=False)
    return table, feats


def _experiment(copies: int, tmp: Path | None = None) -> ExperimentConfig:
    over = [
        "data.synthetic_speakers=4",
        "data.synthetic_clips_per_emotion=2",
        "data.emotions=[happy, sad, angry]",
        "features.profile=paper",
        f"features.augment.copies={copies}",
        "fusion.modalities=[audio]",
        "fusion.steps=2",
        "eval.protocol=loso",
        "eval.select_budget=2",
        "eval.inner_folds=2",
        "train.progress=false",
    ]
    if tmp is not None:
        over.append(f"data.root={tmp / 'corpus'}")
    return load_config(None, over)


def test_fit_rows_adds_copies_of_training_rows_only(synthetic: tuple[pd.DataFrame, dict]) -> None:
    table, feats = synthetic
    cfg = _experiment(2)
    rows = np.arange(0, len(table), 2)  # every other row; the rest play "test"
    ids = set(table["id"].astype(str).to_numpy()[rows])
    labels = sorted(set(table["emotion"]))
    rec = pl.fit_rows(
        table,
        feats,
        rows,
        labels=labels,
        estimator=pl.make_estimator("logreg", cfg.model, cfg.train),
        fusion_cfg=cfg.fusion,
        text_cfg=cfg.features.text,
        features_cfg=cfg.features,
    )
    assert rec.fuser.fitted_on_ == ids  # the standardiser saw the real rows only
    seen = rec.estimator.fitted_on_
    assert seen == ids | {f"{i}#aug{k}" for i in ids for k in (1, 2)}
    assert len(seen) == 3 * len(rows)  # exactly copies x n extra rows
    assert {source_id(i) for i in seen} == ids  # no row outside `rows`, real or copied


def test_cross_validation_never_copies_a_test_or_validation_row(synthetic: tuple[pd.DataFrame, dict]) -> None:
    table, feats = synthetic
    _, audit = pl.cross_validate(table, feats, _experiment(2), model_name="logreg", modalities=["audio"])
    assert audit.leaking_components == []
    est = next(c for c in audit.components if c.component == "estimator logreg")
    fus = next(c for c in audit.components if c.component.startswith("fuser"))
    assert est.rows_fitted == 3 * fus.rows_fitted
    # every fit (outer and inner) holds copies of its own real rows only, two of each: the inner
    # validation rows and the outer test rows of its fold are never among them
    records: list[FitRecord] = []
    setup, splits = pl.prepare_cv(table, feats, _experiment(2), model_name="logreg", modalities=["audio"])
    for k, (tr, _te) in enumerate(splits):
        pl.fit_fold(setup, feats, k, tr, records)
    ids = table["id"].astype(str).to_numpy()
    for r in records:
        real = {i for i in r.ids if "#aug" not in i}
        copies = [i for i in r.ids if "#aug" in i]
        assert real <= set(ids[splits[r.fold][0]])
        if "estimator" in r.component:
            assert {source_id(i) for i in copies} == real and len(copies) == 2 * len(real)
        else:
            assert copies == []  # fusers are fitted on real rows
    assert any(r.component.startswith("inner estimator") for r in records)


def test_copies_zero_changes_nothing(synthetic: tuple[pd.DataFrame, dict]) -> None:
    table, feats = synthetic
    bare = {i: replace(f, audio_aug={}) for i, f in feats.items()}
    # copies=0 with copies present in the features, and features without copies: the same run
    a, _ = pl.cross_validate(table, feats, _experiment(0), model_name="logreg", modalities=["audio"])
    b, _ = pl.cross_validate(table, bare, _experiment(0), model_name="logreg", modalities=["audio"])
    assert a.fold_metrics == b.fold_metrics and a.y_pred == b.y_pred
    c, _ = pl.cross_validate(table, feats, _experiment(2), model_name="logreg", modalities=["audio"])
    assert c.fold_metrics != a.fold_metrics  # the copies do change the fit when asked for


def test_audit_counts_a_copy_of_a_test_row_as_that_row() -> None:
    table = pd.DataFrame({"id": ["a", "b", "c", "d"], "speaker": ["x", "x", "y", "y"]})
    splits = [(np.array([0, 1]), np.array([2, 3]))]
    clean = FitRecord(0, "estimator", frozenset({"a", "b", "a#aug1", "b#aug1"}))
    leaky = FitRecord(0, "leaky", frozenset({"a", "b", "c#aug1"}))
    audit = audit_folds(table, splits, [clean, leaky])
    assert [(c.component, c.rows_fitted, c.test_rows_seen) for c in audit.components] == [
        ("estimator", 4, 0),
        ("leaky", 3, 1),
    ]


def test_neural_early_stopping_scores_real_rows_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Copies of the held-out validation speakers' clips are neither trained on nor scored."""
    import mmfer.training as tr
    from mmfer.estimators import create_estimator

    sizes: list[tuple[int, int]] = []
    orig = tr.Trainer.fit

    def spy(self, module, train, val, **kw):  # type: ignore[no-untyped-def]
        sizes.append((len(train), 0 if val is None else len(val)))
        return orig(self, module, train, val, **kw)

    monkeypatch.setattr(tr.Trainer, "fit", spy)
    rng = np.random.default_rng(0)
    n = 40
    y = np.arange(n) % 2
    x = rng.normal(size=(2 * n, 2, 3)).astype(np.float32)  # n real rows, then one copy each
    speakers = np.array([f"spk{i % 8}" for i in range(n)] * 2)
    ids = [f"r{i}" for i in range(n)] + [f"r{i}#aug1" for i in range(n)]
    est = create_estimator("mlp").clone(epochs=1, patience=2, val_fraction=0.25, hidden_size=4)
    mask = np.ones((2 * n, 2), dtype=bool)
    est.fit(x, mask, np.concatenate([y, y]), num_classes=2, groups=speakers, ids=ids)
    ((n_train, n_val),) = sizes
    # 2 of 8 speakers held out: their 10 real rows are scored, their 10 copies dropped
    assert (n_train, n_val) == (60, 10)


def test_augment_corpora_limits_which_clips_get_copies() -> None:
    import pandas as pd

    from mmfer.config import AugmentConfig, FeatureConfig
    from mmfer.features.extract import _augmentable
    from mmfer.features.units import Unit, plan_augmented
    from mmfer.features.voice.augment import augment_key

    table = pd.DataFrame({"id": ["a", "b", "c"], "corpus": ["ravdess", "cremad", "ravdess"]})
    units = [Unit(i, "audio", "audio", f"{i}.wav") for i in table["id"]]
    cfg = FeatureConfig(augment=AugmentConfig(copies=2, corpora=["ravdess"]))
    picked = plan_augmented(_augmentable(units, table, cfg), 2)
    assert sorted({u.sample_id for u in picked}) == ["a", "c"] and len(picked) == 4
    every = FeatureConfig(augment=AugmentConfig(copies=2))
    assert len(plan_augmented(_augmentable(units, table, every), 2)) == 6
    # which corpora get copies does not change what a copy is (its cache key)
    assert augment_key(cfg.augment) == augment_key(every.augment)
