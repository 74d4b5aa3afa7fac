"""Train and evaluate one fold: stage 1 (auxiliary tasks) -> stage 2 (emotion) -> test.

Layout of ``runs/<name>/fold<K>/``::

    run_info.json      package version, manifest sha256, fold definition, seeds
    config.yaml        the resolved RunConfig
    labels.json        label maps and CTC vocabulary (built from this fold's training part)
    stage1/            best.ckpt, last.ckpt, metrics.csv, done.json
    stage2/            likewise (selection on validation UA)
    aux_predictions.jsonl   test predictions of the selected stage-1 model (aux tasks)
    predictions.jsonl       test predictions of the selected stage-2 model
    metrics.json       test and validation metrics of this fold
    model/             the selected model, save_pretrained format (for export / predict)

Model selection uses validation only; the test part is touched once, after selection.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pytorch_lightning as pl
import torch
from lhotse import CutSet
from pytorch_lightning.callbacks import EarlyStopping, ModelCheckpoint, RichProgressBar
from pytorch_lightning.loggers import CSVLogger
from pytorch_lightning.utilities.rank_zero import rank_zero_only

import metaser
from metaser.config import save_config, to_dict
from metaser.data.dataset import build_label_space, make_dataloader
from metaser.data.folds import FoldSplit, make_folds
from metaser.data.labels import LabelSpace
from metaser.data.manifest import load_manifest
from metaser.errors import MetaserError
from metaser.models.config import TaskSpec
from metaser.models.metaser import MetaSERModel
from metaser.training.config import RunConfig, StageConfig
from metaser.training.metrics import ASRMetric, classification_scores
from metaser.training.module import SERModule, seed_all

log = logging.getLogger(__name__)

# Lightning's banners and tips ("GPU available", "try installing ...") and warnings about
# choices made here on purpose (frozen modules in eval mode, lhotse samplers, our own batch
# transfer) would bury the progress output.
for _pat in (".*does not have many workers.*", ".*`training_step` returned.*", ".*LeafSpec.*",
             ".*isinstance.*treespec.*", ".*Checkpoint directory.*exists and is not empty.*",
             ".*The number of training batches.*", ".*you defined a `validation_step`.*",
             ".*module\\(s\\) in eval mode.*", ".*overridden `transfer_batch_to_device`.*",
             ".*is an invalid version and will not be supported.*"):
    warnings.filterwarnings("ignore", _pat)
for _name in ("pytorch_lightning", "lightning.pytorch", "lightning_fabric", "lightning"):
    logging.getLogger(_name).setLevel(logging.WARNING)


def is_global_zero() -> bool:
    """False in the extra processes of a multi-process (DDP) run: they train, but write nothing."""
    return rank_zero_only.rank == 0


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def manifest_file(path: str | Path) -> Path:
    p = Path(path)
    return p / "cuts.jsonl.gz" if p.is_dir() else p


def task_specs(labels: LabelSpace, aux_tasks: list[str]) -> list[TaskSpec]:
    specs = []
    for t in aux_tasks:
        if t == "asr":
            specs.append(TaskSpec(name="asr", kind="ctc", labels=list(labels.vocab.tokens)))
        else:
            specs.append(TaskSpec(name=t, kind="classification", labels=list(labels.classes[t])))
    return specs


class FoldData(pl.LightningDataModule):
    """Builds loaders lazily, inside each (DDP) process, so lhotse samplers shard by rank."""

    def __init__(self, cfg: RunConfig, labels: LabelSpace, tasks: list[str],
                 train: CutSet, valid: CutSet, test: CutSet):
        super().__init__()
        self.cfg, self.labels, self.tasks = cfg, labels, tasks
        self.cuts = {"train": train, "valid": valid, "test": test}

    def _loader(self, split: str, epoch: int = 0):
        # Lightning calls set_epoch on the lhotse sampler at every epoch (resume included).
        # Shard by the trainer asking for the loader, not by whether a process group exists:
        # the single-device trainers that evaluate after a DDP fit must see every utterance.
        trainer = getattr(self, "trainer", None)
        world, rank = (trainer.world_size, trainer.global_rank) if trainer is not None else (1, 0)
        return make_dataloader(self.cuts[split], self.labels, self.tasks, self.cfg.data,
                               train=split == "train", epoch_seed=epoch, world_size=world, rank=rank)

    def train_dataloader(self):
        # Lightning creates the first iterator (and prefetches a batch) before it calls
        # set_epoch; on resume that would replay epoch 0's shuffle. Start the sampler at the
        # epoch the fit loop is about to run (0 on a fresh fit).
        trainer = getattr(self, "trainer", None)
        epoch = int(trainer.fit_loop.epoch_progress.current.processed) if trainer is not None else 0
        return self._loader("train", epoch)

    def val_dataloader(self):
        return self._loader("valid")

    def test_dataloader(self):
        return self._loader("test")


class _ProgressBar(RichProgressBar):
    """Lightning's rich progress bar without the logger's version number ("v_num")."""

    def get_metrics(self, trainer, pl_module):
        items = super().get_metrics(trainer, pl_module)
        items.pop("v_num", None)
        return items


@dataclass
class StageResult:
    best_path: str
    best_score: float | None
    epochs: int


def _make_trainer(cfg: RunConfig, stage_cfg: StageConfig, stage_dir: Path, monitor: str, mode: str,
                  extra_callbacks: list | None = None) -> tuple[pl.Trainer, ModelCheckpoint]:
    t = cfg.trainer
    ckpt = ModelCheckpoint(dirpath=stage_dir, filename="best", monitor=monitor, mode=mode,
                           save_top_k=1, every_n_epochs=1, enable_version_counter=False)
    # last.ckpt after every epoch, for --resume. Not ``save_last=True``: Lightning writes that
    # one only in epochs where the best checkpoint changed, so a resume would replay epochs.
    # Listed after ``ckpt`` so that the state it saves includes this epoch's best.
    last = ModelCheckpoint(dirpath=stage_dir, filename="last", monitor=None, save_top_k=1,
                           every_n_epochs=1, enable_version_counter=False)
    callbacks: list = [ckpt, last, *(extra_callbacks or [])]
    if t.enable_progress_bar:
        callbacks.append(_ProgressBar())
    if stage_cfg.early_stopping_patience:
        callbacks.append(EarlyStopping(monitor=monitor, mode=mode, patience=stage_cfg.early_stopping_patience))
    kwargs: dict[str, Any] = dict(
        max_epochs=stage_cfg.epochs,
        accelerator=t.accelerator,
        devices=t.devices,
        strategy=t.strategy,
        num_nodes=t.num_nodes,
        precision=t.precision,
        accumulate_grad_batches=t.accumulate_grad_batches,
        gradient_clip_val=stage_cfg.optim.grad_clip,
        log_every_n_steps=t.log_every_n_steps,
        deterministic=t.deterministic,
        enable_progress_bar=t.enable_progress_bar,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        use_distributed_sampler=False,  # lhotse samplers shard by rank themselves
        logger=CSVLogger(stage_dir, name="", version="logs"),
        callbacks=callbacks,
        default_root_dir=stage_dir,
    )
    if t.limit_train_batches is not None:
        kwargs["limit_train_batches"] = t.limit_train_batches
    if t.limit_val_batches is not None:
        kwargs["limit_val_batches"] = t.limit_val_batches
    return pl.Trainer(**kwargs), ckpt


def compile_encoder_layers(model: MetaSERModel) -> None:
    """``torch.compile`` each transformer layer in place (``nn.Module.compile``).

    Per layer rather than the whole model: the frozen prefix runs under ``no_grad`` and the
    layer fusion needs every layer's output, so layers are the natural compiled units. State
    dict keys do not change, so checkpoints and exported models are the same as without it.
    """
    for layer in model.encoder.model.encoder.layers:
        layer.compile()


def load_module_weights(model: torch.nn.Module, ckpt_path: str | Path) -> None:
    """Load the ``model.*`` weights of a Lightning checkpoint into ``model``."""
    state = torch.load(ckpt_path, map_location="cpu", weights_only=False)["state_dict"]
    sd = {k[len("model."):]: v for k, v in state.items() if k.startswith("model.")}
    model.load_state_dict(sd, strict=True)


def run_stage(module: SERModule, data: FoldData, cfg: RunConfig, stage_cfg: StageConfig, stage_dir: Path,
              *, resume: bool, monitor: str, mode: str, extra_callbacks: list | None = None) -> StageResult:
    """Fit one stage (or reuse a finished one) and return the selected checkpoint."""
    done = stage_dir / "done.json"
    if done.is_file():
        d = json.loads(done.read_text())
        return StageResult(d["best_path"], d["best_score"], d["epochs"])
    last = stage_dir / "last.ckpt"
    if last.exists() and not resume:
        raise MetaserError(f"{stage_dir} holds an unfinished run; pass --resume to continue it, "
                           "or choose another run name")
    stage_dir.mkdir(parents=True, exist_ok=True)
    trainer, ckpt = _make_trainer(cfg, stage_cfg, stage_dir, monitor, mode, extra_callbacks)
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
    best = ckpt.best_model_path or str(last)
    score = float(ckpt.best_model_score) if ckpt.best_model_score is not None else None
    res = StageResult(best_path=str(best), best_score=score, epochs=int(trainer.current_epoch))
    if trainer.is_global_zero:
        done.write_text(json.dumps(res.__dict__, indent=2))
    return res


def _eval_trainer(cfg: RunConfig, stage_dir: Path) -> pl.Trainer:
    """A single-device trainer for the evaluation after selection (never sharded)."""
    t = cfg.trainer
    return pl.Trainer(accelerator=t.accelerator, devices=1, precision=t.precision, logger=False,
                      enable_progress_bar=False, enable_model_summary=False,
                      use_distributed_sampler=False, default_root_dir=stage_dir)


def _test_rows(module: SERModule, data: FoldData, cfg: RunConfig, stage_dir: Path) -> list[dict]:
    _eval_trainer(cfg, stage_dir).test(module, datamodule=data, verbose=False)
    return module.test_rows


def _validate(module: SERModule, data: FoldData, cfg: RunConfig, stage_dir: Path) -> dict[str, float]:
    out = _eval_trainer(cfg, stage_dir).validate(module, datamodule=data, verbose=False)
    return {k.removeprefix("val/"): float(v) for k, v in (out[0] if out else {}).items()}


def write_jsonl(rows: list[dict], path: Path) -> None:
    with open(path, "w") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def test_metrics(rows: list[dict], labels: LabelSpace, aux_tasks: list[str], aux_rows: list[dict] | None) -> dict:
    """Fold test metrics recomputed from saved per-utterance predictions."""
    emo = labels.classes["emotion"]
    idx = {c: i for i, c in enumerate(emo)}
    scored = [r for r in rows if r.get("emotion") is not None]
    out: dict[str, Any] = classification_scores([idx[r["emotion"]] for r in scored],
                                                [idx[r["pred"]] for r in scored], len(emo))
    out["classes"] = emo
    src = aux_rows if aux_rows is not None else rows
    for task in aux_tasks:
        if task == "asr":
            m = ASRMetric()
            m.update([r.get("asr_pred", "") for r in src], [r.get("text", "") for r in src])
            out.update(m.compute())
        else:
            pairs = [(r[task], r[f"{task}_pred"]) for r in src if r.get(task) is not None and f"{task}_pred" in r]
            if pairs:
                out[f"{task}_acc"] = sum(a == b for a, b in pairs) / len(pairs)
    return out


def resolve_fold(cfg: RunConfig, cuts: CutSet, fold: int) -> FoldSplit:
    folds = make_folds(cuts, cfg.data.split)
    if not 1 <= fold <= len(folds):
        raise MetaserError(f"--fold {fold} is out of range: this corpus has {len(folds)} folds (1..{len(folds)})")
    return folds[fold - 1]


def fold_dir(cfg: RunConfig, fold: int) -> Path:
    return Path(cfg.output_dir) / cfg.name / f"fold{fold}"


def is_fold_done(cfg: RunConfig, fold: int) -> bool:
    return (fold_dir(cfg, fold) / "metrics.json").is_file()


def train_fold(cfg: RunConfig, fold: int, *, resume: bool = False, cuts: CutSet | None = None,
               split: FoldSplit | None = None, stage_callbacks: Callable[[str], list] | None = None) -> dict:
    """Run both stages of one fold (1-based) and evaluate on its test part. Returns metrics."""
    t0 = time.time()
    out_dir = fold_dir(cfg, fold)
    if (out_dir / "metrics.json").is_file():
        return json.loads((out_dir / "metrics.json").read_text())
    mpath = manifest_file(cfg.data.manifest)
    if cuts is None:
        cuts = load_manifest(mpath)
    if split is None:
        split = resolve_fold(cfg, cuts, fold)
    train, valid, test = split.subsets(cuts)
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.set_float32_matmul_precision(cfg.trainer.matmul_precision)
    if cfg.trainer.num_threads:
        torch.set_num_threads(cfg.trainer.num_threads)

    baseline = cfg.mode == "baseline" or cfg.model.architecture == "baseline"
    aux = [] if baseline else list(cfg.aux_tasks)
    labels_path = out_dir / "labels.json"
    if labels_path.is_file():
        labels = LabelSpace.load(labels_path)
    else:
        labels = build_label_space(train, aux)
        labels.save(labels_path)
    save_config(cfg, out_dir / "config.yaml")
    info = {
        "metaser_version": metaser.__version__,
        "torch_version": torch.__version__,
        "manifest": str(mpath),
        "manifest_sha256": sha256_file(mpath) if mpath.is_file() else None,
        "fold": fold,
        "fold_name": split.name,
        "test_group": split.test_group,
        "num_train": len(split.train_ids),
        "num_valid": len(split.valid_ids),
        "num_test": len(split.test_ids),
        "seed": cfg.seed,
        "aux_tasks": aux,
    }
    (out_dir / "run_info.json").write_text(json.dumps(info, indent=2))

    seed_all(cfg.seed)
    model_cfg = cfg.model
    if baseline and model_cfg.architecture != "baseline":
        from dataclasses import replace

        model_cfg = replace(model_cfg, architecture="baseline")
    model = MetaSERModel.build(model_cfg, labels.classes["emotion"], task_specs(labels, aux))
    if cfg.trainer.compile:
        compile_encoder_layers(model)
    data = FoldData(cfg, labels, aux, train, valid, test)
    cbs = stage_callbacks or (lambda _stage: [])

    aux_rows = None
    stage1 = None
    if aux and not baseline:
        model.freeze_encoder_layers(cfg.stage1.freeze_layers)
        model.set_trainable(aux_heads=True, emotion_head=False)
        m1 = SERModule(model, stage="aux", labels=labels, aux_weights=cfg.aux_tasks,
                       stage_cfg=cfg.stage1, seed=cfg.seed)
        stage1 = run_stage(m1, data, cfg, cfg.stage1, out_dir / "stage1", resume=resume,
                           monitor="val/loss", mode="min", extra_callbacks=cbs("stage1"))
        load_module_weights(model, stage1.best_path)
        aux_rows = _test_rows(m1, data, cfg, out_dir / "stage1")
        if is_global_zero():
            write_jsonl(aux_rows, out_dir / "aux_predictions.jsonl")

    st2 = cfg.stage2
    model.freeze_encoder_layers(st2.freeze_layers)
    model.set_trainable(aux_heads=st2.train_aux_heads, emotion_head=True)
    m2 = SERModule(model, stage="emotion", labels=labels, aux_weights={t: cfg.aux_tasks[t] for t in aux},
                   stage_cfg=st2, seed=cfg.seed)
    stage2 = run_stage(m2, data, cfg, st2, out_dir / "stage2", resume=resume,
                       monitor="val/ua", mode="max", extra_callbacks=cbs("stage2"))
    load_module_weights(model, stage2.best_path)
    valid_scores = _validate(m2, data, cfg, out_dir / "stage2")
    rows = _test_rows(m2, data, cfg, out_dir / "stage2")
    if is_global_zero():
        write_jsonl(rows, out_dir / "predictions.jsonl")
        model_dir = out_dir / "model"
        if model_dir.exists():
            shutil.rmtree(model_dir)
        model.save_pretrained(model_dir)

    metrics = {
        "fold": fold,
        "fold_name": split.name,
        "test_group": split.test_group,
        "test": test_metrics(rows, labels, aux, aux_rows),
        "valid": valid_scores,
        "stage1": stage1.__dict__ if stage1 else None,
        "stage2": stage2.__dict__,
        "layer_weights": _layer_weights(model),
        "seconds": round(time.time() - t0, 1),
    }
    if is_global_zero():
        (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return metrics


def _layer_weights(model: MetaSERModel) -> list[float] | None:
    fn = getattr(model, "layer_weights", None)
    if fn is None:
        return None
    w = fn() if callable(fn) else fn
    return None if w is None else [round(float(x), 6) for x in w.detach().cpu()]
