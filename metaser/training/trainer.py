"""Lightning ``Trainer`` factories, the torch runtime settings and the quiet console setting of
the training commands.

:func:`quiet_lightning` and :func:`configure_torch` are called by the commands that train (never
at import, never as a side effect of preparing data), so importing metaser changes no global
warning filter, logger level or torch setting.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import EarlyStopping, ModelCheckpoint, RichProgressBar
from pytorch_lightning.loggers import CSVLogger

from metaser.data.sampling import count_batches
from metaser.training.config import RunConfig, TrainerConfig

__all__ = ["quiet_lightning", "configure_torch", "trainer_kwargs", "make_trainer", "eval_trainer", "LIGHTNING_NOISE"]

#: Lightning's banners and tips ("GPU available", "try installing ...") and warnings about
#: choices made here on purpose (frozen modules in eval mode, lhotse samplers, our own batch
#: transfer), which would bury the progress output.
LIGHTNING_NOISE = (
    ".*does not have many workers.*",
    ".*`training_step` returned.*",
    ".*LeafSpec.*",
    ".*isinstance.*treespec.*",
    ".*Checkpoint directory.*exists and is not empty.*",
    ".*The number of training batches.*",
    ".*you defined a `validation_step`.*",
    ".*module\\(s\\) in eval mode.*",
    ".*overridden `transfer_batch_to_device`.*",
    ".*is an invalid version and will not be supported.*",
    ".*Experiment logs directory .* exists and is not empty.*",
)


def quiet_lightning() -> None:
    """Silence Lightning's chatter for this process (called when a command runs)."""
    for pattern in LIGHTNING_NOISE:
        warnings.filterwarnings("ignore", pattern)
    for name in ("pytorch_lightning", "lightning.pytorch", "lightning_fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)


def configure_torch(t: TrainerConfig) -> None:
    """torch's process-wide settings of a training run: fp32 matrix-product precision
    (``trainer.matmul_precision``) and intra-op threads (``trainer.num_threads``)."""
    torch.set_float32_matmul_precision(t.matmul_precision)
    if t.num_threads:
        torch.set_num_threads(t.num_threads)


class _ProgressBar(RichProgressBar):
    """Lightning's rich progress bar without the logger's version number ("v_num"), with a
    total for samplers that have no ``len`` (length-bucketed epochs): the epoch's batch count
    from a dry run of the sampler over cut metadata (:func:`metaser.data.sampling.count_batches`),
    so the bar shows a total and an ETA."""

    @property
    def total_train_batches(self):  # type: ignore[override]
        total = super().total_train_batches
        if total is None or total == float("inf"):
            try:
                n = count_batches(self.trainer.train_dataloader)
            except (TypeError, AttributeError):  # not a lhotse sampler: keep Lightning's answer
                return total
            limit = self.trainer.limit_train_batches
            return min(n, limit) if isinstance(limit, int) else n
        return total

    def get_metrics(self, trainer, pl_module):
        items = super().get_metrics(trainer, pl_module)
        items.pop("v_num", None)
        return items


def trainer_kwargs(cfg: RunConfig) -> dict[str, Any]:
    """The ``lightning.Trainer`` arguments of a training step, shared by :func:`make_trainer` and
    ``metaser bench train`` (so the bench times the same step). Gradient clipping is not here:
    the module clips itself (``SERModule.configure_gradient_clipping``, ``optim.grad_clip``)."""
    t = cfg.trainer
    return dict(
        accelerator=t.accelerator,
        devices=t.devices,
        strategy=t.strategy,
        num_nodes=t.num_nodes,
        precision=t.precision,
        accumulate_grad_batches=t.accumulate_grad_batches,
        deterministic=t.deterministic,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        use_distributed_sampler=False,  # lhotse samplers shard by rank themselves
    )


def make_trainer(
    cfg: RunConfig, spec, stage_dir: Path, extra_callbacks: list | None = None
) -> tuple[pl.Trainer, ModelCheckpoint]:
    """The fit trainer of one stage (``spec``: its StageSpec): best checkpoint by the stage's
    selection metric and last checkpoint every epoch, optional early stop."""
    t, stage_cfg = cfg.trainer, spec.config
    monitor, mode = spec.monitor
    ckpt = ModelCheckpoint(
        dirpath=stage_dir,
        filename="best",
        monitor=monitor,
        mode=mode,
        save_top_k=1,
        every_n_epochs=1,
        enable_version_counter=False,
    )
    # last.ckpt after every epoch, for --resume. Not ``save_last=True``: Lightning writes that
    # one only in epochs where the best checkpoint changed, so a resume would replay epochs.
    # Listed after ``ckpt`` so that the state it saves includes this epoch's best.
    last = ModelCheckpoint(
        dirpath=stage_dir, filename="last", monitor=None, save_top_k=1, every_n_epochs=1, enable_version_counter=False
    )
    callbacks: list = [ckpt, last, *(extra_callbacks or [])]
    if t.enable_progress_bar:
        callbacks.append(_ProgressBar())
    if stage_cfg.early_stopping_patience:
        callbacks.append(EarlyStopping(monitor=monitor, mode=mode, patience=stage_cfg.early_stopping_patience))
    kwargs = trainer_kwargs(cfg)
    kwargs.update(
        max_epochs=stage_cfg.epochs,
        log_every_n_steps=t.log_every_n_steps,
        enable_progress_bar=t.enable_progress_bar,
        logger=CSVLogger(stage_dir, name="", version="logs"),
        callbacks=callbacks,
        default_root_dir=stage_dir,
    )
    if t.limit_train_batches is not None:
        kwargs["limit_train_batches"] = t.limit_train_batches
    if t.limit_val_batches is not None:
        kwargs["limit_val_batches"] = t.limit_val_batches
    return pl.Trainer(**kwargs), ckpt


def eval_trainer(cfg: RunConfig, root: Path) -> pl.Trainer:
    """A single-device trainer for the evaluation after selection (never sharded)."""
    t = cfg.trainer
    return pl.Trainer(
        accelerator=t.accelerator,
        devices=1,
        precision=t.precision,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        use_distributed_sampler=False,
        default_root_dir=root,
    )
