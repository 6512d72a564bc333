"""Inference wing: one extraction path, speaker enrolment, composition, default model, debug crops."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import mmfer
from infer_assets import CLASSES, SR, Assets, tone, write_video
from mmfer.config import AudioConfig, FeatureConfig, FusionConfig, TextConfig
from mmfer.emotions import label_order
from mmfer.errors import ConfigError
from mmfer.features.extract import extract_features, extract_sample
from mmfer.features.units import SampleFeatures
from mmfer.inference.compose import ComposedPredictor, Part, compose, fuse_scores, labelled_clips
from mmfer.inference.predictor import Predictor


def _mfcc_cfg() -> FeatureConfig:
    return FeatureConfig(audio=AudioConfig(extractor="mfcc", n_mfcc=13, n_mels=26))


# --------------------------------------------------------------------------- one extraction path


def test_extract_sample_equals_training_extraction(tmp_path: Path) -> None:
    """In-memory inference extraction gives exactly the cached training features."""
    import pandas as pd

    from mmfer.data.table import COLUMNS

    wav = tmp_path / "a.wav"
    sf.write(wav, tone(440.0, 0.8, seed=3), SR)
    cfg = _mfcc_cfg()
    table = pd.DataFrame([{"id": "a", "audio": str(wav), "transcript": "a happy day"}]).reindex(
        columns=list(COLUMNS)
    )
    table = table.astype(object).where(table.notna(), None)
    trained = extract_features(table, cfg, tmp_path / "cache", modalities=("audio", "text"), progress=False)[
        "a"
    ]
    mem = extract_sample(cfg, modalities=("audio", "text"), audio=wav, transcript="a happy day")
    np.testing.assert_array_equal(mem.audio, trained.audio)  # (T_a, D_a)
    assert mem.text == trained.text and not mem.issues
    assert not (tmp_path / "cache2").exists()


def test_silence_test_is_the_same_for_files_and_windows(tmp_path: Path) -> None:
    """A short burst in silence: whole-clip RMS is below the threshold, the loud-frame level is not;
    the file path and the in-memory (stream) path must agree (both keep the audio)."""
    from mmfer.features.voice.loading import rms_dbfs

    wave = np.zeros(SR * 2, dtype=np.float32)
    wave[: SR // 5] = tone(300.0, 0.2, seed=0, amp=0.02)  # (n,) 0.2 s of quiet speech-like tone
    cfg = _mfcc_cfg()
    assert rms_dbfs(wave) < cfg.audio.silence_dbfs + 20  # the old whole-window test was this crude
    wav = tmp_path / "burst.wav"
    sf.write(wav, wave, SR, subtype="FLOAT")  # no 16-bit quantisation: same samples both ways
    from_file = extract_sample(cfg, modalities=("audio",), audio=wav)
    from_wave = extract_sample(cfg, modalities=("audio",), wave=wave, sample_rate=SR)
    assert (from_file.audio is None) == (from_wave.audio is None)
    np.testing.assert_allclose(from_file.audio, from_wave.audio, atol=1e-5)
    silent = extract_sample(cfg, modalities=("audio",), wave=np.zeros(SR, np.float32), sample_rate=SR)
    assert silent.audio is None and "silent audio" in silent.issues["audio"]


def test_stream_over_whole_clip_equals_predict(av_predictor: Predictor, tmp_path: Path) -> None:
    """One window covering the whole clip gets the features (and probabilities) predict gets."""
    from mmfer.inference.stream import stream_predictions

    vid = write_video(tmp_path / "clip.mp4", freq=CLASSES["sad"][0], seconds=2.0)
    seen: list[SampleFeatures] = []
    orig = av_predictor.predict_features

    def spy(feats, names, **kw):  # type: ignore[no-untyped-def]
        seen.extend(feats)
        return orig(feats, names, **kw)

    av_predictor.predict_features = spy  # type: ignore[method-assign]
    try:
        wins = list(stream_predictions(av_predictor, vid, window_s=2.0, hop_s=2.0, warmup=False))
    finally:
        del av_predictor.predict_features
    assert len(wins) == 1 and len(seen) == 1
    whole = extract_sample(av_predictor.features_cfg, modalities=("face", "audio"), video=vid, audio=vid)
    np.testing.assert_allclose(seen[0].face, whole.face, atol=1e-5)  # (T_v, D_v)
    np.testing.assert_allclose(seen[0].audio, whole.audio, atol=1e-5)  # (T_a, D_a)
    (p,) = av_predictor.predict(vid)
    for lab in p.probabilities:
        assert wins[0].prediction.probabilities[lab] == pytest.approx(p.probabilities[lab], abs=1e-5)


def test_face_detection_outcome_is_recorded_and_drawn(av_predictor: Predictor, tmp_path: Path) -> None:
    """No face in a gradient video: the outcome is in the notes, and a contact sheet is written."""
    from mmfer.inference.debug import write_debug

    vid = write_video(tmp_path / "noface.mp4", freq=CLASSES["happy"][0], seconds=1.5)
    av_predictor.debug = True
    try:
        (p,) = av_predictor.predict(vid)
    finally:
        av_predictor.debug = False
    assert p.notes["face"].startswith("face found in 0/")
    csv_path = write_debug(tmp_path / "dbg", av_predictor.face_results, av_predictor.features_cfg.face)
    text = csv_path.read_text()
    assert "noface.mp4" in text and ",0,0.000," in text
    import cv2

    sheet = cv2.imread(str(tmp_path / "dbg" / "noface.png"))
    assert sheet is not None and sheet.shape[0] % 96 == 0 and sheet.shape[1] % 96 == 0


# --------------------------------------------------------------------------- speaker enrolment


@pytest.fixture(scope="module")
def norm_predictor(tmp_path_factory: pytest.TempPathFactory) -> tuple[Predictor, Path]:
    """Audio-only logreg trained with fusion.speaker_norm=true on tones of two speakers."""
    import pandas as pd

    from mmfer.config import ModelConfig, TrainConfig
    from mmfer.features.voice.mfcc import MFCCExtractor
    from mmfer.pipeline import fit_recognizer

    root = tmp_path_factory.mktemp("norm")
    cfg = _mfcc_cfg()
    mfcc = MFCCExtractor(cfg.audio)
    records, feats = [], {}
    for spk, shift in (("s0", 1.0), ("s1", 1.3)):
        for emo, (freq, _) in CLASSES.items():
            for k in range(3):
                sid = f"{spk}{emo}{k}"
                records.append({"id": sid, "speaker": spk, "emotion": emo})
                feats[sid] = SampleFeatures(audio=mfcc.transform_wave(tone(freq * shift, 0.5, seed=k), SR))
    out = fit_recognizer(
        pd.DataFrame(records), feats, np.arange(len(records)), labels=list(CLASSES),
        model_cfg=ModelConfig(name="logreg"), fusion_cfg=FusionConfig(modalities=["audio"], steps=4,
        speaker_norm=True), text_cfg=TextConfig(), train_cfg=TrainConfig(progress=False), features_cfg=cfg,
    )  # fmt: skip
    enrol_dir = root / "enrol"
    enrol_dir.mkdir()
    for i, (freq, _) in enumerate(CLASSES.values()):
        sf.write(enrol_dir / f"e{i}.wav", tone(freq * 1.15, 0.6, seed=50 + i), SR)
    return mmfer.load(out.recognizer.save(root / "norm.safetensors")), enrol_dir


def test_enrolment_statistics_normalise_later_clips(
    norm_predictor: tuple[Predictor, Path], assets: Assets, tmp_path: Path
) -> None:
    pred, enrol_dir = norm_predictor
    clip = assets.wavs["happy"]
    (before,) = pred.predict(clip)
    assert "no enrolment" in before.notes["speaker_norm"]
    info = pred.enrol(enrol_dir)
    assert len(info["clips"]) == 3 and info["frames"]["audio"] > 0
    (after,) = pred.predict(clip)
    assert "enrolment statistics" in after.notes["speaker_norm"]
    # by hand: z-normalise the clip's frames with the enrolment clips' frame mean/std, then fuse + classify
    enrol_feats = [
        extract_sample(pred.features_cfg, modalities=("audio",), audio=p) for p in sorted(enrol_dir.iterdir())
    ]
    allf = np.concatenate([f.audio for f in enrol_feats]).astype(np.float64)  # (sum T, D)
    x = extract_sample(pred.features_cfg, modalities=("audio",), audio=clip)
    stats = {"s": {"audio": {"mean": allf.mean(0), "std": np.maximum(allf.std(0), 1e-6)}}}
    fused = pred.recognizer.fuser.transform([x], speakers=["s"], stats=stats)
    want = pred.recognizer.estimator.predict_proba(fused.x, fused.mask)[0]  # (C,)
    np.testing.assert_allclose([after.probabilities[lab] for lab in pred.labels], want, atol=1e-6)
    # stored in the checkpoint: a reload predicts the same without enrolling again
    again = mmfer.load(pred.save(tmp_path / "enrolled.safetensors"))
    (reloaded,) = again.predict(clip)
    assert reloaded.probabilities == pytest.approx(after.probabilities)
    pred.enrolment = None
    pred.recognizer.extra.pop("enrolment", None)


def test_enrolment_needs_a_speaker_normalised_model(predictor: Predictor, assets: Assets) -> None:
    with pytest.raises(ConfigError, match="speaker_norm"):
        predictor.enrol(assets.wavs["sad"])


def test_cli_predict_enrol(
    norm_predictor: tuple[Predictor, Path], assets: Assets, tmp_path: Path, capsys
) -> None:  # type: ignore[no-untyped-def]
    from mmfer.inference.cli import main

    pred, enrol_dir = norm_predictor
    ck = pred.save(tmp_path / "m.safetensors")
    out = tmp_path / "enrolled.safetensors"
    args = ["predict", str(assets.wavs["angry"]), "-m", str(ck), "--enrol", str(enrol_dir)]
    assert main([*args, "--save-enrolled", str(out), "--format", "json"]) == 0
    assert "enrolment statistics" in capsys.readouterr().out
    assert mmfer.load(out).enrolment is not None


# --------------------------------------------------------------------------- composition


def test_fuse_scores_missing_classes_and_missing_parts() -> None:
    class _P:  # the fusion only reads .labels of the predictor
        def __init__(self, labels: list[str]) -> None:
            self.labels = labels

    face = Part("face", _P(["happy", "sad", "contempt"]), {}, 1.0)  # type: ignore[arg-type]
    voice = Part("voice", _P(["neutral", "happy", "sad"]), {}, 1.0)  # type: ignore[arg-type]
    labels = ["neutral", "happy", "sad", "contempt"]
    qf, qv = np.array([0.6, 0.3, 0.1]), np.array([0.2, 0.2, 0.6])
    p, known = fuse_scores([qf, qv], [face, voice], labels, "log")
    assert known.all() and p.sum() == pytest.approx(1.0)
    # a class a part does not know gets that part's mean log-probability (no evidence either way)
    lf, lv = np.log(qf), np.log(qv)
    s = np.array(
        [
            (lf.mean() + lv[0]) / 2,  # neutral: face does not know it
            (lf[0] + lv[1]) / 2,  # happy
            (lf[1] + lv[2]) / 2,  # sad
            (lf[2] + lv.mean()) / 2,  # contempt: voice does not know it
        ]
    )
    np.testing.assert_allclose(p, np.exp(s) / np.exp(s).sum())
    p, known = fuse_scores([qf, None], [face, voice], labels, "prob")  # silent audio: face only
    assert list(known) == [False, True, True, True] and p[0] == 0.0
    np.testing.assert_allclose(p[1:], qf)


class _Labels:  # the fusion only reads .labels of a part's predictor
    def __init__(self, labels: list[str]) -> None:
        self.labels = labels


@pytest.mark.parametrize("mode", ["log", "prob"])
def test_fusion_gives_no_free_pass_to_a_class_one_part_knows(mode: str) -> None:
    """Issue 20's example: voice sad 0.30 / neutral 0.25, face sad 0.20 (face has no neutral)."""
    voice = Part("voice", _Labels(["neutral", "calm", "happy", "sad", "angry"]), {}, 1.0)  # type: ignore[arg-type]
    face = Part("face", _Labels(["happy", "sad", "angry", "surprised", "fearful"]), {}, 1.0)  # type: ignore[arg-type]
    labels = ["neutral", "calm", "happy", "sad", "angry", "fearful", "surprised"]
    qv = np.array([0.25, 0.15, 0.15, 0.30, 0.15])
    qf = np.array([0.20, 0.20, 0.20, 0.20, 0.20])  # sad 0.20, and no opinion otherwise
    p, _ = fuse_scores([qv, qf], [voice, face], labels, mode)
    assert labels[int(np.argmax(p))] == "sad"


@pytest.mark.parametrize("mode", ["log", "prob"])
def test_fusion_agrees_when_every_part_agrees(mode: str) -> None:
    """Both parts put their highest probability on one shared class: so must the fusion."""
    rng = np.random.default_rng(0)
    voice_labels = ["neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised"]
    face_labels = ["angry", "contempt", "disgust", "fearful", "happy", "sad", "surprised"]
    labels = label_order(set(voice_labels) | set(face_labels))
    voice = Part("voice", _Labels(voice_labels), {}, 1.0)  # type: ignore[arg-type]
    face = Part("face", _Labels(face_labels), {}, 1.0)  # type: ignore[arg-type]
    shared = sorted(set(voice_labels) & set(face_labels))
    for trial in range(200):
        target = shared[trial % len(shared)]
        qv, qf = rng.dirichlet(np.ones(8)), rng.dirichlet(np.ones(7))
        # make the target each part's top class by a clear margin
        qv[voice_labels.index(target)] = qv.max() + 0.2
        qf[face_labels.index(target)] = qf.max() + 0.2
        qv, qf = qv / qv.sum(), qf / qf.sum()
        p, _ = fuse_scores([qv, qf], [voice, face], labels, mode)
        assert labels[int(np.argmax(p))] == target


def test_compose_save_load_predict_and_fit_weights(
    predictor: Predictor, norm_predictor: tuple[Predictor, Path], assets: Assets, tmp_path: Path
) -> None:
    words, _ = norm_predictor[0], None
    model = compose(
        {"words": predictor, "tones": words},
        label_maps={"tones": {"angry": None}},  # drop one class of one part
        weights={"words": 2.0},
        about={"tones": {"licence": "test"}},
    )
    assert model.coverage()["angry"] == ["words"]
    path = model.save(tmp_path / "composed.safetensors")
    loaded = mmfer.load(path)
    assert isinstance(loaded, ComposedPredictor) and loaded.parts[1].about == {"licence": "test"}
    assert [p.weight for p in loaded.parts] == [2.0, 1.0]
    clips = [assets.wavs[e] for e in CLASSES]
    preds = loaded.predict(clips)
    for p in preds:
        assert p.error is None and sum(p.probabilities.values()) == pytest.approx(1.0)
        assert "decision-level log fusion of words + tones" in p.notes["fusion"]
    # by hand for the first clip
    a = predictor.predict(clips[0])[0].probabilities
    b = words.predict(clips)[0].probabilities  # speaker-normalised: same batch as the composed call
    s = {lab: (2 * np.log(a[lab]) + np.log(b[lab])) / 3 for lab in ("happy", "sad")}
    # angry is dropped from "tones": it scores that part's mean log-probability over its known classes
    s["angry"] = (2 * np.log(a["angry"]) + np.mean([np.log(b["happy"]), np.log(b["sad"])])) / 3
    z = sum(np.exp(v) for v in s.values())
    for lab, v in s.items():
        assert preds[0].probabilities[lab] == pytest.approx(np.exp(v) / z, rel=1e-5)
    # weights fitted on labelled clips (sub-folders named by emotion)
    held = tmp_path / "held"
    for e, src in assets.wavs.items():
        (held / e).mkdir(parents=True)
        (held / e / src.name).write_bytes(src.read_bytes())
    paths, labels = labelled_clips(held)
    assert sorted(labels) == sorted(CLASSES)
    res = loaded.fit_weights(paths, labels, grid=4)
    assert sum(res["weights"].values()) == pytest.approx(1.0) and 0.0 <= res["accuracy"] <= 1.0


def test_cli_compose_and_about(
    assets: Assets, norm_predictor: tuple[Predictor, Path], tmp_path: Path, capsys
) -> None:  # type: ignore[no-untyped-def]
    from mmfer.inference.cli import main

    tones = norm_predictor[0].save(tmp_path / "tones.safetensors")
    out = tmp_path / "c.safetensors"
    rc = main(["compose", f"words={assets.checkpoint}", f"tones={tones}", "--out", str(out),
               "--map", "tones:angry=-", "--about-part", "tones:licence=CC0"])  # fmt: skip
    assert rc == 0 and out.is_file()
    capsys.readouterr()
    assert main(["predict", "-m", str(out), "--about"]) == 0
    text = capsys.readouterr().out
    assert "part tones" in text and "licence: CC0" in text and "class angry: known only to words" in text


# --------------------------------------------------------------------------- shipped default model


def test_shipped_default_model_loads_and_says_what_it_is(capsys) -> None:  # type: ignore[no-untyped-def]
    from mmfer.inference.cli import main
    from mmfer.inference.default import default_model_path

    path = default_model_path()
    assert path.stat().st_size < 5 * 2**20
    model = mmfer.load(None)
    assert isinstance(model, ComposedPredictor)
    assert {p.name for p in model.parts} == {"face", "voice"}
    # the face part is the zero-shot in-the-wild part (pretrained heads, 7 classes; no calm, no contempt)
    assert model.coverage()["calm"] == ["voice"] and "contempt" not in model.labels
    assert model.coverage()["neutral"] == ["voice", "face"]
    face = next(p for p in model.parts if p.name == "face")
    assert face.predictor.part_kind == "zeroshot-face"
    assert face.predictor.features_cfg.face.detector == "haar"
    assert main(["predict", "--about"]) == 0
    text = capsys.readouterr().out
    assert "RAVDESS" in text and "licence" in text
    assert "FER2013" in text and "face-api" in text and "MIT" in text and "frontal" in text
    assert "may include CK+" in text  # CK+48 is no clean zero-shot test for face-api


@pytest.mark.realdata
def test_default_model_on_a_real_ravdess_video() -> None:
    clip = Path(__file__).resolve().parents[2] / "shared/data/ravdess-av-actor05/01-01-03-01-01-02-05.mp4"
    if not clip.is_file():
        pytest.skip("RAVDESS actor-05 videos not available")
    (p,) = mmfer.load(None).predict(clip)
    assert p.error is None and set(p.modalities_used) == {"face", "audio"}
    assert p.notes["face.face"].startswith("face found in")


def test_exclude_speakers_option_pads_yaml_numbers() -> None:
    """data.options.exclude_speakers: YAML reads 05 as 5; it still drops the zero-padded actor "05"."""
    import pandas as pd

    from mmfer.data.corpora import _drop_speakers

    table = pd.DataFrame({"id": ["a", "b", "c"], "speaker": ["05", "12", "05"], "emotion": ["happy"] * 3})
    kept = _drop_speakers(table, [5], "ravdess")
    assert list(kept["id"]) == ["b"] and kept.attrs["excluded_speakers"] == ["05"]
    with pytest.raises(ConfigError, match="no speaker"):
        _drop_speakers(table, ["07"], "ravdess")
