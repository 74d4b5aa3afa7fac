"""Checking an encoder name before anything trains: a preset, a local checkpoint directory, or a
hub id this machine can get.

``metaser train / cv / ablate / sweep / bench train`` call :func:`check_encoder_source` when they
load their config, so a typo or an unreachable hub gives one clear error (exit code 2) in a
second, not a failed task per fold after the hub client's retries.
"""

from __future__ import annotations

import difflib
import socket
from pathlib import Path

from metaser.errors import ConfigError
from metaser.models.encoder.presets import PRESETS

__all__ = ["check_encoder_source", "HUB_HOST"]

HUB_HOST = "huggingface.co"


def _looks_like_path(name: str) -> bool:
    return name.startswith(("/", ".", "~")) or name.count("/") > 1 or "\\" in name


def _cached(name: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(name, "config.json"), str)
    except Exception:  # noqa: BLE001 - a malformed repo id is simply not cached
        return False


def _hub_reachable(timeout: float = 3.0) -> bool:
    try:
        socket.setdefaulttimeout(timeout)
        socket.getaddrinfo(HUB_HOST, 443)
        return True
    except OSError:
        return False
    finally:
        socket.setdefaulttimeout(None)


def check_encoder_source(name: str) -> None:
    """ConfigError with a hint unless ``name`` is a preset, a directory holding ``config.json``, a
    hub id in the local cache, or a hub id while the hub can be reached (the loader then reports
    an unknown id itself)."""
    presets = ", ".join(PRESETS)
    hint = f"give a preset ({presets}), a local checkpoint directory or a hub id"
    close = difflib.get_close_matches(name, list(PRESETS), n=1)
    if close:
        hint = f"did you mean {close[0]!r}? " + hint
    if name in PRESETS:
        return
    p = Path(name).expanduser()
    if p.exists():
        if not (p / "config.json").is_file():
            raise ConfigError(f"model.encoder.name_or_path: {p} has no config.json", hint=hint)
        return
    if _looks_like_path(name):
        raise ConfigError(f"model.encoder.name_or_path: directory not found: {p}", hint=hint)
    if _cached(name) or _hub_reachable():
        return
    raise ConfigError(
        f"model.encoder.name_or_path: {name!r} is not a preset, not a local directory and not in the "
        f"local Hugging Face cache, and {HUB_HOST} cannot be reached from here",
        hint=hint,
    )
