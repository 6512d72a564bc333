"""Feature cache: content keys, atomic writes, corrupt entries, cached failures."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from mmfer.errors import FeatureError, ModalityMissing
from mmfer.features.cache import FeatureCache, file_digest


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    a = tmp_path / "in" / "a.wav"
    a.parent.mkdir()
    a.write_bytes(b"RIFF" + bytes(range(200)))
    copy = tmp_path / "in" / "renamed_copy.wav"
    shutil.copy(a, copy)
    other = tmp_path / "in" / "b.wav"
    other.write_bytes(b"RIFF" + bytes(range(1, 201)))
    return {"a": a, "copy": copy, "other": other}


def test_key_depends_on_namespace_config_and_content_not_path(files: dict[str, Path]) -> None:
    k = FeatureCache.key("audio", {"n_mfcc": 40, "hop": 10}, files["a"])
    assert len(k) == 64 and int(k, 16) >= 0
    assert FeatureCache.key("audio", {"hop": 10, "n_mfcc": 40}, files["a"]) == k  # key order irrelevant
    assert FeatureCache.key("audio", {"n_mfcc": 40, "hop": 10}, files["copy"]) == k  # same bytes
    assert FeatureCache.key("audio", {"n_mfcc": 40, "hop": 10}, files["other"]) != k
    assert FeatureCache.key("audio", {"n_mfcc": 13, "hop": 10}, files["a"]) != k
    assert FeatureCache.key("face", {"n_mfcc": 40, "hop": 10}, files["a"]) != k
    assert FeatureCache.key_text("text", {}, "hello") != FeatureCache.key_text("text", {}, "hello!")
    with pytest.raises(FeatureError, match="cannot read input"):
        FeatureCache.key("audio", {}, files["a"].parent / "missing.wav")


def test_digest_follows_edits_and_folders(files: dict[str, Path], tmp_path: Path) -> None:
    p = files["a"]
    before = file_digest(p)
    st = p.stat()
    p.write_bytes(p.read_bytes()[::-1])  # same size, new content
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))  # memo is keyed by mtime
    assert file_digest(p) != before
    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(3):
        (frames / f"{i:03d}.png").write_bytes(bytes([i]) * 10)
    d1 = file_digest(frames)
    (frames / "001.png").write_bytes(b"changed!!!")
    os.utime(frames / "001.png", ns=(1, 2))
    assert file_digest(frames) != d1


def test_put_get_round_trip(tmp_path: Path, files: dict[str, Path]) -> None:
    cache = FeatureCache(tmp_path / "cache")
    k = cache.key("audio", {"x": 1}, files["a"])
    assert cache.get(k) is None and k not in cache
    feats = np.arange(12, dtype=np.float32).reshape(4, 3)
    cache.put(k, {"audio": feats, "text": np.asarray("kids door")}, {"source": str(files["a"])})
    got = cache.get(k)
    assert got is not None and set(got) == {"audio", "text"}
    np.testing.assert_array_equal(got["audio"], feats)
    assert got["audio"].dtype == np.float32 and str(got["text"]) == "kids door"
    entry = cache.load(k)
    assert entry is not None and entry.meta == {"source": str(files["a"])} and entry.error is None
    assert cache.keys() == [k]
    with pytest.raises(ValueError, match="reserved"):
        cache.put(k, {"__meta__": feats})
    with pytest.raises(ValueError, match="no pickles"):
        cache.put(k, {"bad": np.array([{"a": 1}], dtype=object)})


@pytest.mark.parametrize("damage", ["garbage", "half", "empty"])
def test_corrupt_entry_is_removed_with_warning(tmp_path: Path, damage: str) -> None:
    cache = FeatureCache(tmp_path)
    k = "ab" + "0" * 62
    path = cache.put(k, {"audio": np.ones((50, 40), np.float32)}, {})
    data = path.read_bytes()
    path.write_bytes({"garbage": b"not a zip at all", "half": data[: len(data) // 2], "empty": b""}[damage])
    with pytest.warns(UserWarning, match="corrupt feature cache entry removed"):
        assert cache.get(k) is None
    assert not path.exists()
    assert cache.get(k) is None  # now simply absent


def test_failed_write_leaves_old_entry_and_no_partial_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = FeatureCache(tmp_path)
    k = "cd" + "1" * 62
    cache.put(k, {"audio": np.zeros((2, 2), np.float32)}, {"v": 1})

    def dying_savez(fh: object, **arrays: np.ndarray) -> None:
        fh.write(b"PK\x03\x04 partial")  # type: ignore[attr-defined]
        raise KeyboardInterrupt  # as if the run were interrupted mid-write

    monkeypatch.setattr(np, "savez", dying_savez)
    with pytest.raises(KeyboardInterrupt):
        cache.put(k, {"audio": np.ones((2, 2), np.float32)}, {"v": 2})
    monkeypatch.undo()
    entry = cache.load(k)
    assert entry is not None and entry.meta == {"v": 1}  # the old complete entry survives
    assert [p.name for p in cache.path_for(k).parent.iterdir()] == [f"{k}.npz"]  # no temp file left


def test_cached_failures_are_re_raised(tmp_path: Path) -> None:
    cache = FeatureCache(tmp_path)
    k1, k2 = "ef" + "2" * 62, "ef" + "3" * 62
    cache.put_error(k1, ModalityMissing("/x/quiet.wav", "silent audio (-inf dBFS)"), {"modality": "audio"})
    cache.put_error(k2, FeatureError("/x/bad.wav", "cannot decode audio: Format not recognised"))
    with pytest.raises(ModalityMissing, match="silent audio") as ei:
        cache.get(k1)
    assert ei.value.path == Path("/x/quiet.wav")
    with pytest.raises(FeatureError, match="Format not recognised") as ei2:
        cache.get(k2)
    assert not isinstance(ei2.value, ModalityMissing)
    entry = cache.load(k1)
    assert entry is not None and entry.arrays == {} and entry.meta["modality"] == "audio"
