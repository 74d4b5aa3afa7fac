"""``metaser bench train``: measured throughput, padding and memory — tuned vs naive.

(Inference benchmarks: :mod:`metaser.experiments.bench_infer`.)

Training benchmark. For each stage (1: auxiliary tasks, 2: emotion) and each mode, a fresh
Python process (so peak memory is that mode's own) builds the fold-1 training data and the
model, runs ``warmup`` optimizer steps, then times ``steps`` steps of the real training step
(``SERModule`` forward + weighted loss + backward + optimizer) including the wait for data:

- ``naive``: the reference a straightforward implementation gets — random order, fixed
  batches of 4, every encoder parameter keeps ``requires_grad`` (frozen parts are frozen
  only by leaving them out of the optimizer, so autograd builds and back-propagates through
  the full graph of the CNN and the frozen layers), fp32, data loaded in the main process.
- ``tuned``: the configured pipeline — length-bucketed dynamic batches (``data.sampler``),
  frozen CNN / layers under ``no_grad``, DataLoader workers, and on CUDA bf16 autocast,
  TF32 and fused Adam.

Reported: audio-seconds per wall-second, padding ratio (padded / real samples), peak memory,
median step time, and executed FLOPs per second (``torch.utils.flop_counter``, counted over
the same batches in a separate untimed pass) with MFU on GPUs whose peak is known.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from metaser.config import apply_overrides, from_dict, to_dict
from metaser.errors import MetaserError
from metaser.training.config import RunConfig

# Dense bf16 peak FLOP/s (no sparsity), by substring of torch.cuda.get_device_name().
GPU_PEAK_BF16 = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12, "A10": 125e12,
                 "L4": 121e12, "4090": 165e12}


@dataclass
class ModeResult:
    stage: str
    mode: str
    device: str
    steps: int
    audio_seconds: float
    wall_seconds: float
    throughput: float  # audio-seconds per wall-second
    padding_ratio: float
    peak_memory_mb: float
    median_step_s: float
    batch_utterances_mean: float
    flops_per_step: float | None = None
    achieved_tflops: float | None = None
    mfu: float | None = None


# ------------------------------------------------------------------------------ worker
def _worker(cfg_dict: dict, stage: str, mode: str, steps: int, warmup: int, count_flops: bool) -> ModeResult:
    import torch

    from metaser.data.dataset import build_label_space, make_dataloader
    from metaser.data.folds import make_folds
    from metaser.data.manifest import load_manifest
    from metaser.models.metaser import MetaSERModel
    from metaser.training.fold import manifest_file, task_specs
    from metaser.training.module import SERModule, seed_all

    cfg = from_dict(RunConfig, cfg_dict)
    cuda = torch.cuda.is_available() and cfg.trainer.accelerator in ("auto", "gpu", "cuda")
    device = torch.device("cuda" if cuda else "cpu")
    if mode == "naive":
        cfg = apply_overrides(cfg, ["data.sampler.mode=fixed", "data.sampler.batch_size=4",
                                    "data.sampler.num_workers=0", "data.sampler.shuffle=true"])
    if cuda and mode == "tuned":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    seed_all(cfg.seed)
    cuts = load_manifest(manifest_file(cfg.data.manifest))
    fold = make_folds(cuts, cfg.data.split)[0]
    train, _, _ = fold.subsets(cuts)
    aux = [] if cfg.mode == "baseline" else list(cfg.aux_tasks)
    labels = build_label_space(train, aux)
    model = MetaSERModel.build(cfg.model, labels.classes["emotion"], task_specs(labels, aux))
    st = cfg.stage1 if stage == "stage1" else cfg.stage2
    model.freeze_encoder_layers(st.freeze_layers)
    model.set_trainable(aux_heads=(stage == "stage1") or st.train_aux_heads, emotion_head=stage == "stage2")
    module = SERModule(model, stage="aux" if stage == "stage1" else "emotion", labels=labels,
                       aux_weights={t: cfg.aux_tasks[t] for t in aux}, stage_cfg=st, seed=cfg.seed)
    if mode == "tuned" and cuda:
        from dataclasses import replace

        module.stage_cfg = replace(st, optim=replace(st.optim, fused=True))
    opt = module.configure_optimizers()
    opt = opt[0][0] if isinstance(opt, tuple) else opt
    if mode == "naive":
        # Frozen only by exclusion from the optimizer: autograd still tracks everything.
        model.encoder.requires_grad_(True)
        model.encoder.keep_frozen_graph = True
        fe = model.encoder.model.feature_extractor
        if hasattr(fe, "_requires_grad"):
            fe._requires_grad = True  # HF then builds the CNN's graph too
    module.to(device)
    module.train()
    model.encoder.set_frozen_eval()
    loader = make_dataloader(train, labels, aux, cfg.data, train=True)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if (cuda and mode == "tuned") else None

    def step(batch):
        with autocast if autocast is not None else contextlib.nullcontext():
            out = module(batch)
            loss = module._loss(out, batch).total
        loss.backward()
        if st.optim.grad_clip:
            torch.nn.utils.clip_grad_norm_([p for g in opt.param_groups for p in g["params"]], st.optim.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)

    times, audio, padded, real, sizes, kept = [], 0.0, 0, 0, [], []
    it = iter(_forever(loader))
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    for i in range(warmup + steps):
        t0 = time.perf_counter()
        batch = next(it).to(device, non_blocking=True)
        step(batch)
        if cuda:
            torch.cuda.synchronize()
        dt = time.perf_counter() - t0
        if i >= warmup:
            times.append(dt)
            audio += batch.num_samples / 16000.0
            padded += batch.padded_samples
            real += batch.num_samples
            sizes.append(len(batch))
            if count_flops:
                kept.append(batch.to("cpu"))
    peak = (torch.cuda.max_memory_allocated() / 2**20) if cuda else (
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0)
    wall = sum(times)
    res = ModeResult(stage=stage, mode=mode, device=torch.cuda.get_device_name() if cuda else "cpu",
                     steps=steps, audio_seconds=round(audio, 2), wall_seconds=round(wall, 3),
                     throughput=round(audio / wall, 3), padding_ratio=round(padded / max(real, 1), 4),
                     peak_memory_mb=round(peak, 1), median_step_s=round(statistics.median(times), 4),
                     batch_utterances_mean=round(statistics.fmean(sizes), 2))
    if count_flops and kept:
        from torch.utils.flop_counter import FlopCounterMode

        total = 0
        for b in kept:
            with FlopCounterMode(display=False) as fc:
                step(b.to(device))
            total += fc.get_total_flops()
        res.flops_per_step = total / len(kept)
        res.achieved_tflops = round(total / wall / 1e12, 4)
        if cuda:
            name = torch.cuda.get_device_name()
            peak_flops = next((v for k, v in GPU_PEAK_BF16.items() if k in name), None)
            if peak_flops:
                res.mfu = round(total / wall / peak_flops, 4)
    return res


def _forever(loader):
    epoch = 0
    while True:
        sampler = getattr(loader, "sampler", None)
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(epoch)
        yield from loader
        epoch += 1


def _run_worker(cfg: RunConfig, stage: str, mode: str, steps: int, warmup: int, count_flops: bool) -> ModeResult:
    with tempfile.TemporaryDirectory() as tmp:
        spec = Path(tmp) / "spec.json"
        spec.write_text(json.dumps({"cfg": to_dict(cfg), "stage": stage, "mode": mode, "steps": steps,
                                    "warmup": warmup, "count_flops": count_flops}))
        out = Path(tmp) / "out.json"
        proc = subprocess.run([sys.executable, "-m", "metaser.experiments.bench", str(spec), str(out)],
                              capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
        if proc.returncode != 0 or not out.is_file():
            tail = "\n".join((proc.stderr or "").strip().splitlines()[-15:])
            raise MetaserError(f"benchmark worker ({stage}, {mode}) failed:\n{tail}")
        return ModeResult(**json.loads(out.read_text()))


# ------------------------------------------------------------------------------- train
def bench_train(cfg: RunConfig, *, steps: int = 20, warmup: int = 3, json_out: Path | None = None,
                console=None, stages: tuple[str, ...] = ("stage1", "stage2"), count_flops: bool = True) -> dict:
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    if not cfg.data.manifest:
        raise MetaserError("bench train needs data.manifest=PATH (a prepared manifest)")
    if not cfg.aux_tasks:
        stages = tuple(s for s in stages if s != "stage1")
    results: list[ModeResult] = []
    for stage in stages:
        for mode in ("naive", "tuned"):
            console.print(f"[dim]bench {stage} {mode}: {warmup} warm-up + {steps} timed steps ...[/]")
            results.append(_run_worker(cfg, stage, mode, steps, warmup, count_flops))
    table = Table(title=f"training throughput ({results[0].device}, {cfg.model.encoder.name_or_path})")
    for col in ("stage", "mode", "audio s/s", "pad", "utt/b", "step s", "peak MB", "TFLOP/s", "MFU"):
        table.add_column(col, justify="right")
    ratios = {}
    for stage in stages:
        n, t = [r for r in results if r.stage == stage]
        ratios[stage] = round(t.throughput / n.throughput, 2)
        for r in (n, t):
            table.add_row(stage, r.mode, f"{r.throughput:.2f}", f"{r.padding_ratio:.3f}",
                          f"{r.batch_utterances_mean:.1f}", f"{r.median_step_s:.3f}", f"{r.peak_memory_mb:.0f}",
                          "–" if r.achieved_tflops is None else f"{r.achieved_tflops:.3f}",
                          "–" if r.mfu is None else f"{100 * r.mfu:.1f}%")
    console.print(table)
    console.print("[dim]audio s/s = audio seconds trained per wall second; pad = padded / real samples; "
                  "utt/b = utterances per batch; step s = median step time[/]")
    for stage, ratio in ratios.items():
        console.print(f"{stage}: tuned / naive throughput = [bold]{ratio:.2f}x[/]")
    out = {"kind": "train", "encoder": cfg.model.encoder.name_or_path, "steps": steps, "warmup": warmup,
           "results": [asdict(r) for r in results], "speedup": ratios, "python": sys.version.split()[0],
           "cpu_count": os.cpu_count()}
    if json_out:
        Path(json_out).write_text(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":  # worker entry: python -m metaser.experiments.bench SPEC OUT
    spec = json.loads(Path(sys.argv[1]).read_text())
    r = _worker(spec["cfg"], spec["stage"], spec["mode"], spec["steps"], spec["warmup"], spec["count_flops"])
    Path(sys.argv[2]).write_text(json.dumps(asdict(r)))
