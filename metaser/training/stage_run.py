"""Train one stage of one fold into the stage store, step by step (as icefall's train.py reads).

:func:`run_stage` is the sequence; each step is one function:

1. a stage already done under its key is reused (:func:`~metaser.training.fold.read_done`);
2. :func:`stage_model`: the run's seeded model, with the parent stage's selected weights;
3. ``build_stage``: frozen for the stage, wrapped in its module (with its frozen boundary);
4. ``stage_store``: the feature store of the frozen prefix (built once per key), or none;
5. :func:`fit`: Lightning's fit, resumable from ``last.ckpt``;
6. :func:`select_and_evaluate`: the checkpoint chosen on validation, its test rows (and for an
   emotion stage its validation scores and its model), the stage's record;
7. :func:`write_stage` (rank 0 only): the outputs, ``done.json`` last; the stage-2 store goes.

Every DDP process trains; only rank 0 writes, and the others wait at a barrier until it has.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl

from metaser.errors import MetaserError
from metaser.rundir import write_json_atomic, write_jsonl
from metaser.training.evaluate import test_rows, validate
from metaser.training.fold import FoldContext, barrier, is_global_zero, link_stage, read_done
from metaser.training.frozen import drop_stage_store, stage_store
from metaser.training.module import SERModule
from metaser.training.stages import STAGE1_MODULES, StageSpec, build_model, build_stage, load_stage_weights
from metaser.training.trainer import make_trainer

__all__ = ["run_stage", "stage_model", "fit", "select_and_evaluate", "write_stage"]


def run_stage(ctx: FoldContext, spec: StageSpec, *, resume: bool = False, callbacks: list | None = None) -> dict:
    """Train one stage of the fold into the store (or reuse it when done) and evaluate it.

    Returns the stage's ``done.json``: key, best checkpoint, selection score, epochs, seconds,
    plus ``reused`` (True when it was already trained before this call).
    """
    t0 = time.time()
    sdir = ctx.stage_dir(spec)
    link_stage(ctx.out_dir / spec.name, sdir)
    done = read_done(sdir)
    if done is not None:
        return {**done, "reused": True}
    last = sdir / "last.ckpt"
    if last.exists() and not resume:
        raise MetaserError(f"{sdir} holds an unfinished run; pass --resume to continue it, or choose another run name")
    model = stage_model(ctx, spec)
    module = build_stage(model, spec, ctx.labels, ctx.cfg)
    store = stage_store(ctx.cfg, module.boundary, model, ctx.parts, ctx.manifest_sha, all_cuts=ctx.all_cuts)
    data = ctx.data(store)
    if is_global_zero():
        sdir.mkdir(parents=True, exist_ok=True)
        ctx.labels.save(sdir / "labels.json")
    trainer, ckpt = make_trainer(ctx.cfg, spec, sdir, callbacks)
    fit(trainer, module, data, last)
    result, rows = select_and_evaluate(ctx, spec, module, data, trainer, ckpt, last)
    if is_global_zero():
        result["seconds"] = round(time.time() - t0, 1)
        write_stage(sdir, spec, module, result, rows)
        drop_stage_store(store)
    barrier()  # every DDP process goes on only once rank 0 has written the stage's outputs
    return {**result, "reused": False}


def stage_model(ctx: FoldContext, spec: StageSpec):
    """The run's model (seeded init), with what the parent stage trains (:data:`STAGE1_MODULES`)
    taken over from the parent's checkpoint selected on validation."""
    model = build_model(ctx.cfg, ctx.labels)
    if spec.parent is not None:
        pdir = ctx.stage_dir(ctx.spec(spec.parent))
        parent = read_done(pdir)
        if parent is None:
            raise MetaserError(f"{spec.name} of fold {ctx.fold} needs {spec.parent}, which is not trained yet")
        load_stage_weights(model, pdir / parent["best"], prefixes=STAGE1_MODULES)
    return model


def fit(trainer: pl.Trainer, module: SERModule, data, last: Path) -> None:
    """``trainer.fit``, resumed from ``last`` when it exists; Ctrl-C becomes KeyboardInterrupt
    (Lightning turns it into ``sys.exit(1)``; the CLI reports it: exit 130, continue with --resume)."""
    try:
        trainer.fit(module, datamodule=data, ckpt_path=str(last) if last.exists() else None)
    except SystemExit:
        if trainer.interrupted:
            raise KeyboardInterrupt from None
        raise
    if trainer.interrupted:
        raise KeyboardInterrupt


def layer_weights(model) -> list[float] | None:
    """The model's layer-fusion weights, rounded for the records, or None."""
    w = model.layer_weights()
    return None if w is None else [round(float(x), 6) for x in w.detach().cpu()]


def select_and_evaluate(
    ctx: FoldContext, spec: StageSpec, module: SERModule, data, trainer: pl.Trainer, ckpt, last: Path
) -> tuple[dict[str, Any], list[dict]]:
    """Load the checkpoint selected on validation; its test rows and (emotion stages) validation
    scores. Returns the stage's record and the rows. The test part is touched once, here."""
    best = Path(ckpt.best_model_path) if ckpt.best_model_path else last
    load_stage_weights(module.model, best)
    result: dict[str, Any] = {
        "stage": spec.name,
        "key": ctx.keys[spec.name],
        "fold": ctx.fold,
        "best": best.name,
        "best_score": float(ckpt.best_model_score) if ckpt.best_model_score is not None else None,
        "monitor": spec.monitor[0],
        "epochs": int(trainer.current_epoch),
        "trained_by": str(ctx.out_dir),
        "layer_weights": layer_weights(module.model),
    }
    sdir = ctx.stage_dir(spec)
    rows = test_rows(module, data, ctx.cfg, sdir) if len(ctx.parts["test"]) else []
    if spec.objective == "emotion":
        result["valid"] = validate(module, data, ctx.cfg, sdir)
    return result, rows


def write_stage(sdir: Path, spec: StageSpec, module: SERModule, result: dict, rows: list[dict]) -> None:
    """The stage's outputs: test predictions, the selected model (emotion stages), then
    ``done.json`` last (done means every output is there)."""
    write_jsonl(rows, sdir / "predictions.jsonl")
    if spec.objective == "emotion":
        model_dir = sdir / "model"
        if model_dir.exists():
            shutil.rmtree(model_dir)
        module.model.save_pretrained(model_dir)
    write_json_atomic(result, sdir / "done.json")
