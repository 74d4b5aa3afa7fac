"""Keeping a long-running server's memory flat, and measuring it.

Where a server's resident memory went under load (measured in docs/serve.md, "Memory"):

* oneDNN's primitive cache. torch runs the CNN feature encoder's convolutions (and their GELUs
  and layout conversions) through oneDNN, which caches one primitive (kernel plus its scratch
  memory) per distinct input shape, up to 1024 by default. Uploads have every length, so each
  new length added primitives until the cache was full: RSS grew, ever more slowly.
  :func:`tune_memory` caps the cache at :data:`PRIMITIVE_CACHE` entries
  (``ONEDNN_PRIMITIVE_CACHE_CAPACITY``; an explicit environment setting wins). Rebuilding a
  shape's primitives is cheap (measured: no slower forwards at 64 than at 1024).
* glibc's heap. Decoded audio, batches and activations are large, short-lived buffers of
  ever-changing sizes; freed heap pages stay resident. :class:`Trimmer` calls
  ``malloc_trim(0)`` when the model worker runs out of work (at most once a second), which
  hands the free pages back to the kernel.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import threading
import time
from pathlib import Path

__all__ = ["rss_mb", "tune_memory", "Trimmer", "PRIMITIVE_CACHE"]

log = logging.getLogger("metaser.serve")

PRIMITIVE_CACHE = 64  # oneDNN primitives kept (default 1024)


def rss_mb(pid: int | str = "self") -> float | None:
    """Resident memory of a process in MB (Linux ``/proc``; None elsewhere)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024.0, 1)
    except OSError:
        pass
    return None


def tune_memory(primitive_cache: int = PRIMITIVE_CACHE) -> None:
    """Cap oneDNN's primitive cache (before the first convolution runs: oneDNN reads it once)."""
    if "ONEDNN_PRIMITIVE_CACHE_CAPACITY" not in os.environ and "DNNL_PRIMITIVE_CACHE_CAPACITY" not in os.environ:
        os.environ["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] = str(int(primitive_cache))


class Trimmer:
    """``malloc_trim(0)`` (glibc), at most every ``min_interval`` seconds; a no-op without glibc."""

    def __init__(self, min_interval: float = 1.0):
        self.min_interval = min_interval
        self._last = 0.0
        self._lock = threading.Lock()
        self._trim = None
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            self._trim = libc.malloc_trim
            self._trim.argtypes = [ctypes.c_size_t]
            self._trim.restype = ctypes.c_int
        except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to do
            log.debug("malloc_trim unavailable")
        self.calls = 0

    def __call__(self) -> None:
        if self._trim is None:
            return
        now = time.monotonic()
        with self._lock:
            if now - self._last < self.min_interval:
                return
            self._last = now
        self._trim(0)
        self.calls += 1
