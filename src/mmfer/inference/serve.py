"""REST service and web page for predictions (FastAPI).

Endpoints (OpenAPI schema at ``/openapi.json``, interactive docs at ``/docs``):

``GET /``
    A small self-contained web page: pick a file, optionally type the
    transcript, see the predicted emotion and one bar per class.
``GET /health``
    ``{"status": "ok", "model": ..., "modalities": [...], "labels": [...]}``.
``GET /labels``
    ``{"labels": [...]}`` in the model's output order.
``POST /predict``
    ``multipart/form-data`` with a ``file`` (video, audio, image or .txt) and an
    optional ``transcript`` field -> a prediction (see :class:`PredictionOut`).
``POST /predict/text``
    JSON ``{"text": "..."}`` -> a prediction from the words alone.
``POST /timeline``
    ``multipart/form-data`` with a video ``file`` (+ optional ``transcript``,
    ``window``, ``hop`` seconds) -> the emotion timeline
    (:meth:`mmfer.inference.timeline.Timeline.to_dict`) plus ``png``, the drawn
    figure base64-encoded; the web page shows it under the prediction.

Errors are JSON ``{"detail": "<message>"}`` with a 4xx status: 400 empty or
malformed upload, 413 upload larger than ``max_upload_mb`` (checked on the
``Content-Length`` header *and* on the bytes actually received, so a chunked
upload cannot get round it), 415 unsupported file type or content type, 422
missing field or a file none of the model's modalities could be read from
(the body then also carries the ``prediction`` with per-modality reasons).

Uploads are written to a private temporary folder with the original
extension (the decoders pick the format from it) and deleted after the
prediction. Predictions run one at a time in a worker thread, so the event
loop keeps accepting requests and the CPU is not oversubscribed.
"""

from __future__ import annotations

import base64
import logging
import tempfile
import threading
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, File, Form, HTTPException, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, Field
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mmfer.errors import MmferError
from mmfer.inference.loader import load
from mmfer.inference.types import Prediction, input_kind, supported_list

log = logging.getLogger(__name__)

__all__ = ["PredictionOut", "create_app"]

#: Room for the multipart envelope and the transcript field on top of the file itself.
_MULTIPART_OVERHEAD = 256 * 1024
_CHUNK = 1 << 20
#: Longest transcript accepted (characters).
MAX_TRANSCRIPT_CHARS = 20_000

#: Content types accepted per input kind (besides none / application/octet-stream).
_CONTENT_TYPES: dict[str, tuple[str, ...]] = {
    "video": ("video/", "audio/", "application/mp4", "application/x-matroska"),
    "audio": ("audio/", "video/", "application/ogg"),
    "image": ("image/",),
    "text": ("text/plain",),
}


# --------------------------------------------------------------------------- schemas


class PredictionOut(BaseModel):
    """One prediction (see :class:`mmfer.inference.predictor.Prediction`)."""

    path: str = Field(description="Uploaded file name, or <text>")
    label: str | None = Field(description="Most probable emotion (null on error)")
    probabilities: dict[str, float] = Field(description="Emotion -> probability, in label order")
    modalities_used: list[str]
    modalities_missing: dict[str, str] = Field(description="Modality -> why it was masked")
    modalities_ignored: list[str] = Field(description="Present in the input but not used by the model")
    partial: bool = Field(description="Some modality of the model was missing")
    error: str | None


class ErrorOut(BaseModel):
    """A 4xx error."""

    detail: str
    prediction: PredictionOut | None = None


class TextIn(BaseModel):
    """Body of ``POST /predict/text``."""

    text: str = Field(min_length=1, max_length=MAX_TRANSCRIPT_CHARS, description="The words spoken")


class HealthOut(BaseModel):
    status: str
    model: str
    modalities: list[str]
    labels: list[str]


class LabelsOut(BaseModel):
    labels: list[str]


_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorOut, "description": desc}
    for code, desc in (
        (400, "Empty or malformed upload"),
        (413, "Upload too large"),
        (415, "Unsupported file or content type"),
        (422, "Missing field, or no usable modality in the file"),
    )
}


# --------------------------------------------------------------------------- upload limit


class _TooLarge(HTTPException):
    """Raised from the body stream; an HTTPException so FastAPI's form parsing re-raises it as is."""

    def __init__(self, limit_mb: float) -> None:
        super().__init__(413, f"upload too large: the limit is {limit_mb:g} MB")


class _BodyLimit:
    """ASGI middleware capping request bodies of POST routes.

    Rejects at once when ``Content-Length`` is over the limit, and otherwise
    counts the bytes as they arrive (a chunked upload has no length header).
    """

    def __init__(self, app: ASGIApp, *, max_bytes: int, limit_mb: float) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.limit_mb = limit_mb

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        length = headers.get("content-length")
        if length is not None:
            try:
                declared = int(length)
            except ValueError:
                await JSONResponse({"detail": "invalid Content-Length header"}, 400)(scope, receive, send)
                return
            if declared > self.max_bytes:
                await JSONResponse({"detail": _TooLarge(self.limit_mb).detail}, 413)(scope, receive, send)
                return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _TooLarge(self.limit_mb)
            return message

        started = False

        async def tracked_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited, tracked_send)
        except _TooLarge as e:  # raised outside FastAPI's handlers (e.g. by a streaming endpoint)
            if started:
                raise
            await JSONResponse({"detail": e.detail}, 413)(scope, receive, send)


# --------------------------------------------------------------------------- helpers


def _public(pred: Prediction, tmp_path: str | None, name: str) -> dict[str, Any]:
    """Prediction as JSON with the temporary upload path replaced by the uploaded name."""
    d = pred.to_dict()
    if tmp_path is None:
        return d

    def fix(s: Any) -> Any:
        return s.replace(tmp_path, name) if isinstance(s, str) else s

    d["path"] = name
    d["error"] = fix(d["error"])
    d["modalities_missing"] = {k: fix(v) for k, v in d["modalities_missing"].items()}
    return d


def _check_content_type(kind: str, content_type: str | None, name: str) -> None:
    ctype = (content_type or "").split(";")[0].strip().lower()
    if not ctype or ctype == "application/octet-stream":
        return
    if not any(ctype.startswith(prefix) for prefix in _CONTENT_TYPES[kind]):
        raise HTTPException(415, f"{name}: content type {ctype!r} does not match a {kind} file")


def _page() -> str:
    return resources.files("mmfer").joinpath("web/index.html").read_text(encoding="utf-8")


def _summarise_validation(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = [str(x) for x in err.get("loc", ()) if x not in ("body",)]
        field = ".".join(loc) or "body"
        if err.get("type") == "missing":
            parts.append(f"missing field {field!r}")
        else:
            parts.append(f"{field}: {err.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


# --------------------------------------------------------------------------- app


def _model(checkpoint: str | Path | Any | None) -> Any:
    """A loaded model: ``checkpoint`` itself when already loaded, else :func:`load` (``None`` = shipped)."""
    if checkpoint is None or isinstance(checkpoint, (str, Path)):
        return load(checkpoint)
    return checkpoint


def _new_app(info: dict[str, Any], file_limit: int, max_upload_mb: float) -> FastAPI:
    """The FastAPI app with its body limit and its JSON validation errors."""
    app = FastAPI(
        title="mmfer",
        summary="Multimodal emotion recognition (face, voice, words)",
        description=(
            f"Model **{info['model']}** on modalities {', '.join(info['modalities'])}; "
            f"labels {', '.join(info['labels'])}."
        ),
        version=_version(),
    )
    app.add_middleware(_BodyLimit, max_bytes=file_limit + _MULTIPART_OVERHEAD, limit_mb=max_upload_mb)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": _summarise_validation(exc)}, status_code=422)

    return app


def _add_info_routes(app: FastAPI, info: dict[str, Any]) -> None:
    """``GET /``, ``/health`` and ``/labels``."""

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index() -> HTMLResponse:
        return HTMLResponse(_page())

    @app.get("/health", response_model=HealthOut)
    async def health() -> dict[str, Any]:
        return {
            "status": "ok",
            "model": info["model"],
            "modalities": info["modalities"],
            "labels": info["labels"],
        }

    @app.get("/labels", response_model=LabelsOut)
    async def labels() -> dict[str, Any]:
        return {"labels": info["labels"]}


def _checked_name(file: UploadFile) -> tuple[str, str]:
    """``(file name, input kind)`` of an upload; 415 for an unsupported type or content type."""
    name = Path(file.filename or "").name or "upload"
    kind = input_kind(name)
    if kind is None:
        ext = Path(name).suffix or "(no extension)"
        raise HTTPException(415, f"{name}: unsupported file type {ext!r} ({supported_list()})")
    _check_content_type(kind, file.content_type, name)
    return name, kind


async def _save_upload(file: UploadFile, dst: Path, name: str, limits: _Limits) -> None:
    """Copy the upload to ``dst`` chunk by chunk: 413 past the limit, 400 when empty."""
    size = 0
    with open(dst, "wb") as fh:
        while chunk := await file.read(_CHUNK):
            size += len(chunk)
            if size > limits.file_bytes:
                raise _TooLarge(limits.mb)
            fh.write(chunk)
    if size == 0:
        raise HTTPException(400, f"{name}: empty file")


@dataclass(frozen=True)
class _Limits:
    """Upload limit in bytes and as given (MB, for messages)."""

    file_bytes: int
    mb: float


class _Runner:
    """Runs model calls one at a time in a worker thread (the event loop stays free)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()

    def _locked(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """``fn(*args, **kwargs)`` under the lock (in the worker thread)."""
        with self.lock:
            return fn(*args, **kwargs)

    async def __call__(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Await ``fn(*args, **kwargs)`` run in the thread pool, one call at a time."""
        return await run_in_threadpool(self._locked, fn, *args, **kwargs)


def _upload_error(e: MmferError, dst: Path, name: str) -> HTTPException:
    """A 422 naming the uploaded file (never the temporary path), once."""
    text = str(e).replace(str(dst), name)
    return HTTPException(422, text if text.startswith(f"{name}:") else f"{name}: {text}")


def _renamed(obj: Any, tmp_path: str, name: str) -> Any:
    """``obj`` (JSON-able) with every occurrence of the temporary upload path replaced by ``name``."""
    if isinstance(obj, str):
        return obj.replace(tmp_path, name)
    if isinstance(obj, list):
        return [_renamed(v, tmp_path, name) for v in obj]
    if isinstance(obj, dict):
        return {k: _renamed(v, tmp_path, name) for k, v in obj.items()}
    return obj


def _answer(pred: Prediction, tmp_path: str | None, name: str) -> Any:
    """The prediction as JSON, or a 422 carrying it when no modality could be read."""
    out = _public(pred, tmp_path, name)
    if pred.error is not None:
        return JSONResponse({"detail": out["error"], "prediction": out}, status_code=422)
    return out


def _add_predict_routes(app: FastAPI, predictor: Any, run: _Runner, limits: _Limits) -> None:
    """``POST /predict`` (an uploaded file) and ``POST /predict/text``."""

    @app.post("/predict", response_model=PredictionOut, responses=_ERRORS)
    async def predict(
        file: Annotated[UploadFile, File(description="Video, audio, image or .txt transcript")],
        transcript: Annotated[
            str | None, Form(max_length=MAX_TRANSCRIPT_CHARS, description="Words spoken")
        ] = None,
    ) -> Any:
        name, _ = _checked_name(file)
        with tempfile.TemporaryDirectory(prefix="mmfer-upload-") as tmp:
            dst = Path(tmp) / f"upload{Path(name).suffix.lower()}"
            await _save_upload(file, dst, name, limits)
            text = transcript if transcript and transcript.strip() else None
            try:
                (pred,) = await run(predictor.predict, dst, transcript=text)
            except MmferError as e:
                raise _upload_error(e, dst, name) from None
            return _answer(pred, str(dst), name)

    @app.post("/predict/text", response_model=PredictionOut, responses=_ERRORS)
    async def predict_text(body: TextIn) -> Any:
        if "text" not in predictor.modalities:
            raise HTTPException(
                422, f"this model does not use text (its modalities: {', '.join(predictor.modalities)})"
            )
        try:
            pred = await run(predictor.predict_text, body.text)
        except MmferError as e:
            raise HTTPException(422, str(e)) from None
        return _answer(pred, None, "<text>")


def _add_timeline_route(app: FastAPI, predictor: Any, run: _Runner, limits: _Limits) -> None:
    """``POST /timeline``: the emotion timeline of an uploaded video (:mod:`mmfer.inference.timeline`)."""

    @app.post("/timeline", responses=_ERRORS)
    async def timeline(
        file: Annotated[UploadFile, File(description="Video file")],
        transcript: Annotated[
            str | None, Form(max_length=MAX_TRANSCRIPT_CHARS, description="Words spoken")
        ] = None,
        window: Annotated[float, Form(gt=0, le=60, description="Window length (s)")] = 2.0,
        hop: Annotated[float, Form(gt=0, le=60, description="Hop between windows (s)")] = 0.5,
    ) -> Any:
        from mmfer.inference.timeline import build_timeline, render_png

        name, kind = _checked_name(file)
        if kind != "video":
            raise HTTPException(415, f"{name}: the timeline needs a video (got {kind} file)")
        with tempfile.TemporaryDirectory(prefix="mmfer-upload-") as tmp:
            dst = Path(tmp) / f"upload{Path(name).suffix.lower()}"
            await _save_upload(file, dst, name, limits)
            text = transcript if transcript and transcript.strip() else None

            def work() -> dict[str, Any]:
                tl = build_timeline(predictor, dst, window_s=window, hop_s=hop, transcript=text)
                tl.source = name
                data = _renamed(tl.to_dict(), str(dst), name)
                return {**data, "png": base64.b64encode(render_png(tl)).decode("ascii")}

            try:
                return await run(work)
            except MmferError as e:
                raise _upload_error(e, dst, name) from None


def create_app(checkpoint: str | Path | Any | None = None, *, max_upload_mb: float = 50.0) -> FastAPI:
    """Build the FastAPI app serving one model.

    Parameters
    ----------
    checkpoint
        Model checkpoint (``.safetensors``), an already loaded model
        (:class:`~mmfer.inference.predictor.Predictor` or
        :class:`~mmfer.inference.compose.ComposedPredictor`), or ``None`` for the
        model shipped with mmfer.
    max_upload_mb
        Largest accepted upload, in MB (2**20 bytes).

    Raises
    ------
    DataError
        The checkpoint is missing or not an mmfer model.
    """
    predictor = _model(checkpoint)
    if not max_upload_mb > 0:
        raise MmferError(f"max_upload_mb must be positive, got {max_upload_mb}")
    limits = _Limits(int(max_upload_mb * 2**20), max_upload_mb)
    info = predictor.info()
    app = _new_app(info, limits.file_bytes, max_upload_mb)
    app.state.predictor = predictor
    run = _Runner()
    _add_info_routes(app, info)
    _add_predict_routes(app, predictor, run, limits)
    _add_timeline_route(app, predictor, run, limits)
    return app


def _version() -> str:
    from mmfer import __version__

    return __version__


def run(
    checkpoint: str | Path | Any | None,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    max_upload_mb: float = 50.0,
) -> None:
    """Serve ``checkpoint`` (``None`` = the shipped model) with uvicorn until interrupted."""
    import uvicorn

    app = create_app(checkpoint, max_upload_mb=max_upload_mb)
    log.info("serving on http://%s:%d/", host, port)
    uvicorn.run(app, host=host, port=port, log_level="info")
