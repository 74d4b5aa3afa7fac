"""The Lightning module: one class for every stage (what a stage does is its StageSpec).

The stage names are the ones used everywhere (configs, run folders, plans):

* ``stage1``: the auxiliary tasks, loss = sum_k w_k L_k (Eq. 1); selection on val/loss.
* ``stage2``: emotion after stage 1, loss = CE(emotion) (Eq. 2); selection on val/ua.
* ``emotion_only``: emotion without a stage 1 (the baseline, Table IV's "SER only"); like stage 2.

A batch's input (audio, or the frozen prefix's output from a feature store) reaches the model
through one call, ``encoder.prefix(batch.inputs, boundary.layers)``: the model's forward takes
the boundary features only.
"""

from __future__ import annotations

import logging

import numpy as np
import pytorch_lightning as pl
import torch
from lightning_fabric.utilities.seed import seed_everything
from torchmetrics import MeanMetric

from metaser.constants import SAMPLE_RATE
from metaser.data.batch import Batch
from metaser.data.labels import IGNORE_INDEX, LabelSpace
from metaser.training.losses import LossOutput
from metaser.training.metrics import ASRMetric, ClassificationMetric

log = logging.getLogger(__name__)


def seed_all(seed: int) -> None:
    """Seed Python, numpy and torch (Lightning's ``seed_everything``, quiet)."""
    seed_everything(int(seed) % 2**32, workers=False, verbose=False)


class SERModule(pl.LightningModule):
    """model: an SERModel frozen for the stage; spec: the stage's StageSpec; boundary: its
    FrozenBoundary (where the frozen part ends, how padding is treated)."""

    def __init__(self, model: torch.nn.Module, *, spec, boundary, labels: LabelSpace, seed: int = 0):
        super().__init__()
        self.model = model
        self.spec = spec
        self.boundary = boundary
        self.stage = spec.name
        self.objective = spec.objective
        self.labels = labels
        self.stage_cfg = spec.config
        self.seed = seed
        self.loss_fn = spec.loss()
        self.aux_tasks = [t for t, _ in spec.aux_weights]
        self.cls_tasks = [t for t in self.aux_tasks if t != "asr"]
        self.val_metrics = torch.nn.ModuleDict(self._make_metrics())
        self.val_asr = ASRMetric()
        self.val_loss = MeanMetric()
        self.test_rows: list[dict] = []

    # ----------------------------------------------------------------- helpers
    def _make_metrics(self) -> dict[str, ClassificationMetric]:
        tasks = ["emotion"] if self.objective == "emotion" else []
        tasks += self.cls_tasks
        return {t: ClassificationMetric(self.labels.num_classes(t)) for t in tasks}

    def forward(self, batch: Batch, compute_emotion: bool | None = None):
        if compute_emotion is None:
            compute_emotion = self.objective == "emotion"
        b = self.boundary
        features = self.model.encoder.prefix(batch.inputs, b.layers, independent=b.independent)
        return self.model(features, compute_emotion=compute_emotion)

    def loss_on(self, batch: Batch) -> LossOutput:
        """Forward and the stage's weighted loss: the computation of one training step (the
        training loop and ``metaser bench train`` both run it)."""
        return self.loss_fn(self(batch), batch)

    def transfer_batch_to_device(self, batch, device, dataloader_idx):
        return (
            batch.to(device, non_blocking=True)
            if isinstance(batch, Batch)
            else super().transfer_batch_to_device(batch, device, dataloader_idx)
        )

    def _decode(self, log_probs: torch.Tensor, lengths: torch.Tensor) -> list[str]:
        ids = log_probs.argmax(-1).cpu()  # (B, T)
        return [self.labels.vocab.greedy_decode(ids[i, : int(lengths[i])].tolist()) for i in range(len(ids))]

    def _refs(self, batch: Batch) -> list[str]:
        if batch.ctc_targets is None:
            return [""] * len(batch)
        t, n = batch.ctc_targets.cpu(), batch.ctc_target_lengths.cpu()
        return [self.labels.vocab.decode(t[i, : int(n[i])].tolist()) for i in range(len(t))]

    # ---------------------------------------------------------------- training
    def on_train_epoch_start(self) -> None:
        # Re-seed at every epoch so that a run resumed from an epoch checkpoint continues
        # with exactly the random stream (dropout, augmentation) of an uninterrupted run.
        seed_all(self.seed * 1000 + self.current_epoch + 500 * self.spec.seed_offset)
        self.model.train()  # MetaSERModel.train keeps frozen modules in eval (no dropout there)

    def on_train_batch_start(self, batch: Batch, batch_idx: int) -> None:
        # Re-seed per step too: Lightning creates the epoch's data iterator (which draws from
        # the global torch RNG) after on_train_epoch_start on a fresh epoch but before it on a
        # resumed one, so only a per-step seed gives a resumed run the same dropout masks.
        seq = np.random.SeedSequence([self.seed, self.spec.seed_offset, self.current_epoch, batch_idx])
        seed_all(int(seq.generate_state(1)[0]))

    def training_step(self, batch: Batch, batch_idx: int):
        lo = self.loss_on(batch)
        bs = len(batch)
        self.log(
            "train/loss", lo.total.detach(), batch_size=bs, prog_bar=True, on_step=True, on_epoch=True, sync_dist=False
        )
        for k, v in lo.parts.items():
            self.log(f"train/loss_{k}", v, batch_size=bs, on_step=False, on_epoch=True)
        self.log(
            "train/audio_seconds",
            float(batch.num_samples) / SAMPLE_RATE,
            reduce_fx="sum",
            on_step=False,
            on_epoch=True,
            batch_size=bs,
        )
        return lo.total

    # -------------------------------------------------------------- validation
    def on_validation_epoch_start(self) -> None:
        for m in self.val_metrics.values():
            m.reset()
        self.val_asr.reset()
        self.val_loss.reset()

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        out = self(batch)
        lo = self.loss_fn(out, batch)
        self.val_loss.update(lo.total.detach().float(), weight=len(batch))
        if "emotion" in self.val_metrics:
            self.val_metrics["emotion"].update(out.emotion_logits, batch.targets["emotion"])
        for t in self.cls_tasks:
            self.val_metrics[t].update(out.task_logits[t], batch.targets[t])
        if "asr" in self.aux_tasks and out.ctc_log_probs is not None:
            self.val_asr.update(self._decode(out.ctc_log_probs, out.ctc_lengths), self._refs(batch))

    def on_validation_epoch_end(self) -> None:
        self.log("val/loss", self.val_loss.compute(), prog_bar=True, sync_dist=True)
        for t, m in self.val_metrics.items():
            s = m.compute()
            if t == "emotion":
                self.log("val/ua", s["ua"], prog_bar=True)
                self.log("val/wa", s["wa"], prog_bar=True)
                self.log("val/macro_f1", s["macro_f1"])
            else:
                self.log(f"val/{t}_acc", s["wa"])
        for k, v in self.val_asr.compute().items():
            self.log(f"val/{k}", v)

    # -------------------------------------------------------------------- test
    def on_test_epoch_start(self) -> None:
        self.test_rows = []

    def test_step(self, batch: Batch, batch_idx: int) -> None:
        out = self(batch)  # stage 1 evaluates the auxiliary tasks only
        emo = self.labels.classes["emotion"]
        probs = out.emotion_logits.float().softmax(-1).cpu() if out.emotion_logits is not None else None
        hyps = self._decode(out.ctc_log_probs, out.ctc_lengths) if out.ctc_log_probs is not None else None
        refs = self._refs(batch) if hyps is not None else None
        for i, uid in enumerate(batch.ids):
            t = int(batch.targets["emotion"][i])
            row = {"id": uid, "emotion": emo[t] if t != IGNORE_INDEX else None}
            if probs is not None:
                row["pred"] = emo[int(probs[i].argmax())]
                row["probs"] = {c: round(float(p), 6) for c, p in zip(emo, probs[i])}
            for task in self.cls_tasks:
                if task not in out.task_logits:
                    continue
                names = self.labels.classes[task]
                tt = int(batch.targets[task][i])
                row[f"{task}"] = names[tt] if tt != IGNORE_INDEX else None
                row[f"{task}_pred"] = names[int(out.task_logits[task][i].argmax())]
            if hyps is not None:
                row["text"] = refs[i]
                row["asr_pred"] = hyps[i]
            self.test_rows.append(row)

    # ------------------------------------------------------------- optimisers
    def _fused(self) -> bool:
        """Whether Adam runs torch's fused kernel. Under fp16 mixed precision with clipping it
        cannot: the gradient scaler unscales inside a fused step, after clipping would have run
        on scaled gradients; the per-parameter loop is used then, and the log says why."""
        o = self.stage_cfg.optim
        if not o.fused:
            return False
        precision = str(getattr(getattr(self, "_trainer", None), "precision", "") or "")
        if o.grad_clip and precision.startswith("16"):
            log.info(
                "%s: torch's per-parameter Adam instead of the fused kernel (optim.fused): with precision %s "
                "the fused kernel unscales gradients itself, after clipping (optim.grad_clip=%s) would run",
                self.stage,
                precision,
                o.grad_clip,
            )
            return False
        return True

    def configure_optimizers(self):
        o = self.stage_cfg.optim
        enc = [p for p in self.model.encoder_parameters() if p.requires_grad]
        head = [p for p in self.model.head_parameters() if p.requires_grad]
        groups = [
            g
            for g in (
                {"params": enc, "lr": o.encoder_lr, "name": "encoder"},
                {"params": head, "lr": o.head_lr, "name": "heads"},
            )
            if g["params"]
        ]
        kw = {"betas": tuple(o.betas), "weight_decay": o.weight_decay}
        if self._fused():
            kw["fused"] = True  # one kernel over all parameters (CPU: about 2.5x the loop's speed at base size)
        cls = torch.optim.AdamW if o.optimizer == "adamw" else torch.optim.Adam
        opt = cls(groups, **kw)
        scheds = []
        if o.warmup_steps > 0 or o.scheduler in ("cosine", "linear"):
            # imported here, not at the top: transformers' optimization module is slow to import
            from transformers import (
                get_constant_schedule_with_warmup,
                get_cosine_schedule_with_warmup,
                get_linear_schedule_with_warmup,
            )

            total = max(int(self.trainer.estimated_stepping_batches), 1)
            if o.scheduler == "cosine":
                sched = get_cosine_schedule_with_warmup(opt, o.warmup_steps, total)
            elif o.scheduler == "linear":
                sched = get_linear_schedule_with_warmup(opt, o.warmup_steps, total)
            else:
                sched = get_constant_schedule_with_warmup(opt, o.warmup_steps)
            scheds.append({"scheduler": sched, "interval": "step"})
        if o.scheduler == "plateau":
            monitor, mode = self.spec.monitor
            scheds.append(
                {
                    "scheduler": torch.optim.lr_scheduler.ReduceLROnPlateau(
                        opt, mode=mode, factor=o.plateau_factor, patience=o.plateau_patience
                    ),
                    "monitor": monitor,
                    "interval": "epoch",
                }
            )
        if not scheds:
            return opt
        return [opt], scheds

    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None) -> None:
        """Clip the gradient norm to ``optim.grad_clip``, as Lightning's own clipping does, but
        without its precision plugin's refusal of fused optimizers under mixed precision: with
        bf16 there is no gradient scaler, so the gradients are already true here (under fp16
        the fused kernel is not used, :meth:`_fused`)."""
        clip = self.stage_cfg.optim.grad_clip
        if clip:
            params = [p for group in optimizer.param_groups for p in group["params"]]
            torch.nn.utils.clip_grad_norm_(params, clip)
