"""Progress lines and the summary table of a launcher run (:mod:`metaser.launch`)."""

from __future__ import annotations

from metaser.launch.tasks import Task, TaskResult, plan

__all__ = ["task_metric", "describe", "format_done", "render_summary"]


def task_metric(result: dict | None) -> tuple[str, float] | None:
    """A task's key metric from its result: ``{"metric": name, "value": x}``, or ``{"metric": x}``."""
    if not result:
        return None
    m, v = result.get("metric"), result.get("value")
    if isinstance(m, str) and isinstance(v, (int, float)) and not isinstance(v, bool):
        return m, float(v)
    if isinstance(m, (int, float)) and not isinstance(m, bool):
        return "metric", float(m)
    return None


def describe(task: Task) -> str:
    """``full fold 1 stage2``: label values, with the key in front of bare numbers (``fold 1``)."""
    return " ".join(f"{k} {v}" if isinstance(v, (int, float)) else str(v) for k, v in task.label.items()) or task.key


def format_done(task: Task, res: TaskResult) -> str:
    """One progress line (rich markup): variant, fold, stage, key metric and time."""
    from rich.markup import escape

    head = escape(describe(task))
    if res.ok:
        m = task_metric(res.result)
        metric = f"  {escape(m[0])} {m[1]:.4f}" if m else ""
        again = f" (attempt {res.attempts})" if res.attempts > 1 else ""
        return f"[green]done[/]   {head}{metric}  {res.seconds:.1f} s{again}"
    where = f"  log: {escape(res.log_path)}" if res.log_path and res.attempts else ""
    return f"[red]failed[/] {head}: {escape(res.error or '')}{where}"


def render_summary(tasks: list[Task], results: dict[str, TaskResult], *, title: str = "tasks"):
    """A rich Table of every task of the plan: its label, status, key metric, time and log."""
    from rich.markup import escape
    from rich.table import Table

    unique, order = plan(tasks)
    cols: list[str] = []
    for k in order:
        cols += [c for c in unique[k].label if c not in cols]
    n_bad = sum(not results[k].ok for k in order if k in results)
    table = Table(title=f"{title}: {len(order) - n_bad} ok, {n_bad} failed")
    for c in cols:
        table.add_column(c)
    table.add_column("status")
    table.add_column("metric", justify="right")
    table.add_column("s", justify="right")
    table.add_column("log / error")
    for k in order:
        t, r = unique[k], results.get(k)
        cells = [escape(str(t.label.get(c, ""))) for c in cols]
        if r is None:
            table.add_row(*cells, "not run", "", "", "", style="dim")
            continue
        m = task_metric(r.result)
        note = "" if r.ok else f"{r.error}" + (f" ({r.log_path})" if r.log_path and r.attempts else "")
        table.add_row(
            *cells,
            "ok" if r.ok else "failed",
            f"{m[0]} {m[1]:.4f}" if m else "",
            f"{r.seconds:.1f}",
            escape(note),
            style=None if r.ok else "red",
        )
    return table
