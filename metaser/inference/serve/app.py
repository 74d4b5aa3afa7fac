"""The FastAPI application behind ``metaser serve``.

Endpoints:

* ``GET /health`` -> ``{"status": "ok", "model": NAME, "backend": "torch"|"onnx"}``
* ``GET /v1/model`` -> what the page needs: emotions, tasks, limits, ``synthetic``
* ``POST /v1/predict``: a multipart field ``file``, or a raw body with an ``audio/*`` content
  type. Returns the object ``metaser predict --format json`` gives for one file, plus
  ``labels``: ``[{"label", "score"}, ...]`` sorted by score (as transformers'
  audio-classification pipeline returns them).
* ``GET /``: the web page; ``/static/*`` its files; ``/docs``: OpenAPI (Swagger UI served by
  fastapi-offline, so it works without network too).

Every bad request gets a 4xx JSON body ``{"error": MESSAGE, "reason": CODE}``: 413
``too_large`` (upload over ``max_upload_mb``), 415 ``unsupported_media_type``, 400
``no_file`` / ``bad_request``, 422 for audio that cannot be used (``unreadable`` = not audio,
``corrupt`` = truncated, ``empty``, ``too_long``, ``too_short``, ``silent``, ``nonfinite``,
``invalid``), 503 ``busy`` when the queue is full. The model runs in one worker thread
(:class:`~metaser.inference.serve.batcher.MicroBatcher`); decoding runs in the thread pool.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from metaser.constants import SAMPLE_RATE
from metaser.data.audio import AudioError
from metaser.errors import DataError
from metaser.inference.inputs import InputError, check_audio, load_bytes
from metaser.inference.serve.batcher import Busy, MicroBatcher

__all__ = ["ServeConfig", "create_app", "ApiError", "STATIC_DIR"]

log = logging.getLogger("metaser.serve")

STATIC_DIR = Path(str(resources.files("metaser.inference.serve") / "static"))
_MULTIPART_OVERHEAD = 64 * 1024  # multipart headers and boundaries on top of the file itself

_PREDICT_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["file"],
                "properties": {"file": {"type": "string", "format": "binary"}},
            }
        },
        "audio/*": {"schema": {"type": "string", "format": "binary"}},
    },
}


@dataclass
class ServeConfig:
    """Limits and batching of the service.

    max_upload_mb: larger uploads get 413. max_seconds: longer audio gets 422 ``too_long``.
    batch_size / max_wait_ms: the micro-batcher's largest batch and how long it waits to fill
    one. max_queue: inputs waiting at most (then 503 ``busy``).
    """

    max_upload_mb: float = 50.0
    max_seconds: float = 600.0
    batch_size: int = 8
    max_wait_ms: float = 10.0
    max_queue: int = 256

    @property
    def max_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)


class ApiError(Exception):
    def __init__(self, status: int, error: str, reason: str):
        super().__init__(error)
        self.status, self.error, self.reason = status, error, reason


def create_app(recognizer, config: ServeConfig | None = None, *, model_name: str | None = None):
    """The FastAPI app serving ``recognizer`` (an :class:`EmotionRecognizer`)."""
    cfg = config or ServeConfig()
    name = model_name or (recognizer.path.name if recognizer.path is not None else "model")
    batcher = MicroBatcher(
        recognizer, max_batch=cfg.batch_size, max_wait_s=cfg.max_wait_ms / 1000.0, max_queue=cfg.max_queue
    )
    segment_lock = threading.Lock()  # silero-vad keeps state: one segmentation at a time

    @asynccontextmanager
    async def lifespan(app):
        batcher.start()
        yield
        batcher.stop()

    from fastapi_offline import FastAPIOffline  # /docs and /redoc with their assets served locally

    app = FastAPIOffline(
        title="metaser",
        version=_version(),
        lifespan=lifespan,
        description="Speech emotion recognition (emotion, gender, style, transcript) with a "
        "trained metaser model. Bad uploads get a 4xx JSON body "
        '`{"error": ..., "reason": ...}`.',
    )
    app.state.batcher = batcher
    app.state.recognizer = recognizer
    app.state.config = cfg

    def _err(status: int, error: str, reason: str) -> JSONResponse:
        return JSONResponse({"error": error, "reason": reason}, status_code=status)

    @app.exception_handler(ApiError)
    async def _api_error(request, e: ApiError):
        return _err(e.status, e.error, e.reason)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request, e: StarletteHTTPException):
        reason = {404: "not_found", 405: "method_not_allowed"}.get(e.status_code, "bad_request")
        return _err(e.status_code, str(e.detail), reason)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request, e: RequestValidationError):
        return _err(422, f"invalid request: {e.errors()}", "bad_request")

    @app.exception_handler(Exception)
    async def _internal(request, e: Exception):  # a bug: logged, and the server keeps serving
        log.exception("unexpected error")
        return _err(500, f"internal error ({type(e).__name__})", "internal")

    @app.get("/health", summary="Liveness and the model served")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "model": name, "backend": recognizer.backend_name}

    @app.get("/v1/model", summary="The model's classes, tasks and the service limits")
    async def model_info() -> dict[str, Any]:
        return {
            "model": name,
            "backend": recognizer.backend_name,
            "emotions": recognizer.emotion_labels,
            "tasks": [
                {"name": t.name, "kind": t.kind, "labels": list(t.labels) if t.kind == "classification" else None}
                for t in recognizer.tasks
            ],
            "synthetic": recognizer.synthetic,
            "max_upload_mb": cfg.max_upload_mb,
            "max_seconds": cfg.max_seconds,
            "segment_seconds": recognizer.config.segment.max_seconds,
            "sample_rate": SAMPLE_RATE,
        }

    def _decode(data: bytes, filename: str | None):
        label = filename or "upload"
        suffix = Path(filename).suffix if filename else ""
        x = load_bytes(data, label, suffix=suffix, max_seconds=cfg.max_seconds)
        with segment_lock:
            return check_audio(x, label, filename, recognizer.checks)

    @app.post(
        "/v1/predict",
        summary="Predict one audio file",
        openapi_extra={"requestBody": _PREDICT_BODY},
        responses={
            413: {"description": "upload too large"},
            415: {"description": "not an audio body"},
            422: {"description": "audio that cannot be used: see `reason`"},
        },
    )
    async def predict(request: Request) -> dict[str, Any]:
        """Send a multipart form with a ``file`` field, or the raw file with an ``audio/*``
        content type. Returns ``metaser predict --format json``'s object for the file plus
        ``labels`` (emotions sorted by score)."""
        data, filename = await _read_upload(request, cfg.max_bytes)
        try:
            loaded = await run_in_threadpool(_decode, data, filename)
        except (AudioError, InputError) as e:
            raise ApiError(422, e.message, e.reason) from None
        except DataError as e:
            raise ApiError(422, e.message, "invalid") from None
        try:
            fut = batcher.submit(loaded)
        except Busy as e:
            raise ApiError(503, f"the server is busy ({e}); retry later", "busy") from None
        pred = await asyncio.wrap_future(fut)
        out = pred.to_dict()
        out["labels"] = pred.labels()
        return out

    @app.get("/", include_in_schema=False)
    async def index():
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=str(STATIC_DIR)), name="static")
    return app


async def _read_upload(request, max_bytes: int) -> tuple[bytes, str | None]:
    """The uploaded file's bytes and name, from a multipart ``file`` field or an ``audio/*`` body."""
    ctype = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
    multipart = ctype == "multipart/form-data"
    if not multipart and not (ctype.startswith("audio/") or ctype == "application/octet-stream"):
        raise ApiError(
            415,
            f"send a multipart form with a 'file' field or a raw audio/* body, not {ctype or 'no content type'}",
            "unsupported_media_type",
        )
    limit = max_bytes + (_MULTIPART_OVERHEAD if multipart else 0)
    too_large = ApiError(413, f"upload larger than the limit of {max_bytes / 2**20:g} MB", "too_large")
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > limit:
        raise too_large
    buf = bytearray()
    async for chunk in request.stream():
        buf += chunk
        if len(buf) > limit:
            raise too_large
    if not multipart:
        return bytes(buf), request.headers.get("x-filename") or None
    from starlette.datastructures import UploadFile
    from starlette.formparsers import MultiPartException, MultiPartParser

    async def body():
        yield bytes(buf)

    try:
        form = await MultiPartParser(request.headers, body(), max_files=1, max_fields=16).parse()
    except MultiPartException as e:
        raise ApiError(400, f"malformed multipart body: {e.message}", "bad_request") from None
    f = form.get("file")
    if not isinstance(f, UploadFile):
        raise ApiError(400, "the multipart form has no 'file' field", "no_file")
    data = await f.read()
    await f.close()
    if len(data) > max_bytes:
        raise too_large
    return data, f.filename or None


def _version() -> str:
    from metaser import __version__

    return __version__


LOOPBACK = ("127.0.0.1", "localhost", "::1")


def run_server(
    model_dir: str | Path,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    backend: str = "torch",
    device: str = "auto",
    config: ServeConfig | None = None,
    console=None,
) -> None:
    """Load the model and serve it with uvicorn until interrupted (``metaser serve``)."""
    import uvicorn

    from metaser.errors import ConfigError
    from metaser.inference.recognizer import EmotionRecognizer

    cfg = config or ServeConfig()
    for key in ("max_upload_mb", "max_seconds"):
        if not getattr(cfg, key) > 0:
            raise ConfigError(f"--{key.replace('_', '-')} must be > 0, got {getattr(cfg, key)}")
    if not 0 < port < 65536:
        raise ConfigError(f"--port must be in 1..65535, got {port}")
    rec = EmotionRecognizer.from_pretrained(model_dir, device=device, backend=backend, batch_size=cfg.batch_size)
    app = create_app(rec, cfg)
    if console is not None:
        if rec.synthetic:
            console.print(
                "[yellow]note:[/] this model was trained on the synthetic demo corpus; "
                "its predictions on real speech mean nothing"
            )
        if host not in LOOPBACK:
            console.print(
                f"[yellow]warning:[/] listening on {host}, not only loopback: for the open internet "
                "put a reverse proxy with TLS and authentication in front (see docs/serve.md)"
            )
        console.print(f"serving {rec.path} ({rec.backend_name}) on http://{host}:{port}/  (API docs: /docs)")
    uvicorn.run(app, host=host, port=port, log_level="warning")
