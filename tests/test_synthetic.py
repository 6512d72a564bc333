"""Tests of the SYNTHETIC corpus generator and its ``synthetic`` corpus loader."""

from __future__ import annotations

import json
from pathlib import Path

import av
import librosa
import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from mmfer import demo as syn
from mmfer.data.table import COLUMNS, validate_table
from mmfer.demo import corpus as demo_corpus
from mmfer.demo import face as demo_face
from mmfer.demo import media as demo_media
from mmfer.errors import ConfigError
from mmfer.registry import CORPORA

TINY = {
    "speakers": 2,
    "clips_per_emotion": 2,
    "emotions": ("happy", "sad", "angry"),
    "seconds": 1.0,
    "fps": 8,
    "size": 64,
}


def decode(path: Path) -> tuple[list[np.ndarray], av.AudioStream | None]:
    """All video frames ``(H, W, 3)`` uint8 RGB and the audio stream (if any) of ``path``."""
    with av.open(str(path)) as c:
        has_audio = len(c.streams.audio) > 0
        audio = (c.streams.audio[0].codec_context.name, c.streams.audio[0].rate) if has_audio else None
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    return frames, audio


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return syn.generate_synthetic_corpus(tmp_path_factory.mktemp("syn") / "a", seed=0, **TINY)


def test_files_exist_and_decode(tiny: Path) -> None:
    manifest = pd.read_csv(tiny / syn.MANIFEST_NAME)
    assert list(manifest.columns[:7]) == [
        "id",
        "speaker",
        "emotion",
        "video",
        "audio",
        "transcript",
        "synthetic",
    ]
    assert len(manifest) == 2 * 2 * 3
    assert manifest["synthetic"].all()
    assert set(manifest["emotion"]) == {"happy", "sad", "angry"}
    assert set(manifest["speaker"]) == {"syn01", "syn02"}
    assert "syn_s01_happy_02" in set(manifest["id"])
    for row in manifest.itertuples():
        frames, audio = decode(tiny / row.video)
        assert len(frames) == 8  # 1 s at 8 fps
        assert frames[0].shape == (64, 64, 3)
        assert audio is not None and audio[1] == 16000
        wav, sr = sf.read(tiny / row.audio)
        assert sr == 16000 and wav.shape == (16000,)
        assert 0.0 < np.abs(wav).max() <= 1.0
        text = (tiny / row.transcript_file).read_text(encoding="utf-8").strip()
        assert text == row.transcript and len(text.split()) >= 4
    stamp = json.loads((tiny / syn.STAMP_NAME).read_text(encoding="utf-8"))
    assert stamp["synthetic"] is True and "SYNTHETIC" in stamp["description"]
    assert stamp["params"]["speakers"] == 2 and stamp["clips"] == 12
    assert "SYNTHETIC" in (tiny / "README.txt").read_text(encoding="utf-8")


def test_h264_when_available(tiny: Path) -> None:
    with av.open(str(next(tiny.glob("syn01/*.mp4")))) as c:
        name = c.streams.video[0].codec_context.name
    assert name == ("h264" if syn.video_codec() == "libx264" else "mpeg4")


def test_mpeg4_fallback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A PyAV build without libx264 still yields a playable corpus.
    for module in (demo_media, demo_corpus):  # the encoder, and the stamp naming it
        monkeypatch.setattr(module, "video_codec", lambda: "mpeg4")
    root = syn.generate_synthetic_corpus(tmp_path, **{**TINY, "speakers": 1, "clips_per_emotion": 1})
    video = next(root.glob("syn01/*.mp4"))
    with av.open(str(video)) as c:
        assert c.streams.video[0].codec_context.name == "mpeg4"
    frames, audio = decode(video)
    assert len(frames) == 8 and frames[0].shape == (64, 64, 3) and audio is not None


def test_deterministic_and_seed_dependent(tiny: Path, tmp_path: Path) -> None:
    again = syn.generate_synthetic_corpus(tmp_path / "b", seed=0, **TINY)
    other = syn.generate_synthetic_corpus(tmp_path / "c", seed=1, **TINY)
    clip = "syn01/syn_s01_happy_01"
    assert (tiny / f"{clip}.wav").read_bytes() == (again / f"{clip}.wav").read_bytes()
    for video in sorted(tiny.glob("syn0*/*.mp4")):  # every decoded frame of every clip
        assert np.array_equal(decode(video)[0], decode(again / video.relative_to(tiny))[0]), video.name
    assert (tiny / f"{clip}.txt").read_text() == (again / f"{clip}.txt").read_text()
    assert not np.array_equal(sf.read(tiny / f"{clip}.wav")[0], sf.read(other / f"{clip}.wav")[0])
    assert not np.array_equal(decode(tiny / f"{clip}.mp4")[0][0], decode(other / f"{clip}.mp4")[0][0])


def test_idempotent_reuse_and_regeneration(tmp_path: Path) -> None:
    params = {**TINY, "speakers": 1, "clips_per_emotion": 1}
    root = syn.generate_synthetic_corpus(tmp_path / "r", **params)
    files = sorted(p for p in root.rglob("*") if p.is_file())
    mtimes = {p: p.stat().st_mtime_ns for p in files}
    assert syn.generate_synthetic_corpus(tmp_path / "r", **params) == root
    assert {p: p.stat().st_mtime_ns for p in files} == mtimes  # nothing rewritten

    # A missing file makes the corpus incomplete: it is regenerated, not trusted.
    victim = next(root.glob("syn01/*.wav"))
    victim.unlink()
    syn.generate_synthetic_corpus(tmp_path / "r", **params)
    assert victim.is_file()

    # Other parameters replace the corpus and drop the files it no longer lists.
    syn.generate_synthetic_corpus(tmp_path / "r", **{**params, "emotions": ("neutral",)})
    assert sorted(p.name for p in root.glob("syn01/*.wav")) == ["syn_s01_neutral_01.wav"]
    assert json.loads((root / syn.STAMP_NAME).read_text())["params"]["emotions"] == ["neutral"]


def _voice_stats(path: Path) -> tuple[float, float]:
    """Mean F0 (Hz, voiced frames) and RMS (dBFS) of a wav file."""
    y, sr = sf.read(path)
    f0 = librosa.yin(y, fmin=60, fmax=500, sr=sr, frame_length=1024, hop_length=256)  # (frames,)
    rms = librosa.feature.rms(y=y, frame_length=1024, hop_length=256)[0]  # (frames,)
    voiced = rms[: len(f0)] > 0.3 * rms.max()
    return float(np.median(f0[voiced])), float(20 * np.log10(np.sqrt(np.mean(y**2))))


def test_voice_depends_on_emotion(tiny: Path) -> None:
    # Same speaker and clip index: angry is louder and higher-pitched than sad.
    for s in ("01", "02"):
        for c in ("01", "02"):
            f0_angry, db_angry = _voice_stats(tiny / f"syn{s}/syn_s{s}_angry_{c}.wav")
            f0_sad, db_sad = _voice_stats(tiny / f"syn{s}/syn_s{s}_sad_{c}.wav")
            assert f0_angry > f0_sad * 1.1
            assert db_angry > db_sad + 6


def _mouth_corner_lift(img: np.ndarray, ident: syn.SpeakerIdentity, pose: syn.Pose) -> float:
    """How much higher (px) the mouth's corners sit than its centre (> 0: smile, < 0: frown).

    Mouth pixels are the reddish ones (lips, mouth interior) in a box around the mouth.
    """
    a = ident.head_width * img.shape[0] * pose.scale
    my, mw = pose.cy + 0.5 * a * ident.head_aspect, 0.42 * a * ident.mouth_width
    rgb = img.astype(int)
    mask = (rgb[..., 1] < 0.55 * rgb[..., 0]) & (rgb[..., 2] < 0.6 * rgb[..., 0])  # (H, W)
    box = np.zeros_like(mask)
    box[int(my - 0.7 * mw) : int(my + 0.9 * mw), int(pose.cx - 1.5 * mw) : int(pose.cx + 1.5 * mw)] = True
    ys, xs = np.nonzero(mask & box)
    dx = np.abs(xs - pose.cx)
    corners, centre = ys[dx > 0.6 * dx.max()], ys[dx < 0.2 * dx.max()]
    return float(centre.mean() - corners.mean())


@pytest.mark.parametrize("speaker", range(4))
def test_face_depends_on_emotion(speaker: int) -> None:
    size = 96
    ident = syn.speaker_identity(0, speaker)
    pose = syn.Pose(cx=48.0, cy=44.0)
    face = {e: syn.render_face(ident, x, pose, size=size) for e, x in syn.EXPRESSIONS.items()}
    # Smile lifts the mouth corners, sadness drops them (relative to this speaker's resting mouth).
    lift = {e: _mouth_corner_lift(face[e], ident, pose) for e in ("happy", "neutral", "sad")}
    assert lift["happy"] > lift["neutral"] + 1 > lift["sad"] + 2
    # Surprise opens the eyes and the mouth: more eye-white and mouth pixels than neutral.
    white = {
        e: (np.abs(face[e].astype(int) - demo_face._WHITE).max(axis=2) < 12).sum()
        for e in ("neutral", "surprised")
    }
    assert white["surprised"] > 1.3 * white["neutral"]
    # Anger lowers the inner brow ends, sadness raises them: the brow band differs.
    brows = slice(int(pose.cy) - 25, int(pose.cy) - 5)
    assert np.abs(face["angry"][brows].astype(int) - face["sad"][brows].astype(int)).mean() > 1


def test_expression_ramps_from_neutral_to_apex() -> None:
    ident = syn.speaker_identity(0, 0)
    times = np.arange(24) / 12
    track = syn.expression_track(
        ident, "happy", intensity=1.0, times=times, seconds=2.0, rng=np.random.default_rng(0)
    )
    curve = np.array([x.mouth_curve for x in track])
    assert track[0] == syn.EXPRESSIONS["neutral"]  # onset is after the first frame
    assert np.all(np.diff(curve) >= 0) and curve[-1] > 0.3  # rises monotonically to a smile
    assert np.isclose(curve[-1], curve[-2])  # apex reached before the end and held


def test_transcripts_carry_cues_imperfectly() -> None:
    texts = [syn.make_transcript("angry", rng) for rng in [np.random.default_rng(0)] for _ in range(400)]
    cue_words = {"outrageous", "furious", "unfair", "stop", "hate", "ridiculous"}
    cued = np.mean([any(w.strip(",.").lower() in cue_words for w in t.split()) for t in texts])
    assert 0.5 < cued < 0.72  # ~60 % carry an angry cue, the rest none or another emotion's
    again = [syn.make_transcript("angry", rng) for rng in [np.random.default_rng(0)] for _ in range(400)]
    assert texts == again
    assert len(set(texts)) > 200  # not a handful of fixed sentences


def test_loader_returns_valid_table(tiny: Path) -> None:
    load = CORPORA.get("synthetic")
    assert load is syn.load_synthetic
    df = load(
        tiny, speakers=2, clips_per_emotion=2, emotions=["happy", "sad", "angry"], seconds=1.0, fps=8, size=64
    )
    validate_table(df)
    assert list(df.columns[: len(COLUMNS)]) == list(COLUMNS)
    assert len(df) == 12 and (df["corpus"] == "synthetic").all() and df["synthetic"].all()
    assert sorted(df["speaker"].unique()) == ["syn01", "syn02"]
    assert sorted(df["emotion"].unique()) == ["angry", "happy", "sad"]
    assert df["id"].str.match(r"^syn_s0[12]_(happy|sad|angry)_0[12]$").all()
    assert all(
        Path(p).is_absolute() and Path(p).is_file() for p in df["video"].tolist() + df["audio"].tolist()
    )
    assert df["transcript"].str.len().gt(10).all()


def test_loader_default_root_uses_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MMFER_CACHE", str(tmp_path))
    opts = {**TINY, "speakers": 1, "clips_per_emotion": 1, "emotions": ["neutral", "fear"]}
    df = syn.load_synthetic(**opts)
    folders = list(tmp_path.glob("synthetic-*"))
    assert len(folders) == 1 and (folders[0] / syn.STAMP_NAME).is_file()
    assert sorted(df["emotion"]) == ["fearful", "neutral"]  # aliases are canonicalised
    assert Path(df["audio"][0]).is_relative_to(folders[0])


@pytest.mark.parametrize(
    "bad",
    [
        {"size": 63},
        {"speakers": 0},
        {"emotions": ("happy", "joy")},
        {"emotions": ("happy", "bored")},
        {"emotions": ()},
        {"sample_rate": 12345},
    ],
)
def test_bad_parameters_raise(tmp_path: Path, bad: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        syn.generate_synthetic_corpus(tmp_path, **{**TINY, **bad})
    assert not (tmp_path / syn.STAMP_NAME).exists()


def test_loader_rejects_unknown_option(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="colour"):
        syn.load_synthetic(tmp_path, colour="blue")
