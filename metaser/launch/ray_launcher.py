"""The Ray launcher: each task a Ray task, on this machine or a cluster.

Ray is an optional extra (``pip install 'metaser[ray]'``), imported by this launcher only.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path
from typing import Any

from metaser.errors import MetaserError
from metaser.launch.execute import execute, failed_outcome, to_result
from metaser.launch.tasks import ClosingLauncher, OnDone, Task, TaskResult, plan

RAY_INSTALL_HINT = "pip install 'metaser[ray]'"


def _use_cluster_token() -> None:
    """Ray >= 2.60 starts a head (``ray start --head``) with token authentication whenever a token
    exists (``~/.ray/auth_token``, ``RAY_AUTH_TOKEN`` / ``RAY_AUTH_TOKEN_PATH``), but a driver joining
    it only sends the token with ``RAY_AUTH_MODE=token``. Set that, as Ray's own CLI does, unless
    the user chose a mode."""
    if "RAY_AUTH_MODE" in os.environ:
        return
    token_file = Path(os.environ.get("RAY_AUTH_TOKEN_PATH") or Path.home() / ".ray" / "auth_token")
    if os.environ.get("RAY_AUTH_TOKEN") or token_file.is_file():
        os.environ["RAY_AUTH_MODE"] = "token"


def import_ray():
    try:
        import ray
    except ImportError:
        raise MetaserError(
            "--launcher ray needs Ray, which is not installed", hint=f"install it with: {RAY_INSTALL_HINT}"
        ) from None
    return ray


class RayLauncher(ClosingLauncher):
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
        if ray_address is not None:
            _use_cluster_token()  # before `import ray`: Ray reads RAY_AUTH_MODE when it is imported
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
        # Ray retries a task whose worker died (max_retries); execute retries the task's own errors.
        remote = ray.remote(execute).options(
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
                    results[key] = to_result(key, unique[key], outcomes[key])
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
                return failed_outcome(f"dependency {failed[0]} failed", 0)
            msg = str(e).strip().splitlines()
            return failed_outcome(f"{type(e).__name__}: {msg[0] if msg else ''}", self.retries + 1)

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
