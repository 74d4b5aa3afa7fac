"""One fold: its data, label space and stage directories (:class:`FoldContext`), the links and
records of its folder.

Training a fold is :func:`metaser.training.fold_run.train_fold` (each stage by
:func:`metaser.training.stage_run.run_stage`, then :func:`~metaser.training.fold_run.finish_fold`).

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
from metaser.rundir import manifest_file, write_json_atomic
from metaser.training.config import RunConfig
from metaser.training.datamodule import FoldData
from metaser.training.keys import KEY_SCHEMA, manifest_digest, stage_keys
from metaser.training.stages import StageSpec, stage_plan

__all__ = [
    "FoldContext",
    "prepare_fold",
    "fold_dir",
    "is_fold_done",
    "resolve_fold",
    "store_root",
    "is_global_zero",
    "barrier",
    "link_stage",
    "read_done",
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

    def data(self, store=None) -> FoldData:
        return FoldData(
            self.cfg,
            self.labels,
            self.aux,
            self.parts["train"],
            self.parts["valid"],
            self.parts["test"],
            store=store,
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
            "key_schema": KEY_SCHEMA,
            "stages": [{"name": s.name, "key": ctx.keys[s.name], "dir": str(ctx.stage_dir(s))} for s in ctx.specs],
        }
        write_json_atomic(info, out_dir / "run_info.json")
    return ctx


def barrier() -> None:
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


def link_stage(link: Path, target: Path) -> None:
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


def read_done(sdir: Path) -> dict[str, Any] | None:
    """A stage directory's ``done.json`` (written last: every output is there), or None."""
    done = sdir / "done.json"
    return json.loads(done.read_text()) if done.is_file() else None
