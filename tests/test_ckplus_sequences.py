"""CK+ sequences as samples (``ckplus`` option ``as_sequences``) and ``frame_images`` extraction."""

from __future__ import annotations

import os
import sys
import types
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mmfer.data  # noqa: F401  (registers the loaders)
from mmfer.config import FaceConfig, FeatureConfig, FusionConfig, TextConfig
from mmfer.data.ckplus import load_ckplus
from mmfer.data.corpora import load_corpus, skipped_files
from mmfer.data.splits import make_splits
from mmfer.data.table import FRAME_IMAGES, describe_samples, join_frame_images, split_frame_images
from mmfer.errors import ConfigError, DataError, ModalityMissing
from mmfer.features import extractors
from mmfer.features.extract import extract_features
from mmfer.features.frame_images import expand_frame_images
from mmfer.fusion.fuser import Fuser

CKPLUS48 = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ckplus48" / "CK+48"


def write_frame(path: Path, frame: int) -> Path:
    """A stand-in image whose content encodes its frame number (read by :class:`FrameFace`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(f"frame {frame} of {path.stem}".encode())
    return path


def ck48(root: Path, seqs: dict[str, tuple[str, list[int]]]) -> Path:
    """CK+48-like tree: ``{"S005_001": ("anger", [9, 10, 11])}`` -> ``anger/S005_001_00000009.png``, ..."""
    for seq, (cls, frames) in seqs.items():
        for k in frames:
            write_frame(root / cls / f"{seq}_{k:08d}.png", k)
    return root


SEQS = {
    "S005_001": ("disgust", [9, 10, 11]),
    "S010_004": ("anger", [17, 18, 19]),
    "S010_006": ("happy", [98, 99, 100]),
    "S138_008": ("contempt", [6, 7, 8]),
}


class FrameFace:
    """Stands in for FaceFeatureExtractor: ``(1, 2)`` features ``[frame number, file length]``."""

    calls: list[str] = []  # noqa: RUF012 - shared log on purpose

    def __init__(self, cfg: FaceConfig) -> None:
        self.cfg = cfg

    def config_dict(self) -> dict[str, object]:
        return {"extractor": "frame-face"}

    def extract_image(self, path: str) -> np.ndarray:
        FrameFace.calls.append(Path(path).name)
        text = Path(path).read_text()
        if text.startswith("broken"):
            raise ModalityMissing(path, "no face found")
        return np.array([[float(text.split()[1]), float(len(text))]], dtype=np.float32)


@pytest.fixture
def frame_face(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[FrameFace]]:
    mod = types.ModuleType("mmfer.features.face.extractor")
    mod.FaceFeatureExtractor = FrameFace  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "mmfer.features.face.extractor", mod)
    monkeypatch.setattr(extractors, "_PROCESS_EXTRACTORS", {})  # no extractor built by another test
    FrameFace.calls = []
    yield FrameFace


def test_one_sample_per_sequence_frames_in_order(tmp_path: Path) -> None:
    root = ck48(tmp_path / "CK+48", SEQS)
    df = load_ckplus(root, as_sequences=True)
    assert df["id"].tolist() == sorted(SEQS)
    for seq, (cls, frames) in SEQS.items():
        r = df[df["id"] == seq].iloc[0]
        files = split_frame_images(r[FRAME_IMAGES])
        assert files == [str(root / cls / f"{seq}_{k:08d}.png") for k in frames]
        assert r["image"] == files[-1] and r["n_frames"] == 3 and r["sequence"] == seq
        assert r["speaker"] == seq[:4]
    emo = dict(zip(df["id"], df["emotion"], strict=True))
    assert emo == {"S005_001": "disgust", "S010_004": "angry", "S010_006": "happy", "S138_008": "contempt"}
    assert skipped_files(df) == []
    # the same tree, one image per row: 12 images, the same subjects
    per_image = load_ckplus(root)
    assert len(per_image) == 12 and set(per_image["speaker"]) == set(df["speaker"])
    assert describe_samples(df) == "4 samples (image sequences of 3 frames)"
    assert describe_samples(per_image) == "12 samples"
    # through the registry, as data.options: {as_sequences: true}
    assert load_corpus("ckplus", root, as_sequences=True)["id"].tolist() == df["id"].tolist()


def test_odd_or_missing_frames_skip_the_sequence_by_name(tmp_path: Path) -> None:
    root = ck48(tmp_path / "CK+48", {**SEQS, "S020_002": ("fear", [4, 6, 7])})
    write_frame(root / "sadness" / "S030_001_peak.png", 0)
    write_frame(root / "sadness" / "S030_001_00000003.png", 3)
    df = load_ckplus(root, as_sequences=True)
    assert sorted(df["id"]) == sorted(SEQS)
    gap = [s for s in skipped_files(df) if "S020_002" in Path(s["path"]).name]
    assert len(gap) == 3 and all("missing frames" in s["reason"] and "[5]" in s["reason"] for s in gap)
    odd = [s for s in skipped_files(df) if "S030_001" in Path(s["path"]).name]
    assert len(odd) == 2 and all(
        "S030_001_peak.png does not end in a frame number" in s["reason"] for s in odd
    )


def test_sequence_across_two_classes_is_an_error(tmp_path: Path) -> None:
    root = ck48(tmp_path / "CK+48", {"S005_001": ("anger", [9, 10])})
    write_frame(root / "happy" / "S005_001_00000011.png", 11)
    with pytest.raises(DataError, match="S005_001 carry different emotions") as info:
        load_ckplus(root, as_sequences=True)
    assert "S005_001_00000011.png" in str(info.value)


def test_original_layout_sequences(tmp_path: Path) -> None:
    base = tmp_path / "ck"
    for k in range(1, 6):
        write_frame(base / "cohn-kanade-images" / "S005" / "001" / f"S005_001_{k:08d}.png", k)
    (base / "Emotion" / "S005" / "001").mkdir(parents=True)
    (base / "Emotion" / "S005" / "001" / "S005_001_00000005_emotion.txt").write_text("3.0\n")
    df = load_ckplus(base, as_sequences=True, last_n=3)
    assert df["id"].tolist() == ["S005_001"] and df["emotion"].tolist() == ["disgust"]
    names = [Path(p).name for p in split_frame_images(df[FRAME_IMAGES].iloc[0])]
    assert names == [f"S005_001_{k:08d}.png" for k in (3, 4, 5)]
    assert df["frames"].isna().all()  # the face comes from the listed frames, not the whole folder
    with pytest.raises(ConfigError, match="include_neutral"):
        load_ckplus(base, as_sequences=True, include_neutral=True)


def test_frame_images_cell_round_trip() -> None:
    paths = ["/a/S005_001_00000009.png", "/a/S005_001_00000010.png"]
    assert split_frame_images(join_frame_images(paths)) == paths
    assert split_frame_images(None) == [] and split_frame_images(float("nan")) == []
    with pytest.raises(DataError, match="separator"):
        join_frame_images([f"/a{os.pathsep}b.png"])


def test_fused_sequence_has_three_valid_steps_in_order(tmp_path: Path, frame_face: type[FrameFace]) -> None:
    root = ck48(tmp_path / "CK+48", SEQS)
    cfg = FeatureConfig()
    cache = tmp_path / "cache"
    # the per-image protocol first: every image extracted once
    extract_features(load_ckplus(root), cfg, cache, modalities=("face",), progress=False)
    assert len(frame_face.calls) == 12
    seq = load_ckplus(root, as_sequences=True)
    feats = extract_features(seq, cfg, cache, modalities=("face",), progress=False)
    assert len(frame_face.calls) == 12  # every frame came from the per-image cache entries
    assert list(feats) == seq["id"].tolist()  # no hidden frame rows left
    for sid, (_, frames) in SEQS.items():
        assert feats[sid].face.shape == (3, 2)
        assert feats[sid].face[:, 0].tolist() == frames
    fuser = Fuser(FusionConfig(modalities=["face"], steps=3), TextConfig())
    batch = fuser.fit_transform([feats[s] for s in seq["id"]])
    assert batch.x.shape[:2] == (4, 3) and batch.mask.all()
    # standardisation is increasing per feature, so frame order survives into the steps
    assert (np.diff(batch.x[:, :, 0], axis=1) > 0).all()


def test_one_bad_frame_masks_the_sequence_face(tmp_path: Path, frame_face: type[FrameFace]) -> None:
    root = ck48(tmp_path / "CK+48", SEQS)
    (root / "anger" / "S010_004_00000018.png").write_text("broken")
    seq = load_ckplus(root, as_sequences=True)
    feats = extract_features(seq, FeatureConfig(), tmp_path / "cache", modalities=("face",), progress=False)
    bad = feats["S010_004"]
    assert bad.face is None and bad.issues["face"].startswith("frame 2/3: ")
    assert "S010_004_00000018.png" in bad.issues["face"] and "no face found" in bad.issues["face"]
    assert feats["S005_001"].face is not None


def test_expand_keeps_other_modalities_and_caps_frames(tmp_path: Path) -> None:
    files = [str(write_frame(tmp_path / f"S1_1_{k:08d}.png", k)) for k in range(10)]
    table = pd.DataFrame(
        {
            "id": ["a", "b"],
            "image": [files[-1], files[0]],
            "audio": ["a.wav", None],
            FRAME_IMAGES: [join_frame_images(files), None],
        }
    ).astype(object)
    out, parts = expand_frame_images(table, max_frames=4)
    assert parts["a"] == [f"a frame {k}/4" for k in range(1, 5)]
    frames = out.set_index("id").loc[parts["a"], "image"].tolist()
    assert frames == [files[k] for k in (0, 3, 6, 9)]  # evenly spaced, first and last kept
    a, b = out.set_index("id").loc["a"], out.set_index("id").loc["b"]
    assert a["image"] is None and a["audio"] == "a.wav"  # face from the frames only
    assert b["image"] == files[0]  # a still image stays a still image
    assert expand_frame_images(table.drop(columns=[FRAME_IMAGES]), 4)[1] == {}


@pytest.mark.realdata
def test_ckplus48_sequences_real() -> None:
    if not CKPLUS48.is_dir():
        pytest.skip(f"{CKPLUS48} absent")
    df = load_ckplus(CKPLUS48, as_sequences=True)
    per_image = load_ckplus(CKPLUS48)
    # CK+48 holds the last 3 frames of each of the 327 labelled CK+ sequences (981 images)
    assert len(df) == 327 and set(df["n_frames"]) == {3} and skipped_files(df) == []
    assert df["speaker"].nunique() == 118
    assert df["emotion"].value_counts().to_dict() == {
        "surprised": 83,
        "happy": 69,
        "disgust": 59,
        "angry": 45,
        "sad": 28,
        "fearful": 25,
        "contempt": 18,
    }
    frames = [f for cell in df[FRAME_IMAGES] for f in split_frame_images(cell)]
    assert sorted(frames) == sorted(per_image["image"])
    label = dict(zip(per_image["image"], per_image["emotion"], strict=True))
    assert all(
        label[f] == e
        for cell, e in zip(df[FRAME_IMAGES], df["emotion"], strict=True)
        for f in split_frame_images(cell)
    )
    folds = make_splits(df, "group_kfold", 10, 0)
    for tr, te in folds:
        assert not set(df["speaker"].iloc[tr]) & set(df["speaker"].iloc[te])
    assert np.array_equal(np.sort(np.concatenate([te for _, te in folds])), np.arange(327))
