"""The local launcher: every task in this process, one after the other."""

from __future__ import annotations

from metaser.launch.execute import execute, to_result
from metaser.launch.tasks import ClosingLauncher, OnDone, Task, TaskResult, plan


class LocalLauncher(ClosingLauncher):
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
            outcomes[key] = execute(
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
            results[key] = to_result(key, t, outcomes[key])
            if on_done:
                on_done(t, results[key])
        return results
