# TEMPORARY local stub of helper E's interface (not committed)
from __future__ import annotations
import time
from dataclasses import dataclass, field
from typing import Any, Callable

@dataclass
class Task:
    key: str
    fn: Callable[..., dict]
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)
    deps: list = field(default_factory=list)
    label: dict = field(default_factory=dict)
    log_path: str | None = None

@dataclass
class TaskResult:
    key: str; ok: bool; result: dict | None; error: str | None; seconds: float; attempts: int; log_path: str | None

class _Local:
    def run(self, tasks, *, on_done=None):
        seen = {}; order = []
        for t in tasks:
            if t.key not in seen: seen[t.key] = t; order.append(t)
        out = {}
        for t in order:
            t0 = time.time()
            r = t.fn(*t.args, **t.kwargs)
            out[t.key] = TaskResult(t.key, True, r, None, time.time() - t0, 1, t.log_path)
            if on_done: on_done(t, out[t.key])
        return out

def make_launcher(kind="local", **kw):
    return _Local()
