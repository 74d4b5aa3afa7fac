"""Running one task: the retry loop, the dependency check and the log capture.

Both launchers execute a task through :func:`execute`, so Ray changes where and when a task
runs, never what it does. Locally a task's output goes to the terminal (each failed attempt's
traceback to its ``log_path``); under Ray all of its stdout/stderr go to ``log_path``.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import socket
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path

from metaser.launch.tasks import Task, TaskResult


@contextlib.contextmanager
def _captured(log_path: str | None, capture: bool) -> Iterator[None]:
    """Send this process's stdout/stderr (file descriptors 1 and 2) to ``log_path`` meanwhile."""
    if not (capture and log_path):
        yield
        return
    sys.stdout.flush(), sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with open(log_path, "ab", buffering=0) as f:
        os.dup2(f.fileno(), 1), os.dup2(f.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush(), sys.stderr.flush()
            for fd, copy in zip((1, 2), saved):
                os.dup2(copy, fd)
                os.close(copy)


def failed_outcome(error: str, attempts: int, seconds: float = 0.0) -> dict:
    return {"ok": False, "result": None, "error": error, "seconds": seconds, "attempts": attempts}


def _append_log(log_path: str | None, text: str) -> None:
    if log_path:
        with open(log_path, "a") as f:
            f.write(text)


def _set_threads(n: int) -> None:
    """Torch intra-op threads = the task's CPUs. A Ray worker process serves many tasks, and torch
    keeps the thread count of the first one otherwise (CPU results depend on it)."""
    os.environ["OMP_NUM_THREADS"] = str(n)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(n)


def execute(
    key: str,
    fn: Callable[..., dict],
    args: tuple,
    kwargs: dict,
    log_path: str | None,
    retries: int,
    threads: int | None,
    dep_keys: list[str],
    *dep_outcomes: dict,
) -> dict:
    """Run one task with retries; never raises for the task's own errors. Returns an outcome dict
    ``{"ok", "result", "error", "seconds", "attempts"}`` (what a TaskResult is made of).

    ``threads`` (Ray only): capture stdout/stderr in ``log_path`` and use that many torch threads.
    ``dep_outcomes`` come last, one positional argument each: Ray resolves ObjectRefs passed as
    top-level arguments only (not inside a list)."""
    for dep, out in zip(dep_keys, dep_outcomes):
        if not out["ok"]:
            return failed_outcome(f"dependency {dep} failed", 0)
    capture = threads is not None
    if capture:
        _set_threads(threads)
    if log_path:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    error = None
    for attempt in range(1, retries + 2):
        stamp = datetime.datetime.now().isoformat(timespec="seconds")
        _append_log(
            log_path,
            f"=== task {key}: attempt {attempt}/{retries + 1} on {socket.gethostname()} "
            f"(pid {os.getpid()}) at {stamp} ===\n",
        )
        try:
            with _captured(log_path, capture):
                result = fn(*args, **kwargs)
            if result is None:
                result = {}
            if not isinstance(result, dict):
                raise TypeError(f"task function {fn.__qualname__} returned {type(result).__name__}, not a dict")
            return {"ok": True, "result": result, "error": None, "seconds": time.time() - t0, "attempts": attempt}
        except Exception as e:  # KeyboardInterrupt and SystemExit are not retried
            error = f"{type(e).__name__}: {e}"
            _append_log(log_path, traceback.format_exc())
    return failed_outcome(error or "", retries + 1, time.time() - t0)


def to_result(key: str, task: Task, outcome: dict) -> TaskResult:
    return TaskResult(
        key=key,
        ok=outcome["ok"],
        result=outcome["result"],
        error=outcome["error"],
        seconds=round(outcome["seconds"], 3),
        attempts=outcome["attempts"],
        log_path=task.log_path,
    )
