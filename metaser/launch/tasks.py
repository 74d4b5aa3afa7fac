"""What a launcher runs: tasks keyed by content, their results, and the plan (dedup + order).

Tasks with the same ``key`` are the same work and run once, however many tasks depend on them.
A task runs once all its ``deps`` succeeded; one whose dependency failed is not run and is
reported as failed.
"""

from __future__ import annotations

import graphlib
import pickle
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from metaser.errors import MetaserError


@dataclass
class Task:
    key: str  # unique id; tasks with the same key are the same work and run once
    fn: Callable[..., dict]  # a module-level (picklable) function; returns a small JSON-able dict
    args: tuple = ()  # picklable
    kwargs: dict = field(default_factory=dict)
    deps: list[str] = field(default_factory=list)  # keys that must finish first
    label: dict = field(default_factory=dict)  # e.g. {"variant": ..., "fold": ..., "stage": ...} for progress lines
    log_path: str | None = None  # where the task's output/log goes (stdout/stderr captured there under Ray)


@dataclass
class TaskResult:
    key: str
    ok: bool
    result: dict | None
    error: str | None
    seconds: float
    attempts: int
    log_path: str | None


OnDone = Callable[[Task, TaskResult], None]


class Launcher(Protocol):
    def run(
        self, tasks: list[Task], *, on_done: Callable[[Task, TaskResult], None] | None = None
    ) -> dict[str, TaskResult]: ...


# ----------------------------------------------------------------------------- the plan
def _same_work(a: Task, b: Task) -> bool:
    name = lambda f: (getattr(f, "__module__", None), getattr(f, "__qualname__", None))  # noqa: E731
    if (a.fn is not b.fn and name(a.fn) != name(b.fn)) or sorted(a.deps) != sorted(b.deps):
        return False
    try:
        return bool(a.args == b.args and a.kwargs == b.kwargs)
    except Exception:  # e.g. arrays whose == is elementwise: compare what would be sent
        return pickle.dumps((a.args, a.kwargs)) == pickle.dumps((b.args, b.kwargs))


def plan(tasks: list[Task]) -> tuple[dict[str, Task], list[str]]:
    """Deduplicate by key and order topologically: ``(key -> task, keys in run order)``.

    Identical duplicates collapse into one task (the first one's label and log path are kept);
    two tasks with one key but different work, a dependency on a key not in the plan and a
    cycle are errors.
    """
    unique: dict[str, Task] = {}
    for t in tasks:
        if not t.key:
            raise MetaserError(f"a task has an empty key (label {t.label})")
        seen = unique.get(t.key)
        if seen is None:
            unique[t.key] = t
        elif not _same_work(seen, t):
            raise MetaserError(
                f"two different tasks share the key {t.key!r} ({seen.label} and {t.label}): "
                "a key must identify exactly one piece of work"
            )
    for t in unique.values():
        missing = [d for d in t.deps if d not in unique]
        if missing:
            raise MetaserError(f"task {t.key!r} depends on {missing[0]!r}, which is not in the plan")
    sorter = graphlib.TopologicalSorter({k: list(dict.fromkeys(t.deps)) for k, t in unique.items()})
    try:
        sorter.prepare()  # raises on a cycle
    except graphlib.CycleError as e:
        raise MetaserError(f"the task dependencies form a cycle: {' -> '.join(map(str, e.args[1]))}") from None
    # Depth first in the order given: a task runs right after its dependencies, so a local run
    # finishes fold 1 (all its stages) before it starts fold 2.
    order: list[str] = []
    done: set[str] = set()

    def visit(key: str) -> None:
        if key in done:
            return
        done.add(key)
        for d in unique[key].deps:
            visit(d)
        order.append(key)

    for key in unique:
        visit(key)
    return unique, order


class ClosingLauncher:
    """Base of the launchers: a context manager whose exit calls :meth:`close`."""

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
