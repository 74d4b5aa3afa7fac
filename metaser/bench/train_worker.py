"""The worker of ``metaser bench train``: one (stage, mode) timed in its own process.

It builds fold 1's training data and the stage exactly as the fold runner does
(:func:`metaser.training.stages.build_stage`, :func:`metaser.training.frozen.stage_store`, the
same loader), then runs the stage's training with Lightning, with the Trainer arguments of
``metaser train`` (:func:`metaser.training.trainer.trainer_kwargs`): the same precision plugin,
module step (:meth:`SERModule.training_step`), gradient clipping and optimizer. No validation, no
checkpoints. A callback takes the wall time between the ends of consecutive steps (so the wait
for data is in), for ``warmup`` untimed and ``steps`` timed steps.

FLOPs are counted afterwards in an untimed pass over the same batches
(``torch.utils.flop_counter``): the forward and weighted loss of the training step
(:meth:`SERModule.loss_on`) and its backward.

    python -m metaser.bench.train_worker SPEC.json OUT.json
"""

from __future__ import annotations

import json
import resource
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch

from metaser.bench.train import GPU_PEAK_BF16, ModeResult, flop_formulas, mode_config
from metaser.config import from_dict
from metaser.constants import SAMPLE_RATE
from metaser.data.dataset import make_dataloader
from metaser.models.dropout import FastDropout
from metaser.models.encoder.fft_conv import uses_fft_conv
from metaser.training.config import RunConfig
from metaser.training.fold import prepare_fold
from metaser.training.frozen import stage_store
from metaser.training.module import SERModule
from metaser.training.stages import build_model, build_stage
from metaser.training.trainer import configure_torch, quiet_lightning, trainer_kwargs

__all__ = ["BenchStage", "build_bench_stage", "StepTimer", "run_steps"]


@dataclass
class BenchStage:
    """One stage built for timing: its module (the model frozen for the stage), its feature
    store (built here, in ``cache_build_seconds``; None when the prefix runs live) and fold 1's
    training loader."""

    module: SERModule
    store: Any
    cache_build_seconds: float
    loader: Any


def build_bench_stage(cfg: RunConfig, stage: str) -> BenchStage:
    """Build ``stage`` of ``cfg`` (a :func:`mode_config`) as the fold runner builds it."""
    ctx = prepare_fold(cfg, 1)
    spec = ctx.spec(stage)
    model = build_model(cfg, ctx.labels)
    module = build_stage(model, spec, ctx.labels, cfg)
    t0 = time.perf_counter()
    parts = {"train": ctx.parts["train"], "valid": [], "test": []}
    store = stage_store(cfg, module.boundary, model, parts, ctx.manifest_sha)
    build_s = time.perf_counter() - t0
    loader = make_dataloader(ctx.parts["train"], ctx.labels, ctx.aux, cfg.data, train=True, store=store)
    return BenchStage(module, store, build_s, loader)


class StepTimer(pl.Callback):
    """Wall seconds between the ends of consecutive training steps, and what each batch held;
    ``keep`` keeps the timed batches (for the FLOP pass)."""

    def __init__(self, warmup: int, keep: bool = False):
        self.warmup = warmup
        self.keep = keep
        self.times: list[float] = []
        self.stats: list[tuple[int, int, int, int]] = []  # (utterances, audio samples, padding, real)
        self.batches: list[Any] = []
        self._last: float | None = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self._last is None:
            self._last = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if torch.cuda.is_available() and pl_module.device.type == "cuda":
            torch.cuda.synchronize()
        now = time.perf_counter()
        step = trainer.global_step - 1  # optimizer steps done, 0-based
        if step >= self.warmup:
            self.times.append(now - self._last)
            pad, real = batch.inputs.padding()
            self.stats.append((len(batch), batch.num_samples, pad, real))
            if self.keep:
                self.batches.append((batch.to("cpu"), batch_idx))
        self._last = now


def run_steps(cfg: RunConfig, bench: BenchStage, steps: int, warmup: int, workdir: str, callbacks=()) -> StepTimer:
    """Train ``warmup + steps`` optimizer steps with ``metaser train``'s Trainer arguments."""
    timer = StepTimer(warmup, keep=True)
    trainer = pl.Trainer(
        **trainer_kwargs(cfg),
        max_steps=warmup + steps,
        max_epochs=-1,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        callbacks=[timer, *callbacks],
        default_root_dir=workdir,
    )
    trainer.fit(bench.module, train_dataloaders=bench.loader)
    return timer


def _flops(module: SERModule, batches: list, device: torch.device) -> float:
    """FLOPs of the forward, the weighted loss and the backward, averaged over ``batches``."""
    from torch.utils.flop_counter import FlopCounterMode

    module.train()
    total = 0
    for batch, _ in batches:
        with FlopCounterMode(display=False, custom_mapping=flop_formulas()) as fc:
            module.loss_on(batch.to(device)).total.backward()
        total += fc.get_total_flops()
        module.zero_grad(set_to_none=True)
    return total / len(batches)


def work(cfg_dict: dict, stage: str, mode: str, steps: int, warmup: int, count_flops: bool) -> ModeResult:
    """Build and time one (stage, mode); see the module docstring."""
    quiet_lightning()
    with tempfile.TemporaryDirectory() as tmp:
        cfg = mode_config(from_dict(RunConfig, cfg_dict), mode, tmp)
        configure_torch(cfg.trainer)
        bench = build_bench_stage(cfg, stage)
        cuda = torch.cuda.is_available() and cfg.trainer.accelerator in ("auto", "gpu", "cuda")
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        timer = run_steps(cfg, bench, steps, warmup, tmp)
        device = torch.device("cuda" if cuda else "cpu")
        peak = (
            torch.cuda.max_memory_allocated() / 2**20
            if cuda
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
        )
        wall = sum(timer.times)
        audio = sum(s[1] for s in timer.stats) / SAMPLE_RATE
        pad, real = sum(s[2] for s in timer.stats), sum(s[3] for s in timer.stats)
        model, store = bench.module.model, bench.store
        optimizer = bench.module.trainer.optimizers[0]
        res = ModeResult(
            stage=stage,
            mode=mode,
            device=torch.cuda.get_device_name() if cuda else "cpu",
            steps=len(timer.times),
            audio_seconds=round(audio, 2),
            wall_seconds=round(wall, 3),
            throughput=round(audio / wall, 3),
            padding_ratio=round(pad / max(real, 1), 4),
            peak_memory_mb=round(peak, 1),
            median_step_s=round(statistics.median(timer.times), 4),
            batch_utterances_mean=round(statistics.fmean(s[0] for s in timer.stats), 2),
            cached_layer=None if store is None else int(store.meta.get("layer", 0)),
            cache_build_seconds=round(bench.cache_build_seconds, 2),
            cache_audio_seconds=0.0 if store is None else round(store.total_samples / SAMPLE_RATE, 2),
            attention=model.encoder.attn_implementation,
            fused_optimizer=bool(optimizer.defaults.get("fused")),
            fast_dropout=any(isinstance(m, FastDropout) for m in model.modules()),
            fft_conv=uses_fft_conv(model.encoder.model),
        )
        if count_flops and timer.batches:
            flops = _flops(bench.module.to(device), timer.batches, device)
            res.flops_per_step = flops
            res.achieved_tflops = round(flops * len(timer.times) / wall / 1e12, 4)
            if cuda:
                peak_flops = next((v for k, v in GPU_PEAK_BF16.items() if k in torch.cuda.get_device_name()), None)
                if peak_flops:
                    res.mfu = round(flops * len(timer.times) / wall / peak_flops, 4)
        return res


if __name__ == "__main__":  # worker entry: python -m metaser.bench.train_worker SPEC OUT
    spec = json.loads(Path(sys.argv[1]).read_text())
    r = work(spec["cfg"], spec["stage"], spec["mode"], spec["steps"], spec["warmup"], spec["count_flops"])
    Path(sys.argv[2]).write_text(json.dumps(asdict(r)))
