"""Voice front ends beyond MFCC: Whisper encoder (shipped weights, offline) and eGeMAPS."""

from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from mmfer.config import AudioConfig, FeatureConfig
from mmfer.data.table import make_table
from mmfer.errors import ConfigError, FeatureError
from mmfer.features import extractors
from mmfer.features.extract import extract_features
from mmfer.features.voice.dispatch import create_audio_extractor
from mmfer.features.voice.mfcc import MFCCExtractor

pytest.importorskip("ctranslate2")
pytest.importorskip("faster_whisper")

from mmfer.features.voice import whisper
from mmfer.features.voice.whisper import FRAME_RATE, WhisperEncoderExtractor, shipped_model_dir

SR = 16000


def speechy(seconds: float, seed: int = 0, sr: int = SR) -> np.ndarray:
    """A gliding harmonic tone with an amplitude envelope plus a little noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(round(seconds * sr)) / sr
    f0 = 120 + 60 * rng.random() + 25 * np.sin(2 * np.pi * 0.7 * t)  # (n,) Hz
    phase = 2 * np.pi * np.cumsum(f0) / sr
    voiced = sum(np.sin(k * phase) / k for k in range(1, 6))
    env = 0.5 + 0.5 * np.sin(2 * np.pi * 3 * t) ** 2
    return (0.2 * env * voiced + 0.005 * rng.standard_normal(t.size)).astype(np.float32)


@pytest.fixture(autouse=True)
def fresh_extractors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(extractors, "_PROCESS_EXTRACTORS", {})


@pytest.fixture(scope="module")
def ext() -> WhisperEncoderExtractor:
    return WhisperEncoderExtractor(AudioConfig(extractor="whisper"), threads=1)


def test_shipped_weights_are_found_offline_and_load(ext: WhisperEncoderExtractor) -> None:
    folder = shipped_model_dir()
    assert folder is not None and (folder / "model.bin").is_file() and (folder / "config.json").is_file()
    assert ext.model_dir == folder
    model = ext.model
    assert not model.is_multilingual  # tiny.en
    assert model.n_mels == 80
    # loaded once per process: a second extractor with the same settings shares the model
    assert WhisperEncoderExtractor(AudioConfig(extractor="whisper"), threads=1).model is model


def test_encoder_output_shape_and_frame_rate(ext: WhisperEncoderExtractor) -> None:
    assert FRAME_RATE == 50
    two_s = ext.transform_wave(speechy(2.0), SR)
    assert two_s.shape == (100, 384) and two_s.dtype == np.float32 and np.isfinite(two_s).all()
    # one frame per started 20 ms: a sample more adds a frame (padded by < 1 mel frame)
    assert ext.transform_wave(speechy(2.0 + 1 / SR), SR).shape == (101, 384)
    assert ext.transform_wave(speechy(0.05), SR).shape == (3, 384)
    # other rates are resampled to 16 kHz first: same duration, same frame count
    assert ext.transform_wave(speechy(2.0, sr=8000), 8000).shape == (100, 384)
    # the frames depend on the signal
    other = ext.transform_wave(speechy(2.0, seed=1), SR)
    assert not np.allclose(two_s, other)


def test_pad_30s_returns_only_the_clip_frames() -> None:
    cfg = AudioConfig(extractor="whisper", whisper_pad_30s=True)
    ext = WhisperEncoderExtractor(cfg, threads=1)
    short = WhisperEncoderExtractor(AudioConfig(extractor="whisper"), threads=1)
    y = speechy(1.0)
    padded, clip = ext.transform_wave(y, SR), short.transform_wave(y, SR)
    assert padded.shape == clip.shape == (50, 384)
    # different context (30 s window vs the clip alone) gives related but not equal frames
    assert not np.allclose(padded, clip)
    assert np.corrcoef(padded.ravel(), clip.ravel())[0, 1] > 0.5


def test_cache_key_names_extractor_options_and_model(tmp_path: Path, ext: WhisperEncoderExtractor) -> None:
    d = ext.config_dict()
    assert d["extractor"] == "whisper" and len(d["model_sha256"]) == 64
    base = AudioConfig(extractor="whisper")
    for change in ({"whisper_compute_type": "float32"}, {"whisper_pad_30s": True}, {"max_seconds": 5.0}):
        assert WhisperEncoderExtractor(dataclasses.replace(base, **change)).config_dict() != d, change
    # threads change speed, not the features: same key
    assert WhisperEncoderExtractor(dataclasses.replace(base, whisper_threads=3)).config_dict() == d
    # another model folder (even one byte different) is another key
    folder = shipped_model_dir()
    assert folder is not None
    copy = tmp_path / "model"
    copy.mkdir()
    for f in folder.iterdir():
        if f.is_file():
            os.symlink(f, copy / f.name)
    (copy / "config.json").unlink()
    (copy / "config.json").write_text((folder / "config.json").read_text() + "\n")
    moved = WhisperEncoderExtractor(dataclasses.replace(base, whisper_model=str(copy))).config_dict()
    assert moved["model_sha256"] != d["model_sha256"]
    # MFCC keys ignore the Whisper options (entries made before they existed stay valid)
    m = MFCCExtractor(AudioConfig(extractor="mfcc")).config_dict()
    assert m == MFCCExtractor(AudioConfig(extractor="auto", whisper_pad_30s=True)).config_dict()
    assert "whisper_pad_30s" not in m and m["extractor"] == "mfcc"


def test_torch_port_matches_ctranslate2_and_exposes_layers() -> None:
    pytest.importorskip("torch")
    y = speechy(1.0)
    ct2 = WhisperEncoderExtractor(AudioConfig(extractor="whisper", whisper_compute_type="float32"), threads=1)
    ref = ct2.transform_wave(y, SR)  # (50, 384) CTranslate2 float32, final LayerNorm
    from mmfer.features.voice.whisper_torch import encode_layers, load_encoder

    folder = shipped_model_dir()
    assert folder is not None
    states = encode_layers(load_encoder(folder), ct2._log_mel(y)[None])
    assert len(states) == 5 and all(s.shape == (50, 384) for s in states)  # 4 blocks + final
    np.testing.assert_allclose(states[-1], ref, atol=2e-3)  # same weights, same computation
    # an inner layer through the extractor option: same frames, different features
    inner = WhisperEncoderExtractor(AudioConfig(extractor="whisper", whisper_layer=1), threads=1)
    got = inner.transform_wave(y, SR)
    assert got.shape == (50, 384)
    np.testing.assert_allclose(got, states[1], atol=1e-5)
    assert inner.config_dict() != ct2.config_dict() and inner.config_dict()["layer"] == 1
    with pytest.raises(FeatureError, match="has 4 blocks"):
        WhisperEncoderExtractor(AudioConfig(extractor="whisper", whisper_layer=9)).transform_wave(y, SR)
    with pytest.raises(ConfigError, match="whisper_layer"):
        WhisperEncoderExtractor(AudioConfig(extractor="whisper", whisper_layer=-2))


def test_factory_dispatch() -> None:
    assert isinstance(create_audio_extractor(AudioConfig(extractor="mfcc")), MFCCExtractor)
    assert isinstance(create_audio_extractor(AudioConfig(extractor="whisper")), WhisperEncoderExtractor)
    with pytest.raises(ConfigError, match="whisper_compute_type"):
        WhisperEncoderExtractor(AudioConfig(whisper_compute_type="int4"))  # type: ignore[arg-type]


def _table(root: Path, clips: dict[str, np.ndarray]) -> object:
    root.mkdir(parents=True, exist_ok=True)
    records = []
    for sid, y in clips.items():
        p = root / f"{sid}.wav"
        sf.write(p, y, SR)
        records.append({"id": sid, "speaker": "a", "emotion": "happy", "audio": str(p)})
    return make_table(records, corpus="t", root=root)


def test_extraction_masks_silent_and_corrupt_audio(tmp_path: Path) -> None:
    table = _table(tmp_path / "data", {"ok": speechy(1.0), "quiet": np.zeros(SR, dtype=np.float32)})
    bad = tmp_path / "data" / "bad.wav"
    bad.write_bytes(b"RIFF not really a wave file")
    table.loc[len(table)] = {**table.iloc[0].to_dict(), "id": "bad", "audio": str(bad)}
    cfg = FeatureConfig(audio=AudioConfig(extractor="whisper"))
    feats = extract_features(table, cfg, tmp_path / "cache", modalities=("audio",), progress=False)
    assert feats["ok"].audio.shape == (50, 384) and feats["ok"].issues == {}
    assert feats["quiet"].audio is None and "silent audio" in feats["quiet"].issues["audio"]
    assert feats["bad"].audio is None and "cannot decode audio" in feats["bad"].issues["audio"]
    # same silence rule as MFCC: both mask the same clips
    mfcc = FeatureConfig(audio=AudioConfig(extractor="mfcc"))
    m = extract_features(table, mfcc, tmp_path / "cache", modalities=("audio",), progress=False)
    assert {k for k, f in m.items() if f.audio is None} == {"quiet", "bad"}


@pytest.mark.parametrize("damage", ["missing", "corrupt"])
def test_missing_or_corrupt_model_masks_audio_with_reason(tmp_path: Path, damage: str) -> None:
    folder = tmp_path / "whisper-model"
    if damage == "corrupt":
        folder.mkdir()
        shipped = shipped_model_dir()
        assert shipped is not None
        shutil.copy(shipped / "config.json", folder / "config.json")
        (folder / "model.bin").write_bytes(np.random.default_rng(0).bytes(4096))
    table = _table(tmp_path / "data", {"c0": speechy(0.5), "c1": speechy(0.5, seed=1)})
    cfg = FeatureConfig(audio=AudioConfig(extractor="whisper", whisper_model=str(folder)))
    feats = extract_features(table, cfg, tmp_path / "cache", modalities=("audio",), progress=False)
    for sid in ("c0", "c1"):
        f = feats[sid]
        assert f.audio is None
        reason = f.issues["audio"]
        assert f"{sid}.wav" in reason and "cannot load the Whisper model" in reason and str(folder) in reason
    # strict mode raises the same, naming the file
    with pytest.raises(FeatureError, match="cannot load the Whisper model"):
        extract_features(
            table,
            dataclasses.replace(cfg, strict=True),
            tmp_path / "cache2",
            modalities=("audio",),
            progress=False,
        )


def test_missing_runtime_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    real = whisper.importlib.util.find_spec
    monkeypatch.setattr(
        whisper.importlib.util, "find_spec", lambda name: None if name == "ctranslate2" else real(name)
    )
    with pytest.raises(ConfigError, match=r"ctranslate2.*audio\.extractor=mfcc"):
        WhisperEncoderExtractor(AudioConfig(extractor="whisper"))


@pytest.mark.slow
def test_pool_workers_give_the_same_frames(tmp_path: Path) -> None:
    table = _table(tmp_path / "data", {f"c{i}": speechy(0.6, seed=i) for i in range(3)})
    # One CTranslate2 thread either way: int8 GEMMs on 1 vs N threads round differently
    # (up to ~0.1 here), and the default thread count follows the machine's load, so the
    # only difference left between the two runs is the number of worker processes.
    one = FeatureConfig(audio=AudioConfig(extractor="whisper", whisper_threads=1), workers=1)
    two = dataclasses.replace(one, workers=2)
    a = extract_features(table, one, tmp_path / "c1", modalities=("audio",), progress=False)
    b = extract_features(table, two, tmp_path / "c2", modalities=("audio",), progress=False)
    for sid in a:
        np.testing.assert_allclose(a[sid].audio, b[sid].audio, rtol=1e-4, atol=1e-4)


# --------------------------------------------------------------------------- eGeMAPS


def test_egemaps_functionals() -> None:
    pytest.importorskip("opensmile")
    from mmfer.features.voice.egemaps import EGeMAPSExtractor

    ext = create_audio_extractor(AudioConfig(extractor="egemaps"))
    assert isinstance(ext, EGeMAPSExtractor)
    f = ext.transform_wave(speechy(1.5), SR)
    assert f.shape == (1, 88) and f.dtype == np.float32 and np.isfinite(f).all()
    assert not np.allclose(f, ext.transform_wave(speechy(1.5, seed=3), SR))
    assert ext.config_dict()["extractor"] == "egemaps"


def test_egemaps_missing_package_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    from mmfer.features.voice.egemaps import EGeMAPSExtractor

    real_import = builtins.__import__

    def no_opensmile(name: str, *args: object, **kwargs: object) -> object:
        if name == "opensmile":
            raise ImportError("No module named 'opensmile'")
        return real_import(name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(builtins, "__import__", no_opensmile)
    with pytest.raises(ConfigError, match=r"pip install 'mmfer\[egemaps\]'"):
        EGeMAPSExtractor(AudioConfig(extractor="egemaps"))


def test_several_layers_in_one_pass_and_frame_pooling() -> None:
    pytest.importorskip("torch")
    y = speechy(1.0)

    def alone(i: int) -> np.ndarray:
        ext = WhisperEncoderExtractor(AudioConfig(extractor="whisper", whisper_layer=i), threads=1)
        return ext.transform_wave(y, SR)  # (50, 384)

    one = {i: alone(i) for i in (0, 2)}
    multi = WhisperEncoderExtractor(AudioConfig(extractor="whisper", whisper_layers=[2, 0, -1]), threads=1)
    got = multi.transform_wave(y, SR)
    assert got.shape == (50, 3 * 384)
    # blocks in the order asked for, each the same frames as that layer alone
    np.testing.assert_allclose(got[:, :384], one[2], atol=1e-5)
    np.testing.assert_allclose(got[:, 384:768], one[0], atol=1e-5)
    key = multi.config_dict()
    assert key["layer"] == [2, 0, -1] and key["backend"].startswith("torch-port")
    # pooling 5 frames -> 10 frames/s, each the mean of its group
    pooled = WhisperEncoderExtractor(
        AudioConfig(extractor="whisper", whisper_layers=[2, 0, -1], whisper_frame_pool=5), threads=1
    )
    p = pooled.transform_wave(y, SR)
    assert p.shape == (10, 3 * 384)
    np.testing.assert_allclose(p[3], got[15:20].mean(axis=0), atol=1e-4)
    assert pooled.config_dict() != key and pooled.config_dict()["frame_pool"] == 5
    # a single final layer keeps its old (CTranslate2) cache key
    assert "frame_pool" not in WhisperEncoderExtractor(AudioConfig(extractor="whisper")).config_dict()
    with pytest.raises(ConfigError, match="without repeats"):
        WhisperEncoderExtractor(AudioConfig(extractor="whisper", whisper_layers=[1, 1]))
    with pytest.raises(ConfigError, match="whisper_frame_pool"):
        WhisperEncoderExtractor(AudioConfig(extractor="whisper", whisper_frame_pool=0))


def test_pool_frames_uneven_tail() -> None:
    from mmfer.features.voice.whisper import pool_frames

    a = np.arange(14, dtype=np.float32).reshape(7, 2)  # (7, 2)
    p = pool_frames(a, 3)  # groups of 3, 3, 1
    assert p.shape == (3, 2)
    np.testing.assert_allclose(p[:, 0], [2.0, 8.0, 12.0])
    assert pool_frames(a, 1) is a
