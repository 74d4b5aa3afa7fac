"""``metaser serve``: load the model, tune the process for a long life, run uvicorn.

Logging: uvicorn's own loggers at ``warning``; ``metaser.serve`` (disconnects, stream ends,
errors) and the access log ``metaser.serve.access`` at ``info`` in uvicorn's format, on
stderr and stdout as uvicorn puts its logs. uvicorn's ``Invalid HTTP request received.``
warnings are counted in ``/health`` instead (see :class:`UvicornInvalidRequestFilter`).
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path

from metaser.inference.serve.app import ServeConfig, create_app
from metaser.inference.serve.memory import tune_memory
from metaser.inference.serve.middleware import UvicornInvalidRequestFilter

__all__ = ["run_server", "log_config", "LOOPBACK"]

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def log_config(access_log: bool = True) -> dict:
    """uvicorn's logging config plus the ``metaser.serve`` loggers (same formats)."""
    from uvicorn.config import LOGGING_CONFIG

    cfg = copy.deepcopy(LOGGING_CONFIG)
    cfg["handlers"]["metaser_access"] = {
        "formatter": "default",
        "class": "logging.StreamHandler",
        "stream": "ext://sys.stdout",
    }
    cfg["loggers"]["metaser.serve"] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    cfg["loggers"]["metaser.serve.access"] = {
        "handlers": ["metaser_access"],
        "level": "INFO" if access_log else "WARNING",
        "propagate": False,
    }
    return cfg


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

    cfg = config or ServeConfig()
    for key in ("max_upload_mb", "max_seconds", "batch_seconds"):
        if not getattr(cfg, key) > 0:
            raise ConfigError(f"--{key.replace('_', '-')} must be > 0, got {getattr(cfg, key)}")
    if cfg.batch_size < 1:
        raise ConfigError(f"--batch-size must be >= 1, got {cfg.batch_size}")
    if not 0 < port < 65536:
        raise ConfigError(f"--port must be in 1..65535, got {port}")
    tune_memory()  # before the model runs: the oneDNN cache size is read once
    from metaser.inference.recognizer import EmotionRecognizer

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
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level="warning",
            log_config=log_config(cfg.access_log),
            access_log=False,  # ServeMiddleware writes it, with duration and bytes
        )
    )
    invalid = UvicornInvalidRequestFilter(app.state.stats)
    logging.getLogger("uvicorn.error").addFilter(invalid)
    try:
        server.run()
    finally:
        logging.getLogger("uvicorn.error").removeFilter(invalid)
