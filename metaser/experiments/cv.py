"""Cross-validation: every fold, both stages, resumable (finished folds are skipped)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from metaser.data.folds import make_folds
from metaser.data.manifest import load_manifest
from metaser.errors import MetaserError
from metaser.experiments.report import write_report
from metaser.training.config import RunConfig
from metaser.training.fold import fold_dir, is_fold_done, is_global_zero, manifest_file, train_fold


def run_dir(cfg: RunConfig) -> Path:
    return Path(cfg.output_dir) / cfg.name


def run_cv(cfg: RunConfig, *, resume: bool = False,
           on_fold: Callable[[int, int, dict | None], None] | None = None) -> dict[str, Any]:
    """Train every selected fold and write results.json / report.md / plots in the run dir.

    ``on_fold(k, n, metrics_or_None)`` is called before (None) and after each fold, for
    progress display. A fold whose metrics.json exists is skipped. In the extra processes of
    a multi-process (DDP) run, which train but write nothing, it returns ``{}``.
    """
    cuts = load_manifest(manifest_file(cfg.data.manifest))
    folds = make_folds(cuts, cfg.data.split)
    selected = cfg.folds or list(range(1, len(folds) + 1))
    bad = [k for k in selected if not 1 <= k <= len(folds)]
    if bad:
        raise MetaserError(f"folds {bad} out of range: this corpus has {len(folds)} folds")
    for k in selected:
        if on_fold:
            on_fold(k, len(selected), None)
        if is_fold_done(cfg, k):
            metrics = None
        else:
            metrics = train_fold(cfg, k, resume=resume, cuts=cuts, split=folds[k - 1])
        if on_fold:
            on_fold(k, len(selected), metrics or {"skipped": True, "dir": str(fold_dir(cfg, k))})
    if not is_global_zero():
        return {}
    return write_report(run_dir(cfg))
