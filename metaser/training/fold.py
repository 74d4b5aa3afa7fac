"""Train and evaluate one fold: its stages (stage 1 -> stage 2, or one emotion-only stage), then test.

Layout of ``runs/<name>/fold<K>/``::

    run_info.json      package version, manifest sha256, fold definition, seed, stages (key, dir, reused)
    config.yaml        the resolved RunConfig
    labels.json        label maps and CTC vocabulary (built from this fold's training part)
    stage1/, stage2/   links to the trained stages in the stage store (or emotion_only/)
    aux_predictions.jsonl   test predictions of the selected stage-1 model (aux tasks)
    predictions.jsonl       test predictions of the selected emotion model
    metrics.json       test and validation metrics of this fold
    model/             the selected model, save_pretrained format (for export / predict)

Stages are trained in the stage store ``<store>/<stage>-<key>/fold<K>/`` (``store_dir``; see
:mod:`metaser.training.keys`): best.ckpt, last.ckpt, logs, labels.json, the stage's own test
(and, for emotion stages, validation) outputs, ``model/`` and ``done.json`` written last. A
stage already done under its key is reused, never trained again.

Model selection uses validation only; the test part is touched once per stage, after selection.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from lhotse import CutSet
from pytorch_lightning.utilities.rank_zero import rank_zero_only

import metaser
from metaser.config import save_config
from metaser.data.dataset import build_label_space
from metaser.data.folds import FoldSplit, make_folds
from metaser.data.labels import LabelSpace
from metaser.data.manifest import load_manifest
from metaser.errors import DataError, MetaserError
from metaser.rundir import manifest_file, read_jsonl, write_json_atomic, write_jsonl
from metaser.training.cache import stage_features
from metaser.training.config import RunConfig
from metaser.training.datamodule import FoldData
from metaser.training.evaluate import fold_test_metrics, test_rows, validate
from metaser.training.keys import manifest_digest, stage_keys
from metaser.training.stages import STAGE1_MODULES, StageSpec, build_model, build_stage, load_stage_weights, stage_plan
from metaser.training.trainer import make_trainer

__all__ = [
    "FoldContext",
    "prepare_fold",
    "run_stage",
    "finish_fold",
    "train_fold",
    "fold_dir",
    "is_fold_done",
    "resolve_fold",
    "store_root",
    "is_global_zero",
]


def is_global_zero() -> bool:
    """False in the extra processes of a multi-process (DDP) run: they train, but write nothing."""
    return rank_zero_only.rank == 0


def fold_dir(cfg: RunConfig, fold: int) -> Path:
    return cfg.run_dir / f"fold{fold}"


def is_fold_done(cfg: RunConfig, fold: int) -> bool:
    return (fold_dir(cfg, fold) / "metrics.json").is_file()


def store_root(cfg: RunConfig) -> Path:
    """Where this run's stages are trained (shared by the runs of one tree when ``reuse``)."""
    if cfg.reuse and cfg.store_dir:
        return Path(cfg.store_dir)
    return cfg.run_dir / "stages"


def resolve_fold(cfg: RunConfig, cuts: CutSet, fold: int) -> FoldSplit:
    folds = make_folds(cuts, cfg.data.split)
    if not 1 <= fold <= len(folds):
        raise MetaserError(f"--fold {fold} is out of range: this corpus has {len(folds)} folds (1..{len(folds)})")
    return folds[fold - 1]


@dataclass
class FoldContext:
    """Everything the stages of one fold share."""

    cfg: RunConfig
    fold: int
    split: FoldSplit
    parts: dict[str, CutSet]
    labels: LabelSpace
    out_dir: Path
    keys: dict[str, str]
    specs: list[StageSpec] = field(default_factory=list)
    manifest_sha: str = ""
    all_cuts: CutSet | None = None

    @property
    def aux(self) -> list[str]:
        return self.cfg.active_aux_tasks

    def spec(self, name: str) -> StageSpec:
        return next(s for s in self.specs if s.name == name)

    def stage_dir(self, spec: StageSpec) -> Path:
        return store_root(self.cfg) / f"{spec.name}-{self.keys[spec.name]}" / f"fold{self.fold}"

    def data(self, features=None) -> FoldData:
        return FoldData(
            self.cfg,
            self.labels,
            self.aux,
            self.parts["train"],
            self.parts["valid"],
            self.parts["test"],
            features=features,
        )


def prepare_fold(
    cfg: RunConfig, fold: int, *, cuts: CutSet | None = None, split: FoldSplit | None = None
) -> FoldContext:
    """Load the fold's data, fix its label space and write config.yaml / labels.json / run_info.json."""
    mpath = manifest_file(cfg.data.manifest)
    if cuts is None:
        cuts = load_manifest(mpath)
    if split is None:
        split = resolve_fold(cfg, cuts, fold)
    train, valid, test = split.subsets(cuts)
    out_dir = fold_dir(cfg, fold)
    torch.set_float32_matmul_precision(cfg.trainer.matmul_precision)
    if cfg.trainer.num_threads:
        torch.set_num_threads(cfg.trainer.num_threads)
    aux = cfg.active_aux_tasks
    labels_path = out_dir / "labels.json"
    labels = LabelSpace.load(labels_path) if labels_path.is_file() else build_label_space(train, aux)
    _check_classes(labels, fold)
    digest = manifest_digest(cfg)
    ctx = FoldContext(
        cfg=cfg,
        fold=fold,
        split=split,
        parts={"train": train, "valid": valid, "test": test},
        labels=labels,
        out_dir=out_dir,
        keys=stage_keys(cfg, digest),
        specs=stage_plan(cfg),
        manifest_sha=digest,
        all_cuts=cuts,
    )
    if is_global_zero():
        out_dir.mkdir(parents=True, exist_ok=True)
        if not labels_path.is_file():
            labels.save(labels_path)
        save_config(cfg, out_dir / "config.yaml")
        info = {
            "metaser_version": metaser.__version__,
            "torch_version": torch.__version__,
            "manifest": str(mpath),
            "manifest_sha256": None if digest.startswith("missing:") else digest,
            "fold": fold,
            "fold_name": split.name,
            "test_group": split.test_group,
            "num_train": len(split.train_ids),
            "num_valid": len(split.valid_ids),
            "num_test": len(split.test_ids),
            "seed": cfg.seed,
            "aux_tasks": aux,
            "stages": [{"name": s.name, "key": ctx.keys[s.name], "dir": str(ctx.stage_dir(s))} for s in ctx.specs],
        }
        write_json_atomic(info, out_dir / "run_info.json")
    return ctx


def _barrier() -> None:
    """Wait for every process of a DDP run (no-op in a single process)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def _check_classes(labels: LabelSpace, fold: int) -> None:
    """Every classification task needs two classes in the fold's training part."""
    for task, names in labels.classes.items():
        if len(names) < 2:
            raise DataError(
                f"fold {fold}: task '{task}' has a single class in the training part ({names[0]!r}); "
                "a classifier needs at least two",
                hint="check the corpus labels"
                if task == "emotion"
                else f"drop '{task}' from aux_tasks, or use folds whose training part holds more values",
            )


def _link(link: Path, target: Path) -> None:
    """``link`` -> ``target`` as a relative symlink (replacing an older link)."""
    if not is_global_zero():
        return
    link.parent.mkdir(parents=True, exist_ok=True)
    rel = os.path.relpath(target, link.parent)
    if link.is_symlink():
        if os.readlink(link) == rel:
            return
        link.unlink()
    elif link.exists():
        raise MetaserError(
            f"{link} exists and is not a link to the stage store",
            hint="it was written by an older metaser; move it away or use another run name",
        )
    link.symlink_to(rel, target_is_directory=True)


def _read_done(sdir: Path) -> dict[str, Any] | None:
    done = sdir / "done.json"
    return json.loads(done.read_text()) if done.is_file() else None


def run_stage(
    ctx: FoldContext, spec: StageSpec, *, resume: bool = False, callbacks: list | None = None
) -> dict[str, Any]:
    """Train one stage of the fold into the store (or reuse it when done) and evaluate it.

    Returns the stage's ``done.json``: key, best checkpoint, selection score, epochs, seconds,
    plus ``reused`` (True when it was already trained before this call).
    """
    t0 = time.time()
    cfg, sdir = ctx.cfg, ctx.stage_dir(spec)
    _link(ctx.out_dir / spec.name, sdir)
    done = _read_done(sdir)
    if done is not None:
        return {**done, "reused": True}
    last = sdir / "last.ckpt"
    if last.exists() and not resume:
        raise MetaserError(f"{sdir} holds an unfinished run; pass --resume to continue it, or choose another run name")
    model = build_model(cfg, ctx.labels)
    if spec.parent is not None:
        parent = _read_done(ctx.stage_dir(ctx.spec(spec.parent)))
        if parent is None:
            raise MetaserError(f"{spec.name} of fold {ctx.fold} needs {spec.parent}, which is not trained yet")
        load_stage_weights(model, ctx.stage_dir(ctx.spec(spec.parent)) / parent["best"], prefixes=STAGE1_MODULES)
    module = build_stage(model, spec, ctx.labels, cfg)
    features = stage_features(
        cfg, model, spec.freeze_layers, ctx.parts, ctx.labels, ctx.manifest_sha, all_cuts=ctx.all_cuts
    )
    data = ctx.data(features)
    if is_global_zero():
        sdir.mkdir(parents=True, exist_ok=True)
        ctx.labels.save(sdir / "labels.json")
    monitor, mode = spec.monitor
    trainer, ckpt = make_trainer(cfg, spec.config, sdir, monitor, mode, callbacks)
    try:
        trainer.fit(module, datamodule=data, ckpt_path=str(last) if last.exists() else None)
    except SystemExit:
        # Lightning turns Ctrl+C into sys.exit(1); re-raise it as an interrupt so the CLI
        # reports it (exit 130, "continue with --resume") instead of a bare exit code 1.
        if trainer.interrupted:
            raise KeyboardInterrupt from None
        raise
    if trainer.interrupted:
        raise KeyboardInterrupt
    best = Path(ckpt.best_model_path) if ckpt.best_model_path else last
    load_stage_weights(model, best)
    result: dict[str, Any] = {
        "stage": spec.name,
        "key": ctx.keys[spec.name],
        "fold": ctx.fold,
        "best": best.name,
        "best_score": float(ckpt.best_model_score) if ckpt.best_model_score is not None else None,
        "monitor": monitor,
        "epochs": int(trainer.current_epoch),
        "trained_by": str(ctx.out_dir),
    }
    rows = test_rows(module, data, cfg, sdir)
    if spec.objective == "emotion":
        valid = validate(module, data, cfg, sdir)
        result["valid"] = valid
        result["layer_weights"] = _layer_weights(model)
    if is_global_zero():
        write_jsonl(rows, sdir / "predictions.jsonl")
        if spec.objective == "emotion":
            model_dir = sdir / "model"
            if model_dir.exists():
                shutil.rmtree(model_dir)
            model.save_pretrained(model_dir)
        result["seconds"] = round(time.time() - t0, 1)
        write_json_atomic(result, sdir / "done.json")  # last: "done" means every output is there
        if features is not None and features.meta.get("layer", 0) > 0:
            # A frozen-layer store serves this (stage, fold) only: once it is done, the store
            # (n x a layer's size per frame) goes. The CNN store is shared and stays.
            shutil.rmtree(features.path, ignore_errors=True)
    _barrier()  # every DDP process goes on only once rank 0 has written the stage's outputs
    return {**result, "reused": False}


def finish_fold(ctx: FoldContext) -> dict[str, Any]:
    """Collect the fold's stages from the store into its folder and write metrics.json."""
    results = {}
    for spec in ctx.specs:
        sdir = ctx.stage_dir(spec)
        _link(ctx.out_dir / spec.name, sdir)
        done = _read_done(sdir)
        if done is None:
            raise MetaserError(f"fold {ctx.fold}: stage {spec.name} is not trained ({sdir})")
        # reused = trained for another run of the tree (a resumed run of this fold is not reuse)
        results[spec.name] = {**done, "reused": done.get("trained_by") != str(ctx.out_dir)}
    final = ctx.specs[-1]
    fdir = ctx.stage_dir(final)
    rows = read_jsonl(fdir / "predictions.jsonl")
    aux_rows = None
    if ctx.specs[0].name == "stage1":
        aux_rows = read_jsonl(ctx.stage_dir(ctx.specs[0]) / "predictions.jsonl")
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
        "seconds": round(sum((r.get("seconds") or 0.0) for r in results.values() if not r.get("reused")), 1),
    }
    if is_global_zero():
        write_jsonl(rows, ctx.out_dir / "predictions.jsonl")
        if aux_rows is not None:
            write_jsonl(aux_rows, ctx.out_dir / "aux_predictions.jsonl")
        _link(ctx.out_dir / "model", fdir / "model")
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
    ctx = prepare_fold(cfg, fold, cuts=cuts, split=split)
    cbs = stage_callbacks or (lambda _stage: [])
    for spec in ctx.specs:
        run_stage(ctx, spec, resume=resume, callbacks=cbs(spec.name))
    # rank 0 collects and writes; the extra DDP processes read what it wrote
    metrics = finish_fold(ctx) if is_global_zero() else None
    _barrier()
    return metrics if metrics is not None else json.loads(out.read_text())


def _layer_weights(model) -> list[float] | None:
    fn = getattr(model, "layer_weights", None)
    w = fn() if callable(fn) else None
    return None if w is None else [round(float(x), 6) for x in w.detach().cpu()]
