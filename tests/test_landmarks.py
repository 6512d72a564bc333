"""68-point landmarks: normalisation (no dlib needed), install errors, dlib on real faces."""

from __future__ import annotations

import pickle
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from mmfer.config import FaceConfig
from mmfer.errors import ConfigError
from mmfer.features.face import landmarks as L
from mmfer.features.face.extractor import FaceFeatureExtractor

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
CKPLUS = DATA / "ckplus48" / "CK+48"


def face_points(seed: int = 0) -> np.ndarray:
    """A plausible 68-point face (eyes level, mouth below) with per-point jitter: ``(68, 2)``."""
    rng = np.random.default_rng(seed)
    p = np.zeros((68, 2))
    t = np.linspace(-1.4, 1.4, 17)
    p[0:17] = np.c_[np.sin(t), 0.9 * np.cos(t) - 0.1]  # jaw: left temple, chin, right temple
    p[17:27] = np.c_[np.linspace(-0.8, 0.8, 10), np.full(10, -0.55)]
    p[27:36] = np.c_[
        np.r_[np.zeros(4), np.linspace(-0.2, 0.2, 5)], np.r_[np.linspace(-0.3, 0.2, 4), np.full(5, 0.3)]
    ]
    ang = np.linspace(0, 2 * np.pi, 6, endpoint=False)
    p[36:42] = np.c_[-0.45 + 0.15 * np.cos(ang), -0.3 + 0.06 * np.sin(ang)]
    p[42:48] = np.c_[0.45 + 0.15 * np.cos(ang), -0.3 + 0.06 * np.sin(ang)]
    ang = np.linspace(0, 2 * np.pi, 20, endpoint=False)
    p[48:68] = np.c_[0.35 * np.cos(ang), 0.6 + 0.12 * np.sin(ang)]
    return p + rng.normal(0, 0.02, p.shape)


def similarity(p: np.ndarray, scale: float, angle: float, shift: tuple[float, float]) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return scale * p @ np.array([[c, s], [-s, c]]) + np.asarray(shift)


def test_normalisation_is_invariant_to_position_scale_and_roll() -> None:
    p = face_points(1)
    ref = L.normalise_landmarks(p)
    assert ref.shape == (136,) and ref.dtype == np.float32
    for scale, angle, shift in [(3.0, 0.3, (120, 80)), (0.2, -0.7, (-5, 2)), (57.0, np.pi / 2, (0, 0))]:
        np.testing.assert_allclose(L.normalise_landmarks(similarity(p, scale, angle, shift)), ref, atol=1e-5)
    # What is left: the eyes on a horizontal line, one inter-ocular distance apart, left eye on the left.
    q = ref.reshape(68, 2)
    left, right = q[36:42].mean(0), q[42:48].mean(0)
    assert abs(left[1] - right[1]) < 1e-6 and right[0] > left[0]
    assert np.linalg.norm(right - left) == pytest.approx(1.0, abs=1e-6)
    assert np.allclose(q.mean(0), 0, atol=1e-6)


def test_normalisation_keeps_expression_and_batches() -> None:
    p = face_points(2)
    smile = p.copy()
    smile[48:68, 1] -= 0.1 * np.abs(smile[48:68, 0])  # mouth corners up
    assert np.abs(L.normalise_landmarks(smile) - L.normalise_landmarks(p)).max() > 0.02
    batch = np.stack([p, similarity(p, 2.0, 0.5, (10, 10)), smile])  # (3, 68, 2)
    out = L.normalise_landmarks(batch)
    assert out.shape == (3, 136)
    np.testing.assert_allclose(out[0], out[1], atol=1e-5)


def test_normalisation_degenerate_and_bad_shapes() -> None:
    assert np.array_equal(L.normalise_landmarks(np.full((68, 2), 7.0)), np.zeros(136, np.float32))
    p = face_points(3)
    p[36:48] = p[36:48].mean(0)  # both eye centres coincide: scale falls back to the RMS radius
    out = L.normalise_landmarks(p)
    assert np.isfinite(out).all() and np.abs(out).max() > 0
    with pytest.raises(ValueError, match="68, 2"):
        L.normalise_landmarks(np.zeros((5, 2)))


def test_missing_dlib_or_predictor_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "dlib", None)  # `import dlib` now raises ImportError
    with pytest.raises(ConfigError, match=r"landmarks.*pip install 'mmfer\[landmarks\]'"):
        FaceFeatureExtractor(FaceConfig(backbone="fer2013", landmarks=True))
    with pytest.raises(ConfigError, match=r"dlib_hog.*pip install 'mmfer\[landmarks\]'"):
        FaceFeatureExtractor(FaceConfig(detector="dlib_hog"))
    real = L.importlib.util.find_spec
    monkeypatch.setattr(
        L.importlib.util, "find_spec", lambda name: None if name == "face_recognition_models" else real(name)
    )
    with pytest.raises(ConfigError, match=r"face_recognition_models.*pip install 'mmfer\[landmarks\]'"):
        L.shape_predictor_path()


def test_landmarks_off_leaves_dims_and_keys_alone() -> None:
    ext = FaceFeatureExtractor(FaceConfig(backbone="fer2013"))
    assert ext.dim == 135 and ext.landmarks is None and "landmarks" not in ext.config_dict()


# --------------------------------------------------------------------------- with dlib installed


@pytest.fixture(scope="module")
def dlib_ext() -> FaceFeatureExtractor:
    pytest.importorskip("dlib")
    # Not importorskip: importing face_recognition_models needs pkg_resources; mmfer only reads its file.
    if L.importlib.util.find_spec("face_recognition_models") is None:
        pytest.skip("face_recognition_models not installed (pip install 'mmfer[landmarks]')")
    return FaceFeatureExtractor(FaceConfig(backbone="fer2013", detector="none", landmarks=True))


def test_landmark_extractor_shape_key_and_pickle(dlib_ext: FaceFeatureExtractor) -> None:
    frame = np.zeros((96, 96, 3), np.uint8)
    cv2.circle(frame, (48, 48), 30, (200, 180, 160), -1)
    feats = dlib_ext.extract_frames(frame[None])
    assert feats.shape == (1, 271) and dlib_ext.dim == 271 and np.isfinite(feats).all()
    key = dlib_ext.config_dict()
    assert key["landmarks"]["predictor"] == "shape_predictor_68_face_landmarks.dat"
    clone = pickle.loads(pickle.dumps(dlib_ext))
    np.testing.assert_array_equal(clone.extract_frames(frame[None]), feats)


@pytest.mark.realdata
def test_ckplus_landmarks_are_face_shaped_and_hog_finds_faces(dlib_ext: FaceFeatureExtractor) -> None:
    if not CKPLUS.is_dir():
        pytest.skip(f"{CKPLUS} not present")
    files = sorted(CKPLUS.glob("*/*.png"))[::40]  # ~25 images over all classes and many subjects
    frames = [cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in files]
    lm = dlib_ext.extract_frames(frames)[:, 135:].reshape(-1, 68, 2)  # (N, 68, 2) normalised
    eyes_y = lm[:, 36:48, 1].mean(1)
    nose_y = lm[:, 30, 1]
    mouth_y = lm[:, 48:68, 1].mean(1)
    chin_y = lm[:, 8, 1]
    # Image y grows downwards: eyes above the nose tip above the mouth above the chin, every face.
    assert (eyes_y < nose_y).all() and (nose_y < mouth_y).all() and (mouth_y < chin_y).all()
    jaw_width = lm[:, 16, 0] - lm[:, 0, 0]
    assert (jaw_width > 1.5).all() and (jaw_width < 3.0).all()  # in inter-ocular distances
    hog = FaceFeatureExtractor(FaceConfig(backbone="fer2013", detector="dlib_hog"))
    res = hog.run_frames(frames, source="ck+ sample")
    assert res.no_face <= len(frames) // 10
