"""Run a plan of tasks (a DAG keyed by content) in this process or on a Ray cluster.

Tasks with the same ``key`` are the same work and run once, however many tasks depend on them.
A task runs once all its ``deps`` succeeded; one whose dependency failed is not run and is
reported as failed. A failing task is retried ``retries`` times, then reported with its log path;
the tasks that do not depend on it go on. Both launchers execute a task through one function
(:func:`~metaser.launch.execute.execute`, which holds the retry loop and the dependency check),
so Ray changes where and when a task runs, never what it does. Locally a task's output goes to the terminal (each failed
attempt's traceback to its ``log_path``); under Ray all of its stdout/stderr go to ``log_path``.
Ray is an optional extra (``pip install 'metaser[ray]'``), imported by the Ray launcher only.

Modules, one job each: :mod:`.tasks` (tasks, results, the plan), :mod:`.execute` (one task),
:mod:`.local` and :mod:`.ray_launcher` (the two launchers), :mod:`.shared` (the shared-output
check), :mod:`.report` (progress lines and the summary table).
"""

from __future__ import annotations

from metaser.errors import MetaserError
from metaser.launch.local import LocalLauncher
from metaser.launch.ray_launcher import RAY_INSTALL_HINT, RayLauncher, import_ray
from metaser.launch.shared import check_shared_output
from metaser.launch.tasks import Launcher, OnDone, Task, TaskResult, plan

__all__ = [
    "Task",
    "TaskResult",
    "OnDone",
    "Launcher",
    "plan",
    "LocalLauncher",
    "RayLauncher",
    "import_ray",
    "RAY_INSTALL_HINT",
    "make_launcher",
    "check_shared_output",
]


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
