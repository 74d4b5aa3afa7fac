"""``metaser serve``: the HTTP service (FastAPI + uvicorn) and its web page.

* :mod:`.batcher`: one worker thread runs the model; concurrent requests are queued and
  micro-batched (up to ``batch_size`` inputs per forward).
* :mod:`.app`: the FastAPI application: ``GET /health``, ``GET /v1/model``, ``POST /v1/predict``
  (multipart field ``file`` or a raw ``audio/*`` body), the page at ``/`` and OpenAPI at ``/docs``.
* ``static/``: the page (HTML, JS, CSS), served by the package, no CDN.
"""

from __future__ import annotations

__all__ = ["create_app", "ServeConfig"]


def __getattr__(name: str):
    if name in __all__:
        from metaser.inference.serve import app

        return getattr(app, name)
    raise AttributeError(f"module 'metaser.inference.serve' has no attribute {name!r}")
