"""Prediction API (mmfer.inference.predictor), CLI (mmfer.inference.cli), streaming (inference.stream).

A tiny model is trained once per session on generated audio + transcripts
(MFCC and TF-IDF are cheap); :func:`shared_assets` is imported by the other
inference test modules so they reuse the same checkpoint.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import pickle
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import mmfer
from infer_assets import CLASSES, SR, Assets, face_audio_checkpoint, write_video
from mmfer.errors import DataError
from mmfer.inference.loader import load
from mmfer.inference.output import to_csv, to_json, to_table
from mmfer.inference.predictor import Predictor
from mmfer.inference.types import Prediction, resolve_inputs


def _check_valid(p: Prediction, labels: list[str]) -> None:
    assert p.error is None, p.error
    assert list(p.probabilities) == labels
    assert abs(sum(p.probabilities.values()) - 1.0) < 1e-5
    assert p.label == max(p.probabilities, key=lambda k: p.probabilities[k])


# --------------------------------------------------------------------------- checkpoint


def test_checkpoint_is_safetensors_without_pickle(assets: Assets, monkeypatch: pytest.MonkeyPatch) -> None:
    raw = assets.checkpoint.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])  # safetensors: u64 header size + JSON header + raw tensor bytes
    assert raw[8:9] == b"{"
    spans = sorted(v["data_offsets"] for k, v in header.items() if k != "__metadata__")
    assert spans and spans[0][0] == 0
    assert all(a[1] == b[0] for a, b in itertools.pairwise(spans)), "gaps between tensors"
    assert 8 + n + spans[-1][1] == len(raw), "bytes beyond the tensors"
    assert {v["dtype"] for k, v in header.items() if k != "__metadata__"} <= {"F32", "I64", "BOOL"}
    meta = json.loads(header["__metadata__"]["mmfer"])
    assert meta["labels"] == assets.labels

    # Loading and predicting must not touch pickle (nor torch.load, which unpickles).
    def forbidden(*a: object, **k: object) -> None:
        raise AssertionError("pickle used while loading a checkpoint")

    import torch

    monkeypatch.setattr(pickle, "load", forbidden)
    monkeypatch.setattr(pickle, "loads", forbidden)
    monkeypatch.setattr(pickle, "Unpickler", forbidden)
    monkeypatch.setattr(torch, "load", forbidden)
    pred = mmfer.load(str(assets.checkpoint)).predict_text("wonderful sunny party")
    _check_valid(pred, assets.labels)


def test_load_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        load(tmp_path / "nope.safetensors")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00" * 64)
    with pytest.raises(DataError, match=r"bad\.safetensors"):
        load(bad)


# --------------------------------------------------------------------------- predict


def test_predict_wav_equals_pipeline_probabilities(assets: Assets, predictor: Predictor) -> None:
    from mmfer.features.units import SampleFeatures
    from mmfer.features.voice.mfcc import MFCCExtractor

    path = assets.wavs["sad"]
    (p,) = predictor.predict(path)
    _check_valid(p, assets.labels)
    assert p.path == str(path)
    assert p.modalities_used == ["audio"]
    assert p.partial and "transcript" in p.modalities_missing["text"]
    # Same numbers as running the extractor + recogniser by hand.
    audio = MFCCExtractor(assets.features_cfg.audio).extract(path)
    ref = predictor.recognizer.predict_proba([SampleFeatures(audio=audio)])[0]
    np.testing.assert_allclose(list(p.probabilities.values()), ref, atol=1e-6)


def test_transcript_argument_and_sidecar(assets: Assets, predictor: Predictor, tmp_path: Path) -> None:
    wav = shutil.copy(assets.wavs["happy"], tmp_path / "clip.wav")
    (tmp_path / "clip.txt").write_text("lonely grey tears crying", encoding="utf-8")
    (side,) = predictor.predict(wav)
    assert side.modalities_used == ["audio", "text"] and not side.partial and side.modalities_missing == {}
    (arg,) = predictor.predict(wav, transcript="wonderful sunny party laughing")
    assert arg.modalities_used == ["audio", "text"]
    # the argument overrides the sidecar: different words, different probabilities
    assert not np.allclose(list(side.probabilities.values()), list(arg.probabilities.values()))
    (same,) = predictor.predict(wav, transcript="lonely grey tears crying")
    np.testing.assert_allclose(
        list(same.probabilities.values()), list(side.probabilities.values()), atol=1e-6
    )


def test_predict_text_and_txt_file(assets: Assets, predictor: Predictor, tmp_path: Path) -> None:
    p = predictor.predict_text("furious shouting rage")
    _check_valid(p, assets.labels)
    assert p.modalities_used == ["text"] and p.partial and "audio" in p.modalities_missing
    txt = tmp_path / "words.txt"
    txt.write_text("furious shouting rage\n", encoding="utf-8")
    (q,) = predictor.predict(txt)
    assert q.probabilities == pytest.approx(p.probabilities, abs=1e-6)
    empty = predictor.predict_text("   ")
    assert empty.error is not None and empty.label is None
    (stop,) = predictor.predict(tmp_path / "words.txt", transcript=None)
    assert stop.ok


def test_folder_glob_and_list(assets: Assets, predictor: Predictor, tmp_path: Path) -> None:
    a = shutil.copy(assets.wavs["happy"], tmp_path / "a.wav")
    b = shutil.copy(assets.wavs["angry"], tmp_path / "b.wav")
    (tmp_path / "a.txt").write_text("wonderful party", encoding="utf-8")  # sidecar, not an input
    (tmp_path / "notes.csv").write_text("x,y\n", encoding="utf-8")  # unsupported, skipped in folders
    expected = [Path(a), Path(b)]
    assert resolve_inputs(tmp_path) == expected
    assert resolve_inputs(str(tmp_path / "*.wav")) == expected
    assert resolve_inputs(str(tmp_path / "*")) == expected
    preds = predictor.predict(tmp_path)
    assert [p.path for p in preds] == [str(x) for x in expected]
    assert preds[0].modalities_used == ["audio", "text"] and preds[1].modalities_used == ["audio"]
    (none,) = predictor.predict(str(tmp_path / "*.mp4"))
    assert none.error is not None and "matches" in none.error
    with pytest.raises(DataError):
        predictor.predict([])


def test_unreadable_files_do_not_stop_the_batch(assets: Assets, predictor: Predictor, tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(b"this is not audio" * 50)
    odd = tmp_path / "table.xyz"
    odd.write_text("?", encoding="utf-8")
    missing = tmp_path / "missing.flac"
    inputs = [assets.wavs["happy"], garbage, missing, odd, assets.wavs["sad"]]
    preds = predictor.predict(inputs)
    assert [p.path for p in preds] == [str(x) for x in inputs]
    assert preds[0].ok and preds[4].ok
    for p, words in ((preds[1], "decode"), (preds[2], "not found"), (preds[3], "unsupported")):
        assert p.label is None and p.probabilities == {}
        assert p.error is not None and p.path in p.error and words in p.error


def test_missing_modality_is_partial_with_reason(
    assets: Assets, predictor: Predictor, tmp_path: Path
) -> None:
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(SR // 2, dtype=np.float32), SR)
    (p,) = predictor.predict(silent, transcript="wonderful sunny party")
    _check_valid(p, assets.labels)
    assert p.partial and p.modalities_used == ["text"] and "silent" in p.modalities_missing["audio"]
    # an image offers face (not in this model) and no audio: only the transcript can be used
    import cv2

    img = tmp_path / "face.png"
    cv2.imwrite(str(img), np.full((32, 32, 3), 128, np.uint8))
    (q,) = predictor.predict(img, transcript="lonely grey tears")
    assert q.ok and q.partial and q.modalities_ignored == ["face"]
    assert q.modalities_used == ["text"] and "no audio" in q.modalities_missing["audio"]
    (r,) = predictor.predict(img)
    assert r.error is not None and str(img) in r.error


def test_video_uses_its_audio_track_and_ignores_face(
    assets: Assets, predictor: Predictor, tmp_path: Path
) -> None:
    vid = write_video(tmp_path / "talk.mp4", freq=CLASSES["angry"][0])
    (tmp_path / "talk.txt").write_text("furious shouting", encoding="utf-8")
    (p,) = predictor.predict(vid)
    _check_valid(p, assets.labels)
    assert p.modalities_used == ["audio", "text"] and p.modalities_ignored == ["face"] and not p.partial
    mute = write_video(tmp_path / "mute.mp4", freq=None)
    (q,) = predictor.predict(mute, transcript="furious shouting")
    assert q.ok and q.partial and "no audio track" in q.modalities_missing["audio"]


def test_output_formats(assets: Assets, predictor: Predictor, tmp_path: Path) -> None:
    preds = predictor.predict([assets.wavs["happy"], tmp_path / "gone.wav"])
    back = json.loads(to_json(preds))
    assert back[0]["label"] == preds[0].label and back[1]["error"] == preds[1].error
    rows = list(csv.DictReader(io.StringIO(to_csv(preds))))
    assert [r["path"] for r in rows] == [p.path for p in preds]
    assert float(rows[0][f"p_{preds[0].label}"]) == pytest.approx(preds[0].confidence, abs=1e-6)
    assert rows[1]["label"] == "" and "not found" in rows[1]["error"]
    table = to_table(preds)
    assert preds[0].label in table and "ERROR" in table and "gone.wav" in table


# --------------------------------------------------------------------------- CLI and streaming


def test_cli_predict_exit_codes(assets: Assets, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from mmfer.inference.cli import main

    ok = main(["predict", str(assets.wavs["sad"]), "--model", str(assets.checkpoint), "--format", "json"])
    out = json.loads(capsys.readouterr().out)
    assert ok == 0 and out[0]["label"] in assets.labels
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00garbage" * 100)
    dest = tmp_path / "out.csv"
    code = main(
        [
            "predict",
            str(assets.wavs["sad"]),
            str(bad),
            "--model",
            str(assets.checkpoint),
            "--format",
            "csv",
            "--output",
            str(dest),
        ]
    )
    err = capsys.readouterr().err
    rows = list(csv.DictReader(dest.open(encoding="utf-8")))
    assert code == 1 and len(rows) == 2 and rows[0]["label"] == out[0]["label"] and str(bad) in err
    assert main(["predict", str(bad), "--model", str(tmp_path / "none.safetensors")]) == 2


def test_stream_windows(
    assets: Assets, predictor: Predictor, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from mmfer.inference.cli import main
    from mmfer.inference.stream import stream_predictions

    vid = write_video(tmp_path / "long.mp4", freq=CLASSES["happy"][0], seconds=2.0)
    wins = list(stream_predictions(predictor, vid, window_s=1.0, hop_s=0.5, transcript="wonderful party"))
    starts = [w.t_start for w in wins]
    assert starts[:3] == pytest.approx([0.0, 0.5, 1.0]) and starts == sorted(starts)
    for t0, t1, pred, latency in wins:
        assert 0 < t1 - t0 <= 1.0 + 1e-9 and latency > 0
        _check_valid(pred, assets.labels)
        assert pred.modalities_used == ["audio", "text"] and pred.modalities_ignored == ["face"]
    assert (
        main(
            [
                "stream",
                str(vid),
                "--model",
                str(assets.checkpoint),
                "--window",
                "1",
                "--hop",
                "0.5",
                "--format",
                "jsonl",
            ]
        )
        == 0
    )
    lines = [json.loads(s) for s in capsys.readouterr().out.splitlines()]
    assert len(lines) == len(wins) and all(r["latency_ms"] > 0 for r in lines)
    assert all(r["partial"] and r["modalities_used"] == ["audio"] for r in lines)  # no transcript given


# --------------------------------------------------------------------------- face modality


@pytest.fixture(scope="module")
def face_predictor(assets: Assets, tmp_path_factory: pytest.TempPathFactory) -> Predictor:
    """Face+audio model: fitted on random face vectors (running the CNN on a training set is slow),
    so predicting still runs the real face branch (frames -> EfficientNet) on new files."""
    out = tmp_path_factory.mktemp("face_model") / "face.safetensors"
    return load(face_audio_checkpoint(assets, out, detector="none"))


def test_face_model_on_video_image_and_stream(face_predictor: Predictor, tmp_path: Path) -> None:
    import cv2

    from mmfer.inference.stream import stream_predictions

    labels = list(CLASSES)
    vid = write_video(tmp_path / "clip.mp4", freq=CLASSES["sad"][0], seconds=2.0)
    (tmp_path / "clip.txt").write_text("lonely", encoding="utf-8")  # text is not a modality of this model
    img = tmp_path / "still.jpg"
    cv2.imwrite(str(img), np.random.default_rng(1).integers(0, 255, (40, 40, 3), dtype=np.uint8))
    p, q = face_predictor.predict([vid, img])
    _check_valid(p, labels)
    assert p.modalities_used == ["face", "audio"] and not p.partial and p.modalities_ignored == []
    _check_valid(q, labels)
    assert q.modalities_used == ["face"] and q.partial and "no audio" in q.modalities_missing["audio"]
    wins = list(stream_predictions(face_predictor, vid, window_s=1.0, hop_s=1.0, transcript="lonely"))
    assert len(wins) == 2
    for w in wins:
        _check_valid(w.prediction, labels)
        assert w.prediction.modalities_used == ["face", "audio"] and w.prediction.modalities_ignored == [
            "text"
        ]
