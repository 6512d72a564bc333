"""Inference fast path: only the face frames the model reads are detected and embedded.

The accelerated path must give the same fused input and the same probabilities as the
reference path (every sampled frame): tolerance 1e-6 (the same arithmetic on the same
rows; only batch composition differs in the CNN).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from mmfer.config import FaceConfig, FusionConfig, TextConfig
from mmfer.features.face.extractor import FaceFeatureExtractor
from mmfer.features.units import SampleFeatures
from mmfer.fusion import Fuser
from test_face_features import face_frame

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
ACTOR05 = DATA / "ravdess-av-actor05"
TOL = 1e-6


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _face_fuser(steps: int, *, speaker_norm: bool = False) -> Fuser:
    rng = np.random.default_rng(0)
    train = [
        SampleFeatures(face=rng.normal(size=(int(rng.integers(1, 20)), 6)).astype(np.float32))
        for _ in range(8)
    ]
    cfg = FusionConfig(modalities=["face"], steps=steps, speaker_norm=speaker_norm)
    return Fuser(cfg, TextConfig()).fit(train, speakers=["a"] * 8 if speaker_norm else None)


@pytest.mark.parametrize("steps", [1, 3, 8])
@pytest.mark.parametrize("n", [1, 2, 8, 9, 13, 16])
def test_fused_input_from_used_frames_equals_all_frames(steps: int, n: int) -> None:
    fuser = _face_fuser(steps)
    full = np.random.default_rng(n).normal(size=(n, 6)).astype(np.float32)  # (T_v, D)
    idx = fuser.face_frames_used(n)
    if n <= steps:
        assert idx is None  # nothing to skip
        return
    assert idx is not None and len(idx) == steps and np.all(np.diff(idx) > 0)
    a = fuser.transform([SampleFeatures(face=full)])
    b = fuser.transform([SampleFeatures(face=full[idx])])  # (steps, D): what the fast path computes
    np.testing.assert_array_equal(a.x, b.x)
    np.testing.assert_array_equal(a.mask, b.mask)


def test_speaker_norm_reads_every_frame() -> None:
    assert _face_fuser(2, speaker_norm=True).face_frames_used(16) is None


def _video_frames() -> np.ndarray:
    """``(9, 240, 320, 3)`` frames: a drawn face moving, frames 0, 4 and 5 without a face."""
    frames = [face_frame(320, 240, dx=8 * (i - 4)) for i in range(9)]
    ramp = np.linspace(0, 255, 320).astype(np.uint8)
    blank = np.ascontiguousarray(np.broadcast_to(ramp[None, :, None], frames[0].shape))
    for i in (0, 4, 5):
        frames[i] = blank.copy()
    return np.stack(frames)


@pytest.mark.parametrize("used", [[0], [4], [5, 8], [0, 3, 6], list(range(9))])
def test_face_rows_and_fallback_boxes_match_the_full_run(used: list[int]) -> None:
    ext = FaceFeatureExtractor(FaceConfig(backbone="efficientnet_lite0", image_size=64, batch_size=4))
    frames = _video_frames()
    full = ext.run_frames(frames)
    assert full.no_face == 3
    fast = ext.run_frames(frames, frames_used=lambda n: used)
    # frames without a face borrow the nearest frame's box (the earlier one on a tie)
    assert fast.boxes == [full.boxes[i] for i in used]
    assert fast.no_face == sum(full.boxes[i] is None for i in used)
    assert fast.sampled == 9 and fast.frames == len(used)
    np.testing.assert_allclose(fast.features, full.features[used], atol=TOL, rtol=0)


@pytest.mark.realdata
@pytest.mark.skipif(not ACTOR05.is_dir(), reason=f"{ACTOR05} not present")
def test_default_model_fast_path_matches_reference_on_real_videos() -> None:
    """The shipped model on actor-05 videos: fast path (1 face frame) == every frame (debug path)."""
    import mmfer

    clips = sorted(ACTOR05.glob("01-*.mp4"))[:3] + sorted(ACTOR05.glob("02-*.mp4"))[:1]
    fast = mmfer.load(None)
    ref = mmfer.load(None)
    ref.debug = True  # reference path: every sampled frame is detected and embedded
    for a, b in zip(fast.predict(clips), ref.predict(clips), strict=True):
        assert a.error is None and b.error is None
        assert a.label == b.label
        for lab in a.probabilities:
            assert abs(a.probabilities[lab] - b.probabilities[lab]) <= TOL
