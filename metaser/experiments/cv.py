"""Cross-validation: every selected fold, every stage, resumable (finished folds are skipped)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from metaser.experiments.grid import GridRun, run_grid
from metaser.experiments.report import write_report
from metaser.training.config import RunConfig
from metaser.training.fold import is_global_zero

__all__ = ["run_cv", "run_dir"]


def run_dir(cfg: RunConfig) -> Path:
    return cfg.run_dir


def run_cv(
    cfg: RunConfig,
    *,
    resume: bool = False,
    folds: list[int] | None = None,
    launcher=None,
    on_done: Callable | None = None,
) -> dict[str, Any]:
    """Train every selected fold (``folds``, else ``cfg.folds``, else all) and write
    results.json / report.md / plots in the run dir.

    A fold whose metrics.json exists is skipped; a stage already trained under its key is
    reused. ``on_done(task, result)`` is called after each finished task (progress lines). In
    the extra processes of a multi-process (DDP) run, which train but write nothing, returns
    ``{}``. Raises :class:`~metaser.errors.MetaserError` (exit 1) when a task failed; the
    finished folds' results are written first.
    """
    results = run_grid(
        [GridRun(cfg.name, cfg.name, cfg)], folds=folds, resume=resume, launcher=launcher, on_done=on_done
    )
    if not is_global_zero():
        return {}
    return _report_or_raise(run_dir(cfg), results)


def _report_or_raise(rdir: Path, results: dict) -> dict[str, Any]:
    from metaser.errors import MetaserError
    from metaser.rundir import fold_dirs

    failed = [r for r in results.values() if not r.ok]
    res = write_report(rdir) if fold_dirs(rdir, finished=True) else {}
    if failed:
        first = failed[0]
        raise MetaserError(
            f"{len(failed)} task(s) failed; first: {first.key}: {first.error}",
            hint=f"log: {first.log_path}" if first.log_path else None,
            exit_code=1,
        )
    return res
