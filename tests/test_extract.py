"""Extraction runner: cache reuse, resume after kill -9, bad files, process pool, dask."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import signal
import subprocess
import sys
import types
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from mmfer.config import AudioConfig, FaceConfig, FeatureConfig, TextConfig
from mmfer.data.table import make_table, write_table
from mmfer.errors import ConfigError, FeatureError, ModalityMissing
from mmfer.features import extractors
from mmfer.features.cache import FeatureCache
from mmfer.features.extract import extract_features
from mmfer.features.summary import summarise_issues
from mmfer.features.units import SampleFeatures, Unit
from mmfer.features.voice.mfcc import MFCCExtractor
from mmfer.features.words.cleaning import clean_text

SR = 16000
EMOTIONS = ("happy", "sad", "angry")
SENTENCES = ("Kids are talking by the door.", "Dogs are sitting by the door!", "Happy days, again?")


#: The eq. 2 cleaning is what masks a stop-word-only transcript; with a sentence embedding
#: (the default profile's text) the raw words are still read.
TFIDF_ONLY = TextConfig(representation="tfidf")


def mfcc_audio() -> AudioConfig:
    """MFCC audio: these tests check the runner's mechanics on a fast, exact extractor
    (the default profile's Whisper extractor has its own tests in test_whisper.py)."""
    return AudioConfig(extractor="mfcc")


@pytest.fixture(autouse=True)
def fresh_extractors(monkeypatch: pytest.MonkeyPatch) -> None:
    # Extractors are memoised per process; a fake face extractor must not leak between tests.
    monkeypatch.setattr(extractors, "_PROCESS_EXTRACTORS", {})


def before_compute(monkeypatch: pytest.MonkeyPatch, fn: Callable[[Unit], None]) -> None:
    """Call ``fn(unit)`` before each unit is computed, in whichever process computes it.

    Patches the class, so forked pool workers inherit it; a later call replaces
    the earlier spy (it wraps the original method, not the previous spy).
    """
    current = extractors.Extractors.compute
    original = getattr(current, "__wrapped__", current)

    def spy(self: extractors.Extractors, unit: Unit) -> dict[str, np.ndarray]:
        fn(unit)
        return original(self, unit)

    spy.__wrapped__ = original  # type: ignore[attr-defined]
    monkeypatch.setattr(extractors.Extractors, "compute", spy)


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """(sample id, modality) of every unit actually computed."""
    seen: list[tuple[str, str]] = []
    before_compute(monkeypatch, lambda u: seen.append((u.sample_id, u.modality)))
    return seen


def write_clip(path: Path, freq: float, seconds: float = 0.25, amp: float = 0.3) -> Path:
    t = np.arange(round(seconds * SR)) / SR
    sf.write(path, (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32), SR)
    return path


def clip_table(root: Path, n: int, **overrides: dict[str, object]) -> pd.DataFrame:
    """``n`` samples with a distinct tone each and an inline transcript; per-id column overrides."""
    root.mkdir(parents=True, exist_ok=True)
    records = []
    for i in range(n):
        sid = f"s{i:02d}"
        rec: dict[str, object] = {
            "id": sid,
            "speaker": f"sp{i % 3}",
            "emotion": EMOTIONS[i % 3],
            "audio": str(write_clip(root / f"{sid}.wav", 200.0 + 37.0 * i)),
            "transcript": SENTENCES[i % 3],
        }
        rec.update(overrides.get(sid, {}))
        records.append(rec)
    return make_table(records, corpus="test", root=root)


def assert_same(a: dict[str, SampleFeatures], b: dict[str, SampleFeatures]) -> None:
    assert list(a) == list(b)
    for sid in a:
        fa, fb = a[sid], b[sid]
        for m in ("face", "audio"):
            xa, xb = getattr(fa, m), getattr(fb, m)
            assert (xa is None) == (xb is None), (sid, m)
            if xa is not None:
                np.testing.assert_array_equal(xa, xb, err_msg=f"{sid} {m}")
        assert fa.text == fb.text and fa.issues == fb.issues, sid


AUDIO_TEXT = ("audio", "text")


def test_features_are_cached_and_reused(tmp_path: Path, calls: list[tuple[str, str]]) -> None:
    table = clip_table(tmp_path / "data", 4)
    cfg = FeatureConfig(audio=mfcc_audio())
    first = extract_features(table, cfg, tmp_path / "cache", modalities=AUDIO_TEXT, progress=False)
    # Texts 0 and 3 are the same sentence: one cache entry, computed once.
    assert len(calls) == 4 + 3
    assert list(first) == list(table["id"])
    ext = MFCCExtractor(cfg.audio)
    for _, row in table.iterrows():
        f = first[row["id"]]
        np.testing.assert_array_equal(f.audio, ext.extract(row["audio"]))
        assert f.audio.shape[1] == 120 and f.audio.dtype == np.float32
        assert f.text == clean_text(row["transcript"]) and f.face is None and f.issues == {}
    assert len(FeatureCache(tmp_path / "cache").keys()) == 7

    calls.clear()
    again = extract_features(table, cfg, tmp_path / "cache", modalities=AUDIO_TEXT, progress=False)
    assert calls == []  # everything from the cache
    assert_same(first, again)

    # A different extractor config is a different cache entry.
    cfg13 = dataclasses.replace(cfg, audio=dataclasses.replace(cfg.audio, n_mfcc=13))
    other = extract_features(table, cfg13, tmp_path / "cache", modalities=("audio",), progress=False)
    assert sorted(calls) == [(sid, "audio") for sid in table["id"]]
    assert other["s00"].audio.shape[1] == 39 and other["s00"].text is None


def test_bad_files_are_masked_and_cached(tmp_path: Path, calls: list[tuple[str, str]]) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "garbage.wav").write_bytes(np.random.default_rng(0).bytes(3000))
    write_clip(data / "silent.wav", 300.0, amp=0.0)
    (data / "latin1.txt").write_bytes("caf\xe9 au lait".encode("latin-1"))
    (data / "good.txt").write_text("\ufeffSadly, the KIDS left.", encoding="utf-8")
    table = clip_table(
        data,
        8,
        s01={"audio": str(data / "garbage.wav")},
        s02={"audio": str(data / "silent.wav")},
        s03={"audio": str(data / "gone.wav")},
        s04={"transcript": str(data / "latin1.txt")},
        s05={"transcript": "The, and... of!"},
        s06={"transcript": str(data / "good.txt")},
    )
    feats = extract_features(
        table, FeatureConfig(audio=mfcc_audio(), text=TFIDF_ONLY), tmp_path / "cache", progress=False
    )
    issues = {sid: f.issues for sid, f in feats.items() if f.issues}
    assert set(issues) == {"s01", "s02", "s03", "s04", "s05"}
    assert "cannot decode audio" in issues["s01"]["audio"] and "garbage.wav" in issues["s01"]["audio"]
    assert "silent audio (-inf dBFS)" in issues["s02"]["audio"]
    assert "not found" in issues["s03"]["audio"] and "gone.wav" in issues["s03"]["audio"]
    assert "not valid UTF-8" in issues["s04"]["text"] and "latin1.txt" in issues["s04"]["text"]
    assert "no words left" in issues["s05"]["text"]
    for sid in ("s01", "s02", "s03"):
        assert feats[sid].audio is None and feats[sid].text is not None
    assert feats["s06"].text == "sadly kids left"
    for sid in ("s00", "s07"):
        assert feats[sid].audio is not None and feats[sid].issues == {}
    assert summarise_issues(feats) == {"face": 0, "audio": 3, "text": 2, "samples": 5}

    calls.clear()
    again = extract_features(
        table, FeatureConfig(audio=mfcc_audio(), text=TFIDF_ONLY), tmp_path / "cache", progress=False
    )
    assert calls == []  # failures are cached too: the bad files are not decoded again
    assert_same(feats, again)

    # strict: the (cached) failure is raised instead of masked.
    with pytest.raises(FeatureError) as ei:
        extract_features(
            table,
            FeatureConfig(audio=mfcc_audio(), text=TFIDF_ONLY, strict=True),
            tmp_path / "cache",
            progress=False,
        )
    assert ei.value.path is not None


def test_strict_raises_on_first_bad_file(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "broken.wav").write_bytes(b"RIFF\x00\x00junk")
    table = clip_table(data, 3, s01={"audio": str(data / "broken.wav")})
    with pytest.raises(FeatureError, match=r"broken\.wav: cannot decode audio") as ei:
        extract_features(
            table, FeatureConfig(audio=mfcc_audio(), strict=True), tmp_path / "cache", progress=False
        )
    assert not isinstance(ei.value, ModalityMissing)


def test_unexpected_errors_are_masked_but_not_cached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    table = clip_table(tmp_path / "data", 3)

    def boom(unit: Unit) -> None:
        if unit.sample_id == "s01" and unit.modality == "audio":
            raise RuntimeError("decoder exploded")

    before_compute(monkeypatch, boom)
    feats = extract_features(
        table, FeatureConfig(audio=mfcc_audio()), tmp_path / "cache", modalities=("audio",), progress=False
    )
    assert feats["s01"].audio is None
    assert "unexpected RuntimeError: decoder exploded" in feats["s01"].issues["audio"]
    seen: list[str] = []
    before_compute(monkeypatch, lambda u: seen.append(u.sample_id))
    retry = extract_features(
        table, FeatureConfig(audio=mfcc_audio()), tmp_path / "cache", modalities=("audio",), progress=False
    )
    assert seen == ["s01"] and retry["s01"].audio is not None and retry["s01"].issues == {}


class FakeFace:
    """Stands in for FaceFeatureExtractor: deterministic (T, 8) features from the file bytes."""

    calls: list[tuple[str, str]] = []  # noqa: RUF012 - shared log on purpose

    def __init__(self, cfg: FaceConfig) -> None:
        self.cfg = cfg
        self.dim = 8

    def config_dict(self) -> dict[str, object]:
        return {"extractor": "fake-face", "max_frames": self.cfg.max_frames}

    def _feats(self, data: bytes, t: int) -> np.ndarray:
        seed = int.from_bytes(hashlib.sha256(data).digest()[:4], "little")
        return np.random.default_rng(seed).standard_normal((t, self.dim)).astype(np.float32)

    def extract_video(self, path: str) -> np.ndarray:
        FakeFace.calls.append(("video", Path(path).name))
        return self._feats(Path(path).read_bytes(), min(3, self.cfg.max_frames))

    def extract_image(self, path: str) -> np.ndarray:
        FakeFace.calls.append(("image", Path(path).name))
        if Path(path).name == "noface.png":
            raise ModalityMissing(path, "no face found")
        return self._feats(Path(path).read_bytes(), 1)

    def extract_frames_dir(self, path: str) -> np.ndarray:
        FakeFace.calls.append(("frames", Path(path).name))
        files = sorted(Path(path).iterdir())
        return np.concatenate([self._feats(f.read_bytes(), 1) for f in files])


@pytest.fixture
def fake_face(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[FakeFace]]:
    mod = types.ModuleType("mmfer.features.face.extractor")
    mod.FaceFeatureExtractor = FakeFace  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "mmfer.features.face.extractor", mod)
    FakeFace.calls = []
    yield FakeFace


def test_face_sources_video_frames_image(tmp_path: Path, fake_face: type[FakeFace]) -> None:
    data = tmp_path / "data"
    frames = data / "clip_frames"
    frames.mkdir(parents=True)
    for i in range(4):
        (frames / f"{i}.png").write_bytes(bytes([i]) * 20)
    (data / "v.mp4").write_bytes(b"video bytes")
    (data / "still.png").write_bytes(b"image bytes")
    (data / "noface.png").write_bytes(b"blank")
    table = clip_table(
        data,
        4,
        s00={"video": str(data / "v.mp4"), "image": str(data / "still.png")},  # video wins
        s01={"frames": str(frames)},
        s02={"image": str(data / "still.png")},
        s03={"image": str(data / "noface.png")},
    )
    cfg = FeatureConfig(audio=mfcc_audio())
    feats = extract_features(table, cfg, tmp_path / "cache", modalities=("face",), progress=False)
    assert sorted(fake_face.calls) == [
        ("frames", "clip_frames"),
        ("image", "noface.png"),
        ("image", "still.png"),
        ("video", "v.mp4"),
    ]
    assert feats["s00"].face.shape == (3, 8) and feats["s01"].face.shape == (4, 8)
    assert feats["s02"].face.shape == (1, 8) and feats["s02"].audio is None
    assert feats["s03"].face is None and "no face found" in feats["s03"].issues["face"]
    np.testing.assert_array_equal(feats["s02"].face, FakeFace(cfg.face).extract_image(data / "still.png"))

    fake_face.calls = []
    again = extract_features(table, cfg, tmp_path / "cache", modalities=("face",), progress=False)
    assert fake_face.calls == []
    assert_same(feats, again)
    # Editing a frame changes the folder's content key.
    (frames / "2.png").write_bytes(b"edited")
    extract_features(table, cfg, tmp_path / "cache", modalities=("face",), progress=False)
    assert fake_face.calls == [("frames", "clip_frames")]


def test_process_pool_matches_single_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    table = clip_table(tmp_path / "data", 6)
    one = extract_features(
        table,
        FeatureConfig(audio=mfcc_audio(), workers=1),
        tmp_path / "c1",
        modalities=AUDIO_TEXT,
        progress=False,
    )
    pids = tmp_path / "pids.txt"

    def log_pid(unit: Unit) -> None:
        with open(pids, "a") as fh:  # runs in the worker that computes the unit
            fh.write(f"{unit.modality} {os.getpid()}\n")

    before_compute(monkeypatch, log_pid)
    # a quiet 2-core machine, whatever this one is doing (mmfer.runtime sizes the pool to free cores)
    from mmfer import runtime

    monkeypatch.setattr(runtime, "_affinity_cores", lambda: 2)
    monkeypatch.setattr(runtime, "_load1", lambda: 0.0)
    monkeypatch.delenv("MMFER_THREADS", raising=False)
    two = extract_features(
        table,
        FeatureConfig(audio=mfcc_audio(), workers=2),
        tmp_path / "c2",
        modalities=AUDIO_TEXT,
        progress=False,
    )
    assert_same(one, two)
    rows = [line.split() for line in pids.read_text().splitlines()]
    audio_pids = {int(pid) for m, pid in rows if m == "audio"}
    assert len(rows) == 6 + 3 and os.getpid() not in audio_pids  # audio went to the pool
    assert sorted(FeatureCache(tmp_path / "c1").keys()) == sorted(FeatureCache(tmp_path / "c2").keys())


_KILL_SCRIPT = """
import os, signal, sys
from pathlib import Path
from mmfer.config import AudioConfig, FeatureConfig
from mmfer.data.table import read_table
from mmfer.features import extract, extractors
import mmfer.io

table_csv, cache_dir, marker, victim, where = sys.argv[1:]


def die() -> None:
    Path(marker).write_text(victim)  # proof the kill happened where the test wanted it
    os.kill(os.getpid(), signal.SIGKILL)  # no cleanup handlers, no finally blocks


compute = extractors.Extractors.compute


def compute_then_maybe_die(self, unit):
    if unit.sample_id == victim and where == "compute":
        die()
    return compute(self, unit)


replace = os.replace


def victim_entry(src):
    import numpy as np

    with np.load(src, allow_pickle=False) as z:
        return f'"sample_id":"{victim}"' in str(z["__meta__"])


def replace_or_die(src, dst):
    # the victim's cache entry is fully written to its temporary file: die before the rename
    if where == "write" and Path(dst).suffix == ".npz" and victim_entry(src):
        die()
    return replace(src, dst)


extractors.Extractors.compute = compute_then_maybe_die
mmfer.io.os.replace = replace_or_die
extract.extract_features(
    read_table(table_csv), FeatureConfig(audio=AudioConfig(extractor="mfcc")), cache_dir,
    modalities=("audio",), progress=False
)
"""


@pytest.mark.parametrize("where", ["compute", "write"])
def test_killed_run_resumes(tmp_path: Path, calls: list[tuple[str, str]], where: str) -> None:
    """SIGKILL at a known unit (no timing involved): exactly the units before it are cached."""
    table = clip_table(tmp_path / "data", 12)
    write_table(table, tmp_path / "table.csv")
    cache_dir = tmp_path / "cache"
    marker = tmp_path / "killed.txt"
    victim = "s06"  # units run in table order with workers=1: s00..s05 are done before it
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            _KILL_SCRIPT,
            str(tmp_path / "table.csv"),
            str(cache_dir),
            str(marker),
            victim,
            where,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        timeout=600,  # a safety net against a hang, not a measured deadline
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()
    assert marker.read_text() == victim

    cache = FeatureCache(cache_dir)
    done = cache.keys()
    done_ids = set()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a corrupt entry would warn
        for k in done:
            entry = cache.load(k)
            assert entry is not None and entry.error is None
            assert entry.arrays["audio"].shape[1] == 120
            done_ids.add(entry.meta["sample_id"])
    assert done_ids == {f"s{i:02d}" for i in range(6)} and len(done) == 6
    leftovers = [p.name for p in cache_dir.rglob("*.tmp")]
    assert len(leftovers) == (1 if where == "write" else 0)  # the half-done write was never renamed

    resumed = extract_features(
        table, FeatureConfig(audio=mfcc_audio()), cache_dir, modalities=("audio",), progress=False
    )
    assert sorted(sid for sid, _ in calls) == [f"s{i:02d}" for i in range(6, 12)]
    clean = extract_features(
        table, FeatureConfig(audio=mfcc_audio()), tmp_path / "clean", modalities=("audio",), progress=False
    )
    assert_same(resumed, clean)


@pytest.mark.slow
def test_dask_local_cluster_matches_single_process(tmp_path: Path) -> None:
    pytest.importorskip("dask.distributed")
    table = clip_table(tmp_path / "data", 6)
    one = extract_features(
        table, FeatureConfig(audio=mfcc_audio()), tmp_path / "c1", modalities=AUDIO_TEXT, progress=False
    )
    cfg = FeatureConfig(audio=mfcc_audio(), backend="dask", workers=2)
    viadask = extract_features(table, cfg, tmp_path / "c2", modalities=AUDIO_TEXT, progress=False)
    assert_same(one, viadask)
    assert len(FeatureCache(tmp_path / "c2").keys()) == 6 + 3


def test_every_modality_plugs_in_through_one_interface() -> None:
    """Each wing is reached only through the UnitExtractor registry, built lazily (no model loaded)."""
    from mmfer.config import MODALITIES

    assert set(extractors.UNIT_EXTRACTORS) == set(MODALITIES)
    ex = extractors.Extractors(FeatureConfig(audio=mfcc_audio()))
    for modality in MODALITIES:
        wing = ex.wing(modality)
        assert all(callable(getattr(wing, m, None)) for m in ("config_for", "compute", "prefetch"))
        assert ex.wing(modality) is wing  # built once
    with pytest.raises(ConfigError, match="unknown modality"):
        ex.wing("smell")
