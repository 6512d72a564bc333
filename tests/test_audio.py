"""Audio branch: mel scale (eq. 6), MFCC pipeline, decoding and error handling."""

from __future__ import annotations

import dataclasses
import os
import sys
import types
from pathlib import Path

import librosa
import numpy as np
import pytest
import scipy.fft
import soundfile as sf

from mmfer.config import AudioConfig
from mmfer.errors import FeatureError, ModalityMissing
from mmfer.features.voice.loading import load_audio, loud_level_dbfs, rms_dbfs
from mmfer.features.voice.mfcc import MFCCExtractor

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def tone(freqs: list[float], seconds: float, sr: int, amp: float = 0.3) -> np.ndarray:
    t = np.arange(round(seconds * sr)) / sr
    return (amp * sum(np.sin(2 * np.pi * f * t) for f in freqs) / len(freqs)).astype(np.float32)


def eq6(f: np.ndarray) -> np.ndarray:
    """The paper's mel scale, eq. 6."""
    return 2595.0 * np.log10(1.0 + f / 700.0)


def test_htk_mel_scale_is_eq6() -> None:
    f = np.array([0.0, 100.0, 440.0, 1000.0, 2500.0, 4000.0, 8000.0])
    np.testing.assert_allclose(librosa.hz_to_mel(f, htk=True), eq6(f), rtol=1e-10)
    # 1000 Hz is ~1000 mel by construction of the scale.
    assert librosa.hz_to_mel(1000.0, htk=True) == pytest.approx(1000.0, abs=0.05)
    # Slaney's scale (librosa's default) is not eq. 6: the extractor must not use it.
    assert not np.allclose(librosa.hz_to_mel(f[1:], htk=False), eq6(f[1:]))


def hand_mfcc(y: np.ndarray, sr: int, ext: MFCCExtractor) -> np.ndarray:
    """Power spectrogram -> eq. 6 triangular filterbank -> dB -> DCT-II (ortho), written out."""
    cfg = ext.cfg
    n_fft, hop, win = ext.n_fft, ext.hop_length, ext.win_length
    padded = np.pad(y.astype(np.float64), n_fft // 2)  # centred frames, zero padding
    n_frames = 1 + (len(padded) - n_fft) // hop
    window = np.zeros(n_fft)
    left = (n_fft - win) // 2
    window[left : left + win] = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(win) / win)  # periodic Hann
    frames = np.stack([padded[i * hop : i * hop + n_fft] * window for i in range(n_frames)])
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2  # (T, n_fft/2+1)
    # Triangular filters equally spaced on the eq. 6 mel scale, area-normalised (Slaney norm).
    fmax = cfg.fmax or sr / 2
    mels = np.linspace(eq6(np.array(cfg.fmin)), eq6(np.array(fmax)), cfg.n_mels + 2)
    hz = 700.0 * (10.0 ** (mels / 2595.0) - 1.0)  # inverse of eq. 6
    bins = np.linspace(0, sr / 2, n_fft // 2 + 1)
    fb = np.zeros((cfg.n_mels, len(bins)))
    for m in range(cfg.n_mels):
        lo, c, hi = hz[m], hz[m + 1], hz[m + 2]
        rise = (bins - lo) / (c - lo)
        fall = (hi - bins) / (hi - c)
        fb[m] = np.maximum(0, np.minimum(rise, fall)) * 2.0 / (hi - lo)
    mel = power @ fb.T  # (T, n_mels)
    db = 10 * np.log10(np.maximum(mel, 1e-10))
    db = np.maximum(db, db.max() - 80.0)  # librosa's power_to_db top_db=80 floor
    return scipy.fft.dct(db, type=2, norm="ortho", axis=1)[:, : cfg.n_mfcc]  # (T, n_mfcc)


def test_mfcc_equals_hand_pipeline() -> None:
    sr = 16000
    ext = MFCCExtractor(AudioConfig(sample_rate=sr, n_mfcc=20, n_mels=40, deltas=False))
    rng = np.random.default_rng(0)
    y = tone([440.0, 1250.0], 0.5, sr) + 0.01 * rng.standard_normal(sr // 2).astype(np.float32)
    got = ext.transform_wave(y, sr)
    want = hand_mfcc(y, sr, ext)
    assert got.dtype == np.float32
    assert got.shape == want.shape == (1 + len(y) // ext.hop_length, 20)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-3)


def test_window_hop_from_ms_and_deltas() -> None:
    cfg = AudioConfig(sample_rate=16000, win_ms=25.0, hop_ms=10.0, n_mfcc=13, deltas=True)
    ext = MFCCExtractor(cfg)
    assert (ext.win_length, ext.hop_length, ext.n_fft) == (400, 160, 512)
    y = tone([300.0], 0.4, 16000)
    feats = ext.transform_wave(y, 16000)
    assert feats.shape == (1 + len(y) // 160, ext.dim) and ext.dim == 39
    base = feats[:, :13].T  # (n_mfcc, T)
    np.testing.assert_allclose(feats[:, 13:26].T, librosa.feature.delta(base, order=1), atol=1e-4)
    np.testing.assert_allclose(feats[:, 26:].T, librosa.feature.delta(base, order=2), atol=1e-4)


@pytest.mark.parametrize("n_samples", [50, 480, 1000])
def test_short_clips_get_deltas_without_error(n_samples: int) -> None:
    ext = MFCCExtractor(AudioConfig(n_mfcc=13))
    y = tone([500.0], n_samples / 16000, 16000)
    feats = ext.transform_wave(y, 16000)
    n_frames = 1 + n_samples // 160
    assert feats.shape == (n_frames, 39)
    assert np.isfinite(feats).all()
    if n_frames < 3:
        assert not feats[:, 13:].any()  # no slope from fewer than 3 frames


def test_transform_wave_resamples_to_config_rate() -> None:
    ext = MFCCExtractor(AudioConfig(sample_rate=16000, deltas=False))
    y44 = tone([440.0], 0.5, 44100)
    feats = ext.transform_wave(y44, 44100)
    assert feats.shape == (1 + 8000 // 160, 40)


def test_load_audio_resamples_stereo_to_mono(tmp_path: Path) -> None:
    y = tone([440.0], 1.0, 44100, amp=0.5)
    stereo = np.stack([y, 0.5 * y], axis=1)  # (n, 2): mono mix is 0.75 * y
    p = tmp_path / "stereo44k.wav"
    sf.write(p, stereo, 44100, subtype="FLOAT")
    wave = load_audio(p, sample_rate=16000)
    assert wave.dtype == np.float32 and wave.ndim == 1
    assert abs(len(wave) - 16000) <= 1
    # RMS of the mix: 0.75 * 0.5 / sqrt(2); the tone is far below Nyquist so soxr keeps it.
    assert rms_dbfs(wave[100:-100]) == pytest.approx(20 * np.log10(0.375 / np.sqrt(2)), abs=0.1)


def test_load_audio_truncates_at_max_seconds(tmp_path: Path) -> None:
    p = tmp_path / "long.flac"
    sf.write(p, tone([200.0], 3.0, 8000), 8000)
    wave = load_audio(p, sample_rate=16000, max_seconds=1.25)
    assert abs(len(wave) - 20000) <= 1


def test_silent_audio_is_modality_missing(tmp_path: Path) -> None:
    p = tmp_path / "silence.wav"
    sf.write(p, np.zeros(8000, np.float32), 16000)
    with pytest.raises(ModalityMissing, match=r"silent audio \(-inf dBFS\)") as ei:
        MFCCExtractor(AudioConfig()).extract(p)
    assert ei.value.path == p
    quiet = tmp_path / "quiet.wav"
    sf.write(quiet, tone([440.0], 0.5, 16000, amp=1e-4), 16000, subtype="FLOAT")
    with pytest.raises(ModalityMissing, match="silent audio"):
        MFCCExtractor(AudioConfig(silence_dbfs=-60.0)).extract(quiet)
    # Same clip passes a lower threshold.
    assert MFCCExtractor(AudioConfig(silence_dbfs=-100.0)).extract(quiet).shape[1] == 120


def test_silence_check_uses_loud_frames_not_whole_clip(tmp_path: Path) -> None:
    # Soft speech (-51 dBFS) in 8 % of a clip that is otherwise digital silence: whole-clip
    # RMS says -62 dBFS ("silent" at -60), yet the speech is there.
    sr = 16000
    y = np.zeros(2 * sr, np.float32)
    y[sr // 2 : sr // 2 + round(0.16 * sr)] = tone([300.0], 0.16, sr, amp=0.004)
    p = tmp_path / "soft.wav"
    sf.write(p, y, sr, subtype="FLOAT")
    assert rms_dbfs(y) < -60.0
    assert loud_level_dbfs(y, sr) == pytest.approx(20 * np.log10(0.004 / np.sqrt(2)), abs=0.2)
    assert MFCCExtractor(AudioConfig(silence_dbfs=-60.0)).extract(p).shape == (1 + 2 * sr // 160, 120)
    # A single click in silence is still silence.
    click = np.zeros(sr, np.float32)
    click[100] = 0.9
    assert loud_level_dbfs(click, sr) == -np.inf


def _write_corrupt(tmp_path: Path) -> dict[str, Path]:
    good_wav, good_flac = tmp_path / "good.wav", tmp_path / "good.flac"
    sf.write(good_wav, tone([440.0], 1.0, 16000), 16000)
    sf.write(good_flac, tone([440.0], 1.0, 16000), 16000)
    files = {
        "garbage": tmp_path / "garbage.wav",
        "empty": tmp_path / "empty.wav",
        "trunc_wav": tmp_path / "trunc.wav",
        "trunc_flac": tmp_path / "trunc.flac",
        "no_samples": tmp_path / "nosamples.wav",
        "missing": tmp_path / "missing.wav",
    }
    files["garbage"].write_bytes(np.random.default_rng(1).bytes(2000))
    files["empty"].write_bytes(b"")
    files["trunc_wav"].write_bytes(good_wav.read_bytes()[: good_wav.stat().st_size // 2])
    files["trunc_flac"].write_bytes(good_flac.read_bytes()[: good_flac.stat().st_size // 2])
    sf.write(files["no_samples"], np.zeros(0, np.float32), 16000)
    return files


def test_corrupt_files_raise_feature_error_naming_the_file(tmp_path: Path) -> None:
    for name, p in _write_corrupt(tmp_path).items():
        with pytest.raises(FeatureError) as ei:
            load_audio(p, sample_rate=16000)
        err = ei.value
        assert not isinstance(err, ModalityMissing), name
        assert err.path == p and str(p) in str(err), name
        assert "cannot decode audio" in err.problem, name
    with pytest.raises(FeatureError, match="truncated WAV"):
        load_audio(tmp_path / "trunc.wav", sample_rate=16000)


def test_video_containers_go_through_video_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, int]] = []

    def read_audio_track(path: str | os.PathLike, *, sample_rate: int) -> np.ndarray:
        calls.append((Path(path).name, sample_rate))
        if Path(path).stem == "mute":
            raise ModalityMissing(path, "video has no audio track")
        return tone([440.0], 0.5, sample_rate)

    fake = types.ModuleType("mmfer.features.video")
    fake.read_audio_track = read_audio_track  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "mmfer.features.video", fake)
    for name in ("clip.mp4", "mute.avi", "song.mp3"):
        (tmp_path / name).write_bytes(b"\0" * 16)
    cfg = AudioConfig(sample_rate=8000)
    feats = MFCCExtractor(cfg).extract(tmp_path / "clip.mp4")
    assert feats.shape == (1 + 4000 // MFCCExtractor(cfg).hop_length, 120)
    assert load_audio(tmp_path / "song.mp3", sample_rate=8000).shape == (4000,)
    with pytest.raises(ModalityMissing, match="no audio track"):
        load_audio(tmp_path / "mute.avi", sample_rate=8000)
    assert calls == [("clip.mp4", 8000), ("song.mp3", 8000), ("mute.avi", 8000)]


def test_config_dict_changes_with_config() -> None:
    a = MFCCExtractor(AudioConfig()).config_dict()
    b = MFCCExtractor(dataclasses.replace(AudioConfig(), n_mfcc=13)).config_dict()
    assert a != b and a["n_fft"] == 512 and a["extractor"] == "mfcc"


@pytest.mark.realdata
def test_real_ravdess_clip() -> None:
    clips = sorted((DATA / "ravdess-speech-16k").glob("Actor_01/*.flac"))
    if not clips:
        pytest.skip("../shared/data/ravdess-speech-16k is absent")
    info = sf.info(str(clips[0]))
    feats = MFCCExtractor(AudioConfig()).extract(clips[0])
    assert feats.shape == (1 + info.frames // 160, 120)
    assert np.isfinite(feats).all() and feats[:, 0].std() > 1.0  # speech varies in energy
