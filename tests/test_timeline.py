"""Emotion timeline (mmfer.inference.timeline): data structure, HTML/PNG, CLI, default model on real clips."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import numpy as np
import pytest

from infer_assets import CLASSES, write_video
from mmfer.inference.predictor import Predictor
from mmfer.inference.stream import iter_windows, stream_predictions
from mmfer.inference.timeline import Timeline, build_timeline, write_timeline

#: Real RAVDESS actor-05 clips (../shared/data relative to the repository root); tests skip without them.
ACTOR05 = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ravdess-av-actor05"
CLIP = ACTOR05 / "01-01-03-01-01-02-05.mp4"  # full AV: happy, "Kids are talking by the door"
SILENT = ACTOR05 / "02-01-03-01-01-02-05.mp4"  # video-only: silent track
real = pytest.mark.skipif(not CLIP.is_file(), reason=f"{ACTOR05} not present")


def _check_structure(tl: Timeline) -> None:
    """Times increase, every present row sums to 1, missing rows say why, thumbnails in time order."""
    assert len(tl.t_start) >= 1 and np.all(np.diff(tl.t_start) > 0) and np.all(np.diff(tl.t_end) >= 0)
    assert np.all(tl.t_end > tl.t_start)
    assert tl.series[0].name == "fused" and tl.series[0].labels == tl.labels
    for s in tl.series:
        assert s.probabilities.shape == (len(tl.t_start), len(s.labels))
        ok = s.present
        np.testing.assert_allclose(s.probabilities[ok].sum(axis=1), 1.0, atol=1e-6)
        assert np.all(s.probabilities[ok] >= 0)
        assert all((m is None) == bool(k) for m, k in zip(s.missing, ok, strict=True))
    times = [t.time_s for t in tl.thumbnails]
    assert times == sorted(set(times))


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_video(tmp_path_factory.mktemp("tl") / "clip.mp4", freq=CLASSES["happy"][0], seconds=3.0)


def test_timeline_structure_on_a_synthetic_clip(av_predictor: Predictor, clip: Path) -> None:
    tl = build_timeline(av_predictor, clip, window_s=1.0, hop_s=0.5, transcript="a sunny party")
    _check_structure(tl)
    assert [s.name for s in tl.series] == ["fused", "face", "voice"]
    # the fused series is what `mmfer stream` prints for the same windows
    wins = list(stream_predictions(av_predictor, clip, window_s=1.0, hop_s=0.5, warmup=False))
    assert [w.t_start for w in wins] == list(tl.t_start)
    for i, w in enumerate(wins):
        got = dict(zip(tl.labels, tl.series[0].probabilities[i], strict=True))
        assert got == pytest.approx(w.prediction.probabilities, abs=1e-6)
    # a multimodal checkpoint's modality series = its prediction with the other modality masked
    d = next(iter(iter_windows(av_predictor, clip, window_s=1.0, hop_s=0.5, warmup=False)))
    f = d.parts[0].features
    only_face = type(f)(face=f.face)
    (p,) = av_predictor.predict_features([only_face], ["x"])
    face = tl.series_named("face")
    assert dict(zip(face.labels, face.probabilities[0], strict=True)) == pytest.approx(
        p.probabilities, abs=1e-6
    )
    # thumbnails: the frames the face branch read (all of them: 2 fps, max 3, steps 4), at grid times k/fps
    fps = av_predictor.features_cfg.face.fps
    assert [t.time_s for t in tl.thumbnails] == pytest.approx([k / fps for k in range(6)])
    assert all(t.image.shape == (64, 64, 3) and t.image.dtype == np.uint8 for t in tl.thumbnails)
    assert [w.text for w in tl.words] == ["a", "sunny", "party"] and not tl.words_timed


def test_missing_modality_is_a_gap_with_its_reason(av_predictor: Predictor, tmp_path: Path) -> None:
    silent = write_video(tmp_path / "silent.mp4", freq=None, seconds=2.0)
    tl = build_timeline(av_predictor, silent, window_s=1.0, hop_s=1.0)
    _check_structure(tl)
    voice = tl.series_named("voice")
    assert not voice.present.any() and all(voice.missing)
    assert not any(str(silent) in m for m in voice.missing if m)  # the reason, without "<video>@t0-t1s: "
    assert tl.series_named("face").present.all() and tl.series_named("fused").present.all()


def test_html_is_self_contained_and_holds_the_png(
    av_predictor: Predictor, clip: Path, tmp_path: Path
) -> None:
    tl = build_timeline(av_predictor, clip, window_s=1.0, hop_s=0.5)
    html_path, png_path = write_timeline(tl, tmp_path / "out" / "tl.html")
    assert png_path == tmp_path / "out" / "tl.png"
    png = png_path.read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    page = html_path.read_text(encoding="utf-8")
    src = re.search(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert src is not None and base64.b64decode(src.group(1)) == png
    assert not re.search(r"https?://|//cdn|<link|<script src|@import|url\(", page)
    assert 'id="timeline-data"' in page and page.count("<tr>") == len(tl.t_start) + 1


def test_cli_timeline_options_and_bad_inputs(
    av_predictor: Predictor, clip: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from mmfer.inference.cli import main

    ckpt = av_predictor.save(tmp_path / "av.safetensors")
    out = tmp_path / "s.html"
    argv = ["stream", str(clip), "-m", str(ckpt), "--window", "1", "--hop", "1", "--timeline", str(out)]
    assert main(argv) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3 and out.is_file() and out.with_suffix(".png").is_file()
    wav = tmp_path / "a.wav"
    wav.write_bytes(b"RIFF")
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00not a video" * 50)
    (tmp_path / "x.xyz").write_text("?")
    for path, words in (
        (tmp_path / "missing.mp4", "not found"),
        (bad, "cannot decode"),
        (wav, "not a video"),
        (tmp_path / "x.xyz", "not a video"),
        (tmp_path, "folder"),
    ):
        assert main(["stream", str(path), "-m", str(ckpt)]) == 2
        err = capsys.readouterr().err
        assert words in err and "Traceback" not in err, err
    assert main(["predict", str(wav), "-m", str(ckpt), "--timeline", str(tmp_path / "p.html")]) == 2
    assert "exactly one video" in capsys.readouterr().err


# --------------------------------------------------------------------------- shipped model, real clips


@real
@pytest.mark.realdata
def test_cli_stream_and_timeline_with_the_shipped_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from mmfer.inference.cli import main

    assert main(["stream", str(CLIP)]) == 0  # no -m: the shipped composed model
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 4 and all(" ms" in ln and "ERROR" not in ln for ln in lines)
    out = tmp_path / "t.html"
    assert main(["predict", str(CLIP), "--timeline", str(out)]) == 0
    assert "happy" in capsys.readouterr().out and out.is_file() and out.with_suffix(".png").is_file()


@real
@pytest.mark.realdata
def test_shipped_model_timeline_on_real_clips() -> None:
    import mmfer

    model = mmfer.load(None)
    tl = build_timeline(model, CLIP)
    _check_structure(tl)
    assert [s.name for s in tl.series] == ["fused", "voice", "face"]
    assert "calm" not in tl.series_named("face").labels and "contempt" not in tl.series_named("voice").labels
    assert tl.series_named("voice").present.all() and tl.series_named("face").present.all()
    assert tl.thumbnails and all(0 <= t.time_s <= tl.t_end[-1] for t in tl.thumbnails)
    if SILENT.is_file():  # video-only: the voice is missing in every window, the fusion is face-only
        tl = build_timeline(model, SILENT)
        _check_structure(tl)
        assert not tl.series_named("voice").present.any() and tl.series_named("fused").present.all()


@real
@pytest.mark.realdata
def test_asr_words_are_timed_inside_the_clip() -> None:
    pytest.importorskip("faster_whisper")
    from mmfer.inference.timeline import asr_words

    words = asr_words(CLIP)
    assert [w.text.strip(".").lower() for w in words] == ["kids", "are", "talking", "by", "the", "door"]
    starts = [w.start for w in words]
    assert starts == sorted(starts) and all(w.start < w.end for w in words)  # type: ignore[operator]


@real
@pytest.mark.realdata
def test_serve_shipped_model_predict_and_timeline() -> None:
    from fastapi.testclient import TestClient

    from mmfer.inference.serve import create_app

    with TestClient(create_app(None), raise_server_exceptions=False) as c:
        assert c.get("/health").json()["model"] == "composed"
        data = CLIP.read_bytes()
        r = c.post("/predict", files={"file": (CLIP.name, data, "video/mp4")})
        assert r.status_code == 200 and r.json()["label"] is not None, r.text
        r = c.post("/timeline", files={"file": (CLIP.name, data, "video/mp4")})
        assert r.status_code == 200, r.text
        tl = r.json()
        assert tl["source"] == CLIP.name and [s["name"] for s in tl["series"]] == ["fused", "voice", "face"]
        assert base64.b64decode(tl["png"]).startswith(b"\x89PNG")
