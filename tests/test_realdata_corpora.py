"""Loaders on the real RAVDESS speech and CK+48 copies (skipped when absent)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mmfer.data.ckplus import load_ckplus
from mmfer.data.ravdess import load_ravdess
from mmfer.data.splits import make_splits

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
RAVDESS = DATA / "ravdess-speech-16k"
CKPLUS48 = DATA / "ckplus48" / "CK+48"

pytestmark = pytest.mark.realdata


def test_ravdess_speech() -> None:
    if not RAVDESS.is_dir():
        pytest.skip(f"{RAVDESS} absent")
    df = load_ravdess(RAVDESS)
    assert len(df) == 1440
    assert df["speaker"].nunique() == 24
    assert df["emotion"].nunique() == 8
    assert df["audio"].notna().all() and df["video"].isna().all()
    assert set(df["vocal_channel"]) == {"speech"}
    # 60 clips per actor: 8 emotions, 2 statements, 2 repetitions, 2 intensities (1 for neutral).
    assert set(df.groupby("speaker").size()) == {60}
    assert set(df["transcript"]) == {"Kids are talking by the door", "Dogs are sitting by the door"}
    folds = make_splits(df, "loso", 5, 0)
    assert len(folds) == 24 and all(len(te) == 60 for _, te in folds)


def test_ckplus48() -> None:
    if not CKPLUS48.is_dir():
        pytest.skip(f"{CKPLUS48} absent")
    df = load_ckplus(CKPLUS48)
    assert len(df) == 981
    assert df["speaker"].nunique() == 118
    assert set(df["emotion"]) == {"angry", "contempt", "disgust", "fearful", "happy", "sad", "surprised"}
    assert df["image"].notna().all()
    folds = make_splits(df, "group_kfold", 5, 0)
    assert len(folds) == 5
    tested = np.sort(np.concatenate([te for _, te in folds]))
    assert np.array_equal(tested, np.arange(981))
