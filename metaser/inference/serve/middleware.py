"""What every request of ``metaser serve`` goes through: counters, the access log, disconnects.

:class:`ServeMiddleware` is a plain ASGI middleware around the FastAPI app. It

* answers ``HEAD`` on every ``GET`` route: the request is routed as ``GET`` and the body of the
  answer is dropped (its headers, ``content-length`` included, are those of the ``GET``);
* turns a client that went away (``ClientDisconnect``: a dropped upload, a broken chunked body)
  into one info line ``client disconnected`` and a count in :class:`ServeStats`, instead of an
  error with tracebacks; the access log shows it with status 499 (the client closed the request);
* catches any other exception (a bug): one ``unexpected error`` traceback in the log, a 500
  JSON ``{"error", "reason": "internal"}`` when the answer has not started, and the server goes on;
* writes the access log, one line per request in uvicorn's format plus the duration and the
  bytes received and sent: ``127.0.0.1:50312 - "POST /v1/predict HTTP/1.1" 200 41.7ms in=70444B
  out=712B``; a WebSocket session is one line when it ends, with its close code.

:class:`ServeStats` holds fixed-size counters only (no per-request lists), for ``/health``.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import Counter
from typing import Any

from starlette.requests import ClientDisconnect

__all__ = ["ServeStats", "ServeMiddleware", "UvicornInvalidRequestFilter", "log", "access_log"]

log = logging.getLogger("metaser.serve")
access_log = logging.getLogger("metaser.serve.access")

DISCONNECTED = 499  # the status nginx logs for "client closed the request"


class ServeStats:
    """Counters of one running service; thread-safe, fixed size (``/health``'s ``stats``)."""

    def __init__(self):
        self._lock = threading.Lock()
        self.started = time.monotonic()
        self.requests = 0  # HTTP requests answered (or dropped by their client)
        self.responses: Counter[str] = Counter()  # status code -> count
        self.errors: Counter[str] = Counter()  # reason -> count (4xx / 5xx answers and stream errors)
        self.disconnects = 0
        self.predictions = 0
        self.streams_opened = 0
        self.streams_active = 0
        self.windows = 0

    def count(self, **deltas: int) -> None:
        """Add to plain counters: ``count(predictions=1)``."""
        with self._lock:
            for k, v in deltas.items():
                setattr(self, k, getattr(self, k) + v)

    def error(self, reason: str) -> None:
        with self._lock:
            self.errors[reason] += 1

    def response(self, status: int) -> None:
        with self._lock:
            self.requests += 1
            self.responses[str(status)] += 1

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "uptime_seconds": round(time.monotonic() - self.started, 1),
                "requests": self.requests,
                "responses": dict(sorted(self.responses.items())),
                "predictions": self.predictions,
                "errors": dict(sorted(self.errors.items())),
                "disconnects": self.disconnects,
                "streams": {"opened": self.streams_opened, "active": self.streams_active, "windows": self.windows},
            }


class ServeMiddleware:
    """See the module docstring. ``access``: write the access log."""

    def __init__(self, app, stats: ServeStats, access: bool = True):
        self.app, self.stats, self.access = app, stats, access

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "websocket":
            await self._websocket(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def _http(self, scope, receive, send):
        t0 = time.perf_counter()
        head = scope["method"] == "HEAD"
        if head:
            scope = dict(scope, method="GET")
        state = {"status": None, "in": 0, "out": 0}

        async def counting_receive():
            message = await receive()
            if message["type"] == "http.request":
                state["in"] += len(message.get("body", b""))
            return message

        async def counting_send(message):
            if message["type"] == "http.response.start":
                state["status"] = message["status"]
            elif message["type"] == "http.response.body":
                if head:
                    message = dict(message, body=b"")
                state["out"] += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, counting_receive, counting_send)
        except ClientDisconnect:
            state["status"] = DISCONNECTED
            self.stats.count(disconnects=1)
            log.info(
                "client disconnected: %s %s after %d bytes (%s)",
                scope["method"],
                scope["path"],
                state["in"],
                _client(scope),
            )
        except Exception:  # a bug: one traceback, a 500, and the server keeps serving
            log.exception("unexpected error in %s %s", scope["method"], scope["path"])
            self.stats.error("internal")
            if state["status"] is None:
                body = json.dumps({"error": "internal error", "reason": "internal"}).encode()
                await counting_send(
                    {
                        "type": "http.response.start",
                        "status": 500,
                        "headers": [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))],
                    }
                )
                await counting_send({"type": "http.response.body", "body": body})
        status = state["status"] or 500
        self.stats.response(status)
        if self.access:
            path = scope.get("raw_path", scope["path"].encode()).decode("latin-1")
            if scope.get("query_string"):
                path += "?" + scope["query_string"].decode("latin-1")
            access_log.info(
                '%s - "%s %s HTTP/%s" %d %.1fms in=%dB out=%dB',
                _client(scope),
                "HEAD" if head else scope["method"],
                path,
                scope.get("http_version", "1.1"),
                status,
                1000 * (time.perf_counter() - t0),
                state["in"],
                state["out"],
            )

    async def _websocket(self, scope, receive, send):
        t0 = time.perf_counter()
        state = {"code": None, "in": 0, "out": 0}

        async def counting_receive():
            message = await receive()
            if message["type"] == "websocket.receive":
                state["in"] += len(message.get("bytes") or b"") + len((message.get("text") or "").encode())
            elif message["type"] == "websocket.disconnect" and state["code"] is None:
                state["code"] = message.get("code", 1005)
            return message

        async def counting_send(message):
            if message["type"] == "websocket.send":
                state["out"] += len(message.get("bytes") or b"") + len((message.get("text") or "").encode())
            elif message["type"] == "websocket.close" and state["code"] is None:
                state["code"] = message.get("code", 1000)
            await send(message)

        try:
            await self.app(scope, counting_receive, counting_send)
        except Exception:
            log.exception("unexpected error in WebSocket %s", scope["path"])
            self.stats.error("internal")
            state["code"] = state["code"] or 1011
        if self.access:
            access_log.info(
                '%s - "WEBSOCKET %s" %s %.1fms in=%dB out=%dB',
                _client(scope),
                scope["path"],
                state["code"] if state["code"] is not None else "-",
                1000 * (time.perf_counter() - t0),
                state["in"],
                state["out"],
            )


class UvicornInvalidRequestFilter(logging.Filter):
    """Counts uvicorn's ``Invalid HTTP request received.`` warnings (garbage on the socket, a bad
    chunk size; uvicorn answers them 400 itself) as ``errors["invalid_http"]`` instead of
    logging them: when such a request had reached the app, the app logs the one
    ``client disconnected`` line as the connection closes."""

    def __init__(self, stats: ServeStats):
        super().__init__()
        self.stats = stats

    def filter(self, record: logging.LogRecord) -> bool:
        if record.getMessage().startswith("Invalid HTTP request received"):
            self.stats.error("invalid_http")
            return False
        return True


def _client(scope) -> str:
    c = scope.get("client")
    return f"{c[0]}:{c[1]}" if c else "-"
