"""``metaser serve``: the HTTP service (FastAPI + uvicorn) and its web page.

* :mod:`.scheduler`: one worker thread runs the model on *pieces* (files, VAD segments, fixed
  windows, stream windows) of all waiting requests, round-robin with a bound on the audio
  seconds per forward, so a long upload never holds up short ones.
* :mod:`.app`: the FastAPI application: ``GET /health``, ``GET /v1/model``, ``POST /v1/predict``
  (multipart field ``file`` or a raw ``audio/*`` / ``application/octet-stream`` body),
  ``WS /v1/stream``, the page at ``/`` and OpenAPI at ``/docs``.
* :mod:`.upload`: reading an upload; :mod:`.stream`: the live-audio WebSocket protocol.
* :mod:`.middleware`: counters for ``/health``, the access log, ``HEAD``, client disconnects.
* :mod:`.memory`: what keeps the process's memory flat; :mod:`.server`: uvicorn and logging.
* ``static/``: the page (HTML, JS, CSS), served by the package, no CDN.
"""

from __future__ import annotations

__all__ = ["create_app", "ServeConfig"]


def __getattr__(name: str):
    if name in __all__:
        from metaser.inference.serve import app

        return getattr(app, name)
    raise AttributeError(f"module 'metaser.inference.serve' has no attribute {name!r}")
