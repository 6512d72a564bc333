"""REST service (mmfer.inference.serve): endpoints, upload limits and every 4xx path (never a 500)."""

from __future__ import annotations

import io
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from fastapi.testclient import TestClient

from infer_assets import CLASSES, SR, Assets, tone, write_video
from mmfer.inference.predictor import Predictor
from mmfer.inference.serve import create_app


@pytest.fixture(scope="module")
def client(predictor: Predictor) -> Iterator[TestClient]:
    # raise_server_exceptions=False: a bug must show up as the 500 a real client would get.
    with TestClient(create_app(predictor, max_upload_mb=1.0), raise_server_exceptions=False) as c:
        yield c


def _error(resp: object, status: int, *words: str) -> dict:
    assert resp.status_code == status, (resp.status_code, resp.text)  # type: ignore[attr-defined]
    body = resp.json()  # type: ignore[attr-defined]
    assert isinstance(body["detail"], str)
    for w in words:
        assert w in body["detail"], body["detail"]
    return body


def test_info_endpoints_page_and_openapi(client: TestClient, assets: Assets) -> None:
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["labels"] == assets.labels
    assert health["modalities"] == ["audio", "text"] and health["model"] == "rmlstm"
    assert client.get("/labels").json() == {"labels": assets.labels}
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    html = page.text
    for element in ('id="file"', 'id="transcript"', 'id="submit"', 'id="result-label"', 'id="bars"'):
        assert element in html
    assert "<script src" not in html and "https://" not in html and "http://" not in html  # no CDN
    spec = client.get("/openapi.json").json()
    assert {"/predict", "/predict/text", "/health", "/labels", "/timeline"} <= set(spec["paths"])
    form = spec["paths"]["/predict"]["post"]["requestBody"]["content"]
    assert "multipart/form-data" in form
    assert {"413", "415", "422"} <= set(spec["paths"]["/predict"]["post"]["responses"])


def test_predict_upload_matches_python_api(client: TestClient, predictor: Predictor, assets: Assets) -> None:
    wav = assets.wavs["sad"]
    resp = client.post("/predict", files={"file": (wav.name, wav.read_bytes(), "audio/wav")})
    assert resp.status_code == 200, resp.text
    got = resp.json()
    (ref,) = predictor.predict(wav)
    assert got["path"] == wav.name and got["label"] == ref.label
    assert got["probabilities"] == pytest.approx(ref.probabilities, abs=1e-6)
    assert got["partial"] is True and got["modalities_used"] == ["audio"]
    with_text = client.post(
        "/predict",
        files={"file": (wav.name, wav.read_bytes(), "application/octet-stream")},
        data={"transcript": "lonely grey tears"},
    ).json()
    (ref2,) = predictor.predict(wav, transcript="lonely grey tears")
    assert with_text["modalities_used"] == ["audio", "text"] and with_text["partial"] is False
    assert with_text["probabilities"] == pytest.approx(ref2.probabilities, abs=1e-6)


def test_predict_text_endpoint(client: TestClient, predictor: Predictor) -> None:
    got = client.post("/predict/text", json={"text": "furious shouting rage"})
    assert got.status_code == 200
    ref = predictor.predict_text("furious shouting rage")
    assert got.json()["label"] == ref.label
    assert got.json()["probabilities"] == pytest.approx(ref.probabilities, abs=1e-6)
    _error(client.post("/predict/text", json={"text": ""}), 422, "text")
    _error(client.post("/predict/text", json={}), 422, "missing field 'text'")
    _error(
        client.post("/predict/text", content=b"{not json", headers={"content-type": "application/json"}), 422
    )
    # only stop words: the TF-IDF block is empty after cleaning (eq. 2), but the default
    # profile's sentence embedding reads the raw words ("no", "not" matter), so it predicts
    assert predictor.recognizer.features_cfg.text.representation == "both"
    got = client.post("/predict/text", json={"text": "the and of"})
    assert got.status_code == 200 and got.json()["label"] in predictor.labels


def test_upload_errors_are_4xx_json(client: TestClient, tmp_path: Path) -> None:
    garbage = b"\x00\x01garbage, not a video" * 200
    body = _error(
        client.post("/predict", files={"file": ("clip.mp4", garbage, "video/mp4")}), 422, "clip.mp4"
    )
    assert "mmfer-upload-" not in body["detail"]  # the temporary path never leaks
    assert body["prediction"]["modalities_missing"]["audio"]
    _error(client.post("/predict", files={"file": ("empty.wav", b"", "audio/wav")}), 400, "empty")
    wav = tmp_path / "a.wav"
    sf.write(wav, tone(440.0, 0.3, seed=0), SR)
    _error(
        client.post("/predict", files={"file": ("a.wav", wav.read_bytes(), "application/pdf")}),
        415,
        "content type",
    )
    _error(
        client.post("/predict", files={"file": ("a.exe", wav.read_bytes(), "audio/wav")}),
        415,
        "unsupported file type",
    )
    _error(client.post("/predict", files={"file": ("noext", wav.read_bytes())}), 415)
    _error(client.post("/predict", data={"transcript": "hello"}), 422, "missing field 'file'")
    _error(client.post("/predict", json={"file": "x"}), 422, "missing field 'file'")
    # truncated multipart (file part cut off, no closing boundary): the file field never arrives
    truncated = b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n'
    multipart_xyz = {"content-type": "multipart/form-data; boundary=xyz"}
    _error(client.post("/predict", content=truncated, headers=multipart_xyz), 422, "missing field 'file'")
    # multipart without a boundary cannot be parsed at all
    _error(client.post("/predict", content=b"abc", headers={"content-type": "multipart/form-data"}), 400)
    _error(client.post("/predict", content=b"abc", headers={"content-length": "abc"}), 400, "Content-Length")


def _multipart(name: str, payload: bytes) -> tuple[bytes, str]:
    boundary = "mmferboundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
        "Content-Type: audio/wav\r\n\r\n"
    ).encode()
    return head + payload + f"\r\n--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def _wav_bytes(wave: np.ndarray) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, wave, SR, format="WAV", subtype="FLOAT")
    return buf.getvalue()


def test_upload_size_limit(predictor: Predictor) -> None:
    limit = int(0.05 * 2**20)  # 0.05 MB
    rng = np.random.default_rng(0)
    data = _wav_bytes((0.1 * rng.standard_normal(limit // 2)).astype(np.float32))  # ~2x the limit
    with TestClient(create_app(predictor, max_upload_mb=0.05), raise_server_exceptions=False) as small:
        # just over the limit: under the multipart allowance, so caught while the upload is copied
        over = data[: limit + 1000]
        _error(small.post("/predict", files={"file": ("big.wav", over, "audio/wav")}), 413, "too large")
        # far over: rejected from the Content-Length header alone
        huge = data * 4
        _error(small.post("/predict", files={"file": ("big.wav", huge, "audio/wav")}), 413, "0.05 MB")
        # chunked upload without Content-Length: counted as it streams in
        body, ctype = _multipart("big.wav", huge)

        def chunks() -> Iterator[bytes]:
            for i in range(0, len(body), 65536):
                yield body[i : i + 65536]

        resp = small.post("/predict", content=chunks(), headers={"content-type": ctype})
        assert "content-length" not in {k.lower() for k in resp.request.headers}
        _error(resp, 413, "too large")
        # under the limit still works
        ok = _wav_bytes(tone(440.0, 0.5, seed=3))
        assert len(ok) < limit
        resp = small.post("/predict", files={"file": ("ok.wav", ok, "audio/wav")})
        assert resp.status_code == 200, resp.text


def test_uploads_are_deleted(
    client: TestClient, assets: Assets, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    private = tmp_path / "tmpdir"
    private.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(private))
    wav = assets.wavs["happy"]
    assert (
        client.post("/predict", files={"file": (wav.name, wav.read_bytes(), "audio/x-wav")}).status_code
        == 200
    )
    assert client.post("/predict", files={"file": ("x.mp4", b"junk" * 10, "video/mp4")}).status_code == 422
    assert list(private.iterdir()) == []


def test_create_app_rejects_bad_inputs(tmp_path: Path, predictor: Predictor) -> None:
    from mmfer.errors import DataError, MmferError

    with pytest.raises(DataError, match="not found"):
        create_app(tmp_path / "missing.safetensors")
    with pytest.raises(MmferError, match="max_upload_mb"):
        create_app(predictor, max_upload_mb=0)


def test_timeline_endpoint(client: TestClient, predictor: Predictor, tmp_path: Path) -> None:
    """POST /timeline: the timeline of an uploaded video (PNG + data); 4xx for what is not a video."""
    import base64

    from mmfer.inference.timeline import build_timeline

    vid = write_video(tmp_path / "clip.mp4", freq=CLASSES["sad"][0], seconds=2.0)
    form = {"transcript": "lonely grey tears", "window": "1.0", "hop": "0.5"}
    resp = client.post("/timeline", files={"file": ("mine.mp4", vid.read_bytes(), "video/mp4")}, data=form)
    assert resp.status_code == 200, resp.text
    got = resp.json()
    assert got["source"] == "mine.mp4" and got["window_s"] == 1.0 and got["hop_s"] == 0.5
    assert [s["name"] for s in got["series"]] == ["fused", "voice", "words"]
    assert base64.b64decode(got["png"]).startswith(b"\x89PNG\r\n\x1a\n")
    ref = build_timeline(predictor, vid, window_s=1.0, hop_s=0.5, transcript="lonely grey tears")
    assert got["t_start"] == list(ref.t_start)
    np.testing.assert_allclose(got["series"][0]["probabilities"], ref.series[0].probabilities, atol=1e-6)
    assert [w["text"] for w in got["words"]] == ["lonely", "grey", "tears"]
    assert "mmfer-upload" not in resp.text  # the temporary path never leaks
    wav = io.BytesIO()
    sf.write(wav, tone(440.0, 0.5, seed=1), SR, format="WAV")
    _error(
        client.post("/timeline", files={"file": ("a.wav", wav.getvalue(), "audio/wav")}), 415, "needs a video"
    )
    bad = b"\x00not a video" * 100
    _error(
        client.post("/timeline", files={"file": ("b.mp4", bad, "video/mp4")}), 422, "b.mp4", "cannot decode"
    )
    detail = client.post("/timeline", files={"file": ("b.mp4", bad, "video/mp4")}).json()["detail"]
    assert "upload" not in detail and detail.startswith("b.mp4: cannot decode")  # named once
    _error(client.post("/timeline", files={"file": ("c.mp4", b"", "video/mp4")}), 400, "empty")
    _error(
        client.post("/timeline", files={"file": ("d.mp4", vid.read_bytes())}, data={"hop": "0"}), 422, "hop"
    )
