"""The FastAPI application behind ``metaser serve``.

Endpoints (``HEAD`` is answered on every ``GET`` route):

* ``GET /health`` -> ``{"status": "ok", "model": NAME, "backend": "torch"|"onnx", "stats": {...}}``
  (counters of :class:`~metaser.inference.serve.middleware.ServeStats`, the scheduler's queue
  and the process's resident memory)
* ``GET /v1/model`` -> what the page needs: emotions, tasks, limits, ``synthetic``
* ``POST /v1/predict``: a multipart field ``file``, or a raw body with an ``audio/*`` or
  ``application/octet-stream`` content type. Returns the object ``metaser predict --format
  json`` gives for one file, plus ``labels``: ``[{"label", "score"}, ...]`` sorted by score (as
  transformers' audio-classification pipeline returns them).
* ``WS /v1/stream``: live PCM in, one prediction per window out (:mod:`.stream`).
* ``GET /``: the web page; ``/static/*`` its files; ``/docs``: OpenAPI (Swagger UI served by
  fastapi-offline, so it works without network too).

Every bad request gets a 4xx JSON body ``{"error": MESSAGE, "reason": CODE}``: 413
``too_large`` (upload over ``max_upload_mb``), 415 ``unsupported_media_type``, 400
``no_file`` / ``bad_request``, 422 for audio that cannot be used (``unreadable`` = not audio,
``corrupt`` = truncated, ``empty``, ``too_long``, ``too_short``, ``silent``, ``nonfinite``,
``invalid``), 503 ``busy`` when the queue is full. The model runs in one worker thread that
schedules the pieces of all requests fairly
(:class:`~metaser.inference.serve.scheduler.PieceScheduler`); decoding runs in the thread pool.
"""

from __future__ import annotations

import asyncio
import threading
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from fastapi import Request, WebSocket
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from metaser.constants import SAMPLE_RATE
from metaser.data.audio import AudioError
from metaser.errors import DataError
from metaser.inference.inputs import InputError, check_audio, load_bytes
from metaser.inference.serve.memory import Trimmer, rss_mb
from metaser.inference.serve.middleware import ServeMiddleware, ServeStats
from metaser.inference.serve.scheduler import Busy, ModelFailed, PieceScheduler
from metaser.inference.serve.stream import StreamContext, run_stream
from metaser.inference.serve.upload import ApiError, read_upload

__all__ = ["ServeConfig", "create_app", "ApiError", "STATIC_DIR"]

STATIC_DIR = Path(str(resources.files("metaser.inference.serve") / "static"))

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
        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
    },
}


@dataclass
class ServeConfig:
    """Limits, scheduling and logging of the service.

    max_upload_mb: larger uploads get 413. max_seconds: longer audio gets 422 ``too_long``.
    batch_size: most pieces per forward; batch_seconds: most audio seconds per forward (a
    longer single piece runs alone), which bounds how long any request waits behind one
    forward. max_wait_ms: how long an idle worker waits to fill a batch. max_queue: unfinished
    requests at most (then 503 ``busy``). access_log: one line per request. Streams:
    max_streams open at most, max_stream_seconds of audio each, idle_seconds without a message
    before the server ends one.
    """

    max_upload_mb: float = 50.0
    max_seconds: float = 600.0
    batch_size: int = 8
    batch_seconds: float = 10.0
    max_wait_ms: float = 10.0
    max_queue: int = 256
    access_log: bool = True
    max_streams: int = 16
    max_stream_seconds: float = 3600.0
    idle_seconds: float = 30.0

    @property
    def max_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)


def create_app(recognizer, config: ServeConfig | None = None, *, model_name: str | None = None):
    """The FastAPI app serving ``recognizer`` (an :class:`EmotionRecognizer`)."""
    cfg = config or ServeConfig()
    name = model_name or (recognizer.path.name if recognizer.path is not None else "model")
    scheduler = PieceScheduler(
        recognizer,
        max_batch=cfg.batch_size,
        max_batch_seconds=cfg.batch_seconds,
        max_wait_s=cfg.max_wait_ms / 1000.0,
        max_queue=cfg.max_queue,
        on_idle=Trimmer(),
    )
    stats = ServeStats()
    segment_lock = threading.Lock()  # silero-vad keeps state: one segmentation at a time
    long_samples = int(recognizer.config.segment.max_seconds * SAMPLE_RATE)  # longer inputs need silero-vad
    streams = StreamContext(
        recognizer,
        scheduler,
        stats,
        max_stream_seconds=cfg.max_stream_seconds,
        idle_seconds=cfg.idle_seconds,
        max_streams=cfg.max_streams,
    )

    @asynccontextmanager
    async def lifespan(app):
        scheduler.start()
        yield
        scheduler.stop()

    from fastapi_offline import FastAPIOffline  # /docs and /redoc with their assets served locally

    app = FastAPIOffline(
        title="metaser",
        version=_version(),
        lifespan=lifespan,
        description="Speech emotion recognition (emotion, gender, style, transcript) with a "
        "trained metaser model. Bad uploads get a 4xx JSON body "
        '`{"error": ..., "reason": ...}`.',
    )
    app.state.scheduler = scheduler
    app.state.stats = stats
    app.state.recognizer = recognizer
    app.state.config = cfg
    app.add_middleware(ServeMiddleware, stats=stats, access=cfg.access_log)

    def _err(status: int, error: str, reason: str) -> JSONResponse:
        stats.error(reason)
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

    # other exceptions (bugs) and client disconnects are handled by ServeMiddleware

    @app.get("/health", summary="Liveness, the model served and the service's counters")
    async def health() -> dict[str, Any]:
        return {
            "status": "ok",
            "model": name,
            "backend": recognizer.backend_name,
            "stats": {**stats.snapshot(), "scheduler": scheduler.stats(), "rss_mb": rss_mb()},
        }

    @app.get("/v1/model", summary="The model's classes, tasks and the service limits")
    async def model_info() -> dict[str, Any]:
        """The classes, tasks and limits (used by the page)."""
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
        if x.shape[0] <= long_samples:  # one piece, no silero-vad: no need to wait for the lock
            return check_audio(x, label, filename, recognizer.checks)
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
        """Send a multipart form with a ``file`` field, or the raw file with an ``audio/*`` or
        ``application/octet-stream`` content type. Returns ``metaser predict --format json``'s
        object for the file plus ``labels`` (emotions sorted by score)."""
        data, filename = await read_upload(request, cfg.max_bytes)
        try:
            loaded = await run_in_threadpool(_decode, data, filename)
        except (AudioError, InputError) as e:
            raise ApiError(422, e.message, e.reason) from None
        except DataError as e:
            raise ApiError(422, e.message, "invalid") from None
        finally:
            del data
        try:
            fut = scheduler.submit(loaded)
        except Busy as e:
            raise ApiError(503, f"the server is busy ({e}); retry later", "busy") from None
        del loaded
        pred = await _result_unless_gone(request, fut)
        stats.count(predictions=1)
        out = pred.to_dict()
        out["labels"] = pred.labels()
        return out

    @app.websocket("/v1/stream")
    async def stream(websocket: WebSocket) -> None:
        await run_stream(websocket, streams)

    @app.get("/", include_in_schema=False)
    async def index():
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=str(STATIC_DIR)), name="static")
    return app


async def _result_unless_gone(request: Request, fut):
    """The scheduler's result for ``fut``; if the client disconnects first, the request's
    remaining pieces are dropped (``fut`` cancelled) and ``ClientDisconnect`` is raised."""
    result = asyncio.wrap_future(fut)
    gone = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait({result, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
    if not result.done():
        result.cancel()
        raise ClientDisconnect()
    if isinstance(result.exception(), ModelFailed):  # logged by the scheduler
        raise ApiError(500, f"the model failed on this input ({result.exception()})", "model_error")
    return result.result()  # any other error is a bug: the middleware logs it and answers 500 internal


async def _disconnected(request: Request) -> None:
    """Returns when the client has gone (the body is read: the next message is a disconnect)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


def _version() -> str:
    from metaser import __version__

    return __version__
