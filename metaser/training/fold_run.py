"""Train and evaluate one fold: its stages (stage 1 -> stage 2, or one emotion-only stage), then
collect them into the fold's folder and write ``metrics.json`` (layout: :mod:`metaser.training.fold`)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from lhotse import CutSet

from metaser.data.folds import FoldSplit
from metaser.errors import MetaserError
from metaser.rundir import read_jsonl, write_json_atomic, write_jsonl
from metaser.training.config import RunConfig
from metaser.training.evaluate import fold_test_metrics
from metaser.training.fold import FoldContext, barrier, fold_dir, is_global_zero, link_stage, prepare_fold, read_done
from metaser.training.stage_run import run_stage
from metaser.training.trainer import configure_torch

__all__ = ["finish_fold", "train_fold"]


def finish_fold(ctx: FoldContext) -> dict[str, Any]:
    """Collect the fold's stages from the store into its folder and write metrics.json."""
    results = {}
    for spec in ctx.specs:
        sdir = ctx.stage_dir(spec)
        link_stage(ctx.out_dir / spec.name, sdir)
        done = read_done(sdir)
        if done is None:
            raise MetaserError(f"fold {ctx.fold}: stage {spec.name} is not trained ({sdir})")
        # reused = trained for another run of the tree (a resumed run of this fold is not reuse)
        results[spec.name] = {**done, "reused": done.get("trained_by") != str(ctx.out_dir)}
    final = ctx.specs[-1]
    fdir = ctx.stage_dir(final)
    rows = read_jsonl(fdir / "predictions.jsonl")
    aux = next((s for s in ctx.specs if s.objective == "aux"), None)
    aux_rows = read_jsonl(ctx.stage_dir(aux) / "predictions.jsonl") if aux is not None else None
    done = results[final.name]
    metrics = {
        "fold": ctx.fold,
        "fold_name": ctx.split.name,
        "test_group": ctx.split.test_group,
        "test": fold_test_metrics(rows, ctx.labels, ctx.aux, aux_rows),
        "valid": done.get("valid", {}),
        "stages": {
            name: {k: r.get(k) for k in ("key", "best_score", "monitor", "epochs", "seconds", "reused")}
            for name, r in results.items()
        },
        "layer_weights": done.get("layer_weights"),
        "layer_weights_by_stage": {name: r.get("layer_weights") for name, r in results.items()},
        "seconds": round(sum((r.get("seconds") or 0.0) for r in results.values() if not r.get("reused")), 1),
    }
    if is_global_zero():
        write_jsonl(rows, ctx.out_dir / "predictions.jsonl")
        if aux_rows is not None:
            write_jsonl(aux_rows, ctx.out_dir / "aux_predictions.jsonl")
        link_stage(ctx.out_dir / "model", fdir / "model")
        info = json.loads((ctx.out_dir / "run_info.json").read_text())
        info["stages"] = [
            {
                "name": s.name,
                "key": ctx.keys[s.name],
                "dir": str(ctx.stage_dir(s)),
                "reused": bool(results[s.name].get("reused")),
            }
            for s in ctx.specs
        ]
        write_json_atomic(info, ctx.out_dir / "run_info.json")
        write_json_atomic(metrics, ctx.out_dir / "metrics.json")
    return metrics


def train_fold(
    cfg: RunConfig,
    fold: int,
    *,
    resume: bool = False,
    cuts: CutSet | None = None,
    split: FoldSplit | None = None,
    stage_callbacks: Callable[[str], list] | None = None,
) -> dict:
    """Run every stage of one fold (1-based) and evaluate on its test part. Returns metrics."""
    out = fold_dir(cfg, fold) / "metrics.json"
    if out.is_file():
        return json.loads(out.read_text())
    configure_torch(cfg.trainer)
    ctx = prepare_fold(cfg, fold, cuts=cuts, split=split)
    cbs = stage_callbacks or (lambda _stage: [])
    for spec in ctx.specs:
        run_stage(ctx, spec, resume=resume, callbacks=cbs(spec.name))
    # rank 0 collects and writes; the extra DDP processes read what it wrote
    metrics = finish_fold(ctx) if is_global_zero() else None
    barrier()
    return metrics if metrics is not None else json.loads(out.read_text())
