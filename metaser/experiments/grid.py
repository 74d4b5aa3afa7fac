"""Runs of many configs x folds, stage by stage, through a launcher (local or Ray).

Every (run, fold) becomes one task per stage plus a cheap ``finish`` task. A stage task's key
is its place in the stage store (``<stage>-<key>/fold<K>``): tasks of different runs with
the same key are the same work, and the launcher runs them once (stage reuse, see
:mod:`metaser.training.keys`). A stage task depends on the stage it starts from; ``finish``
depends on the run's last stage.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from metaser.data.folds import make_folds
from metaser.data.manifest import load_manifest
from metaser.errors import MetaserError
from metaser.rundir import manifest_file
from metaser.training.config import RunConfig

__all__ = ["GridRun", "grid_tasks", "run_grid", "select_folds", "stage_task", "finish_task"]


@dataclass
class GridRun:
    """One config of a grid: ``slug`` names it in progress lines and summaries."""

    slug: str
    label: str
    cfg: RunConfig


@lru_cache(maxsize=4)
def _cuts(path: str):
    return load_manifest(Path(path))


def _num_folds(cfg: RunConfig) -> int:
    return len(make_folds(_cuts(str(manifest_file(cfg.data.manifest))), cfg.data.split))


def select_folds(cfg: RunConfig, folds: list[int] | None = None) -> list[int]:
    """``folds`` (or ``cfg.folds``, or every fold), checked against the corpus."""
    n = _num_folds(cfg)
    chosen = list(folds or cfg.folds or range(1, n + 1))
    bad = [k for k in chosen if not 1 <= k <= n]
    if bad:
        raise MetaserError(f"folds {bad} out of range: this corpus has {n} folds (1..{n})")
    return chosen


def _context(cfg: RunConfig, fold: int):
    from metaser.training.fold import prepare_fold, resolve_fold

    cuts = _cuts(str(manifest_file(cfg.data.manifest)))
    return prepare_fold(cfg, fold, cuts=cuts, split=resolve_fold(cfg, cuts, fold))


def stage_task(cfg: RunConfig, fold: int, stage: str, resume: bool = False) -> dict[str, Any]:
    """Train (or reuse) one stage of one fold; a launcher task."""
    from metaser.training.stage_run import run_stage
    from metaser.training.trainer import configure_torch, quiet_lightning

    quiet_lightning()
    configure_torch(cfg.trainer)
    ctx = _context(cfg, fold)
    res = run_stage(ctx, ctx.spec(stage), resume=resume)
    return {
        "metric": res.get("monitor"),
        "value": res.get("best_score"),
        "reused": res.get("reused"),
        "seconds": res.get("seconds"),
        "key": res.get("key"),
    }


def finish_task(cfg: RunConfig, fold: int) -> dict[str, Any]:
    """Collect a fold's stages and write its metrics.json; a launcher task."""
    from metaser.training.fold import fold_dir, is_global_zero
    from metaser.training.fold_run import finish_fold

    if not is_global_zero():  # an extra DDP process: rank 0 collects and writes
        return {}
    done = fold_dir(cfg, fold) / "metrics.json"
    if done.is_file():
        import json

        m = json.loads(done.read_text())
    else:
        m = finish_fold(_context(cfg, fold))
    t = m["test"]
    if "ua" not in t:  # a regression main task (main_task: arousal, ...): its CCC and MAE
        return {"metric": "test/ccc", "value": t["ccc"], "mae": t.get("mae")}
    return {"metric": "test/ua", "value": t["ua"], "wa": t["wa"]}


def grid_tasks(runs: list[GridRun], folds: dict[str, list[int]], *, resume: bool = False) -> list:
    """The launcher tasks of ``runs`` (``folds``: slug -> folds to run)."""
    from metaser.launch import Task
    from metaser.training.fold import is_fold_done, store_root
    from metaser.training.keys import manifest_digest, stage_keys
    from metaser.training.stages import stage_plan

    tasks: list[Task] = []
    claimed: set[str] = set()  # a stage shared by several runs is one task, set up by the first
    for run in runs:
        cfg = run.cfg
        keys = stage_keys(cfg, manifest_digest(cfg))
        specs = stage_plan(cfg)
        for k in folds[run.slug]:
            label = {"variant": run.slug, "fold": k}
            finish_key = f"finish:{cfg.run_dir / f'fold{k}'}"
            if is_fold_done(cfg, k):
                tasks.append(Task(key=finish_key, fn=finish_task, args=(cfg, k), label={**label, "stage": "done"}))
                continue
            store = store_root(cfg)
            ids = {s.name: f"{store}/{s.name}-{keys[s.name]}/fold{k}" for s in specs}
            for s in specs:
                if ids[s.name] in claimed:
                    continue
                claimed.add(ids[s.name])
                tasks.append(
                    Task(
                        key=ids[s.name],
                        fn=stage_task,
                        args=(cfg, k, s.name, resume),
                        deps=[ids[s.parent]] if s.parent else [],
                        label={**label, "stage": s.name},
                        log_path=str(cfg.run_dir / "logs" / f"fold{k}-{s.name}.log"),
                    )
                )
            tasks.append(
                Task(
                    key=finish_key,
                    fn=finish_task,
                    args=(cfg, k),
                    deps=[ids[specs[-1].name]],
                    label={**label, "stage": "finish"},
                    log_path=str(cfg.run_dir / "logs" / f"fold{k}-finish.log"),
                )
            )
    return tasks


def run_grid(
    runs: list[GridRun],
    *,
    folds: list[int] | None = None,
    resume: bool = False,
    launcher=None,
    on_done: Callable | None = None,
) -> dict[str, Any]:
    """Run every stage of every fold of ``runs``; returns the launcher's results by task key.

    ``launcher``: from :func:`metaser.launch.make_launcher` (default: local). The
    output tree is checked first to be writable by every worker.
    """
    from metaser.launch import check_shared_output, make_launcher

    chosen = {r.slug: select_folds(r.cfg, folds) for r in runs}
    tasks = grid_tasks(runs, chosen, resume=resume)
    launcher = launcher or make_launcher("local")
    for root in sorted({str(r.cfg.run_dir.parent) for r in runs}):
        check_shared_output(root, launcher)
    return launcher.run(tasks, on_done=on_done)


def run_failures(run: GridRun, results: dict[str, Any]) -> list:
    """The failed task results of ``run`` (its finish tasks, which fail when any stage did)."""
    prefix = f"finish:{run.cfg.run_dir}/"
    return [r for k, r in results.items() if k.startswith(prefix) and not r.ok]
