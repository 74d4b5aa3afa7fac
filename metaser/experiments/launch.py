"""Run a plan of tasks (a DAG keyed by content) in this process or on a Ray cluster.

Tasks with the same ``key`` are the same work and run once, however many tasks depend on them.
A task runs once all its ``deps`` succeeded; one whose dependency failed is not run and is
reported as failed. A failing task is retried ``retries`` times, then reported with its log path;
the tasks that do not depend on it go on. Both launchers execute a task through one function
(:func:`_execute`, which holds the retry loop and the dependency check), so Ray changes where and
when a task runs, never what it does. Locally a task's output goes to the terminal (each failed
attempt's traceback to its ``log_path``); under Ray all of its stdout/stderr go to ``log_path``.
Ray is an optional extra (``pip install 'metaser[ray]'``), imported by the Ray launcher only.
"""

from __future__ import annotations

import contextlib
import datetime
import graphlib
import logging
import os
import pickle
import socket
import sys
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from metaser.errors import MetaserError

RAY_INSTALL_HINT = "pip install 'metaser[ray]'"


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


# ------------------------------------------------------------------- running one task
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


def _failed(error: str, attempts: int, seconds: float = 0.0) -> dict:
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


def _execute(
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
            return _failed(f"dependency {dep} failed", 0)
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
    return _failed(error or "", retries + 1, time.time() - t0)


def _to_result(key: str, task: Task, outcome: dict) -> TaskResult:
    return TaskResult(
        key=key,
        ok=outcome["ok"],
        result=outcome["result"],
        error=outcome["error"],
        seconds=round(outcome["seconds"], 3),
        attempts=outcome["attempts"],
        log_path=task.log_path,
    )


# ------------------------------------------------------------------------------- local
class _Closing:
    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class LocalLauncher(_Closing):
    """Every task in this process, one after the other, in topological order."""

    kind = "local"

    def __init__(self, *, retries: int = 1):
        self.retries = retries

    def run(self, tasks: list[Task], *, on_done: OnDone | None = None) -> dict[str, TaskResult]:
        unique, order = plan(tasks)
        outcomes: dict[str, dict] = {}
        results: dict[str, TaskResult] = {}
        for key in order:
            t = unique[key]
            outcomes[key] = _execute(
                key,
                t.fn,
                t.args,
                t.kwargs,
                t.log_path,
                self.retries,
                None,
                list(t.deps),
                *[outcomes[d] for d in t.deps],
            )
            results[key] = _to_result(key, t, outcomes[key])
            if on_done:
                on_done(t, results[key])
        return results


# --------------------------------------------------------------------------------- ray
def import_ray():
    try:
        import ray
    except ImportError:
        raise MetaserError(
            "--launcher ray needs Ray, which is not installed", hint=f"install it with: {RAY_INSTALL_HINT}"
        ) from None
    return ray


class RayLauncher(_Closing):
    """Each task a Ray task; dependencies passed as ObjectRefs, so Ray orders them.

    ``ray_address=None`` starts a local Ray instance on this machine (and shuts it down on
    :meth:`close` or Ctrl-C); ``"auto"`` or ``"host:port"`` joins a running cluster. An already
    initialised Ray (e.g. a test's) is used as it is and left running.
    """

    kind = "ray"

    def __init__(
        self,
        *,
        ray_address: str | None = None,
        gpus_per_task: float | None = None,
        cpus_per_task: float = 1.0,
        retries: int = 1,
    ):
        self.ray = import_ray()
        self.ray_address = ray_address
        self.gpus_per_task = gpus_per_task
        self.cpus_per_task = cpus_per_task
        self.retries = retries
        self._started = False

    def ensure_started(self):
        ray = self.ray
        if not ray.is_initialized():
            quiet = dict(include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False)
            try:
                if self.ray_address is None:
                    ray.init(address="local", num_cpus=os.cpu_count(), **quiet)
                else:
                    ray.init(address=self.ray_address, **quiet)
            except ConnectionError as e:
                raise MetaserError(
                    f"cannot join the Ray cluster at {self.ray_address!r}: {e}",
                    hint="start one with `ray start --head` (or leave out --ray-address for a local instance)",
                ) from None
            self._started = True
        return ray

    def _resources(self) -> tuple[float, float]:
        """(num_gpus, num_cpus) per task, checked against the biggest alive node."""
        nodes = [n["Resources"] for n in self.ray.nodes() if n.get("Alive")]
        max_gpu = max((n.get("GPU", 0.0) for n in nodes), default=0.0)
        max_cpu = max((n.get("CPU", 0.0) for n in nodes), default=0.0)
        gpus = (1.0 if max_gpu > 0 else 0.0) if self.gpus_per_task is None else float(self.gpus_per_task)
        if gpus > max_gpu:
            raise MetaserError(
                f"--gpus-per-task {gpus:g}: no node of the Ray cluster has that many GPUs "
                f"(the biggest has {max_gpu:g}); the tasks would wait forever"
            )
        if self.cpus_per_task > max_cpu:
            raise MetaserError(
                f"--cpus-per-task {self.cpus_per_task:g}: no node of the Ray cluster has that "
                f"many CPUs (the biggest has {max_cpu:g}); the tasks would wait forever"
            )
        return gpus, float(self.cpus_per_task)

    def run(self, tasks: list[Task], *, on_done: OnDone | None = None) -> dict[str, TaskResult]:
        unique, order = plan(tasks)
        ray = self.ensure_started()
        gpus, cpus = self._resources()
        # Ray retries a task whose worker died (max_retries); _execute retries the task's own errors.
        remote = ray.remote(_execute).options(
            num_gpus=gpus, num_cpus=cpus, max_retries=self.retries, retry_exceptions=False
        )
        refs: dict[str, Any] = {}
        for key in order:
            t = unique[key]
            refs[key] = remote.remote(
                key,
                t.fn,
                t.args,
                t.kwargs,
                t.log_path,
                self.retries,
                max(1, int(cpus)),
                list(t.deps),
                *[refs[d] for d in t.deps],
            )
        by_ref = {ref: key for key, ref in refs.items()}
        outcomes: dict[str, dict] = {}
        results: dict[str, TaskResult] = {}
        pending = list(refs.values())
        try:
            while pending:
                done, pending = ray.wait(pending, num_returns=1, timeout=1.0)
                for ref in done:
                    key = by_ref[ref]
                    outcomes[key] = self._outcome(ref, unique[key], outcomes, refs)
                    results[key] = _to_result(key, unique[key], outcomes[key])
                    if on_done:
                        on_done(unique[key], results[key])
        except KeyboardInterrupt:
            for ref in pending:
                with contextlib.suppress(Exception):
                    ray.cancel(ref, force=True)
            self.close()
            raise
        return {k: results[k] for k in order}

    def _outcome(self, ref, task: Task, outcomes: dict[str, dict], refs: dict[str, Any]) -> dict:
        try:
            return self.ray.get(ref)
        except Exception as e:  # the worker died (after Ray's retries), or a dependency's did
            failed = [d for d in task.deps if not self._dep_ok(d, outcomes, refs)]
            if failed:
                return _failed(f"dependency {failed[0]} failed", 0)
            msg = str(e).strip().splitlines()
            return _failed(f"{type(e).__name__}: {msg[0] if msg else ''}", self.retries + 1)

    def _dep_ok(self, dep: str, outcomes: dict[str, dict], refs: dict[str, Any]) -> bool:
        if dep in outcomes:
            return outcomes[dep]["ok"]
        try:  # finished (its dependant could not have failed otherwise) but not yet collected
            return bool(self.ray.get(refs[dep], timeout=10)["ok"])
        except Exception:
            return False

    def close(self) -> None:
        if self._started and self.ray.is_initialized():
            self.ray.shutdown()
        self._started = False


def make_launcher(
    kind: str = "local",
    *,
    ray_address: str | None = None,
    gpus_per_task: float | None = None,
    cpus_per_task: float = 1.0,
    retries: int = 1,
) -> Launcher:
    if retries < 0:
        raise MetaserError(f"retries must be >= 0, got {retries}")
    if kind == "local":
        if ray_address is not None:
            raise MetaserError("--ray-address needs --launcher ray")
        return LocalLauncher(retries=retries)
    if kind == "ray":
        if cpus_per_task < 0 or (gpus_per_task is not None and gpus_per_task < 0):
            raise MetaserError("--cpus-per-task and --gpus-per-task must be >= 0")
        return RayLauncher(
            ray_address=ray_address, gpus_per_task=gpus_per_task, cpus_per_task=cpus_per_task, retries=retries
        )
    raise MetaserError(f"unknown launcher {kind!r}: choose local or ray")


# --------------------------------------------------------------------- shared outputs
def _probe(directory: str, driver_token: str) -> dict:
    """On one worker: can it see the driver's probe file, and write one the driver can see?"""
    d = Path(directory)
    seen = (d / driver_token).is_file()
    name = f".metaser-probe-{uuid.uuid4().hex}"
    try:
        d.mkdir(parents=True, exist_ok=True)
        (d / name).write_text(socket.gethostname())
    except OSError as e:
        return {"host": socket.gethostname(), "seen": seen, "wrote": None, "error": str(e)}
    return {"host": socket.gethostname(), "seen": seen, "wrote": name, "error": None}


def _judge_probes(d: Path, answers: list[dict]) -> None:
    """Remove the workers' probe files; raise unless each saw ours and we see each of theirs."""
    bad = []
    for a in answers:
        wrote = a["wrote"]
        if a["error"] or not a["seen"] or not (wrote and (d / wrote).is_file()):
            bad.append(f"{a['host']}: " + (a["error"] or "writes to a different filesystem than this machine"))
        if wrote:
            with contextlib.suppress(OSError):
                (d / wrote).unlink()
    if bad:
        raise MetaserError(
            f"the output directory {d} is not shared with every Ray worker ({'; '.join(bad)})",
            hint="outputs must live on a filesystem every worker sees (NFS, Lustre, ...): set output_dir=/shared/path",
        )


def check_shared_output(path: str | Path, launcher: Launcher) -> None:
    """Fail with a clear message unless every worker can write ``path`` and the driver sees it.

    Local: this process must be able to create and write the directory. Ray: one tiny task per
    alive node writes a probe file there, which this process must then see (and removes).
    """
    d = Path(path).resolve()
    token = f".metaser-probe-{uuid.uuid4().hex}"
    try:
        d.mkdir(parents=True, exist_ok=True)
        (d / token).write_text("driver")
    except OSError as e:
        raise MetaserError(f"cannot write the output directory {d}: {e}") from None
    try:
        if not isinstance(launcher, RayLauncher):
            return
        ray = launcher.ensure_started()
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        probe = ray.remote(_probe)
        nodes = [n["NodeID"] for n in ray.nodes() if n.get("Alive")]
        refs = [
            probe.options(
                num_cpus=0, max_retries=0, scheduling_strategy=NodeAffinitySchedulingStrategy(n, soft=False)
            ).remote(str(d), token)
            for n in nodes
        ]
        try:
            answers = ray.get(refs, timeout=120)
        except Exception as e:
            raise MetaserError(f"the output-directory probe did not finish on every Ray node: {e}") from None
        _judge_probes(d, answers)
    finally:
        with contextlib.suppress(OSError):
            (d / token).unlink()
