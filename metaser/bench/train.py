"""``metaser bench train``: training throughput, padding and memory of the real training step.

For each stage of the config's plan (stage 1 and stage 2, or the emotion-only stage) and each
mode, a fresh Python process (so peak memory is that mode's own) builds fold 1's training data
and the stage exactly as the fold runner does (:func:`metaser.training.stages.build_stage`,
the same loaders and feature cache), runs ``warmup`` untimed optimizer steps, then times
``steps`` steps of forward + weighted loss + backward + clipping + optimizer, the wait for data
included.

Modes:

- ``reference``: the loop a user of the SpeechBrain IEMOCAP recipe gets. Fixed batches of 4 in
  random order, fp32, frozen parts with ``requires_grad=False`` (autograd builds no graph
  through them), speed perturbation applied in the loop, data loaded in the main process, no
  feature cache, transformers' default attention (eager for WavLM), torch's default Adam (the
  per-parameter loop on CPU), torch's dropout and convolution.
- ``tuned``: exactly what ``metaser train`` runs for the config (length-bucketed batches, the
  frozen-prefix feature cache, SDPA, fused Adam, metaser's CPU dropout masks and FFT positional
  convolution, the config's precision and workers).
- ``tuned-nocache`` / ``tuned-eager`` / ``tuned-torchops``: tuned without the feature cache /
  with eager attention / with torch's dropout and direct positional convolution, to measure
  those on their own.

The cache is built before the timed steps (its one-off cost is reported as
``cache_build_seconds``); a real run builds it once per corpus (stage 1) or fold (stage 2).
Reported: audio-seconds per wall-second, padding ratio (padding / real, of the tensor the
model takes: samples, or frames from the cache), peak memory, median step time, executed FLOPs
(``torch.utils.flop_counter``, a separate untimed pass over the same batches) and MFU on GPUs
whose peak is known.
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
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from metaser.config import apply_overrides, from_dict, to_dict
from metaser.constants import SAMPLE_RATE
from metaser.errors import MetaserError
from metaser.training.config import RunConfig

__all__ = ["MODES", "ModeResult", "BenchStage", "bench_train", "build_bench_stage", "forever", "GPU_PEAK_BF16"]

MODES = ("reference", "tuned", "tuned-nocache", "tuned-eager", "tuned-torchops")

# Dense bf16 peak FLOP/s (no sparsity), by substring of torch.cuda.get_device_name().
GPU_PEAK_BF16 = {
    "H200": 989e12,
    "H100": 989e12,
    "A100": 312e12,
    "L40S": 362e12,
    "A10": 125e12,
    "L4": 121e12,
    "4090": 165e12,
}


@dataclass
class ModeResult:
    stage: str
    mode: str
    device: str
    steps: int
    audio_seconds: float
    wall_seconds: float
    throughput: float  # audio-seconds per wall-second
    padding_ratio: float  # padding / real
    peak_memory_mb: float
    median_step_s: float
    batch_utterances_mean: float
    cached_layer: int | None = None  # the feature cache the stage read (None: audio)
    cache_build_seconds: float = 0.0
    cache_audio_seconds: float = 0.0  # audio the store covers (every entry, every speed)
    attention: str = ""
    fused_optimizer: bool = False
    fast_dropout: bool = False  # metaser's CPU dropout masks (trainer.fast_dropout)
    fft_conv: bool = False  # the positional convolution through FFTs (trainer.fft_conv)
    flops_per_step: float | None = None
    achieved_tflops: float | None = None
    mfu: float | None = None


def mode_config(cfg: RunConfig, mode: str, workdir: str) -> RunConfig:
    """The run config a mode trains with (benchmark outputs and cache go to ``workdir``)."""
    out = [f"output_dir={workdir}", f"cache.dir={workdir}/cache", "name=bench"]
    if mode == "reference":
        out += [
            "data.sampler.mode=fixed",
            "data.sampler.batch_size=4",
            "data.sampler.num_workers=0",
            "data.sampler.shuffle=true",
            "trainer.precision=32-true",
            "cache.mode=none",
            "trainer.compile=false",
            "trainer.fast_dropout=false",
            "trainer.fft_conv=false",
        ]
        out += [f"{s}.optim.fused=false" for s in ("stage1", "stage2", "emotion_only")]  # torch's default Adam
        if "wavlm" in cfg.model.encoder.name_or_path.lower():
            out.append("model.encoder.attn_implementation=eager")
    elif mode == "tuned-nocache":
        out.append("cache.mode=none")
    elif mode == "tuned-eager":
        out.append("model.encoder.attn_implementation=eager")
    elif mode == "tuned-torchops":
        out += ["trainer.fast_dropout=false", "trainer.fft_conv=false"]
    elif mode != "tuned":
        raise MetaserError(f"unknown bench mode {mode!r}: one of {', '.join(MODES)}")
    return apply_overrides(cfg, out)


# ------------------------------------------------------------------------------ worker
def _padding(batch) -> tuple[int, int]:
    """(padding, real) elements of the first tensor the model takes."""
    if batch.features is not None:
        real = int(batch.frame_lengths.sum())
        return int(batch.features[0].shape[0] * batch.features[0].shape[1]) - real, real
    return batch.padding_samples, batch.num_samples


@dataclass
class BenchStage:
    """One stage built for timing: fold 1's training data, the stage as the fold runner builds it,
    its feature store (built here, in ``cache_build_seconds``), optimizer and loader, and ``step``
    (forward, weighted loss, backward, clipping, optimizer)."""

    model: Any
    store: Any
    cache_build_seconds: float
    optimizer: Any
    loader: Any
    step: Callable[[Any, int], None]


def build_bench_stage(cfg: RunConfig, stage: str, device) -> BenchStage:
    """Build ``stage`` of ``cfg`` (a :func:`mode_config`) on ``device`` as the bench times it."""
    import torch

    from metaser.data.dataset import make_dataloader
    from metaser.training.cache import stage_features
    from metaser.training.fold import prepare_fold
    from metaser.training.stages import build_model, build_stage

    cuda = device.type == "cuda"
    ctx = prepare_fold(cfg, 1)
    spec = ctx.spec(stage)
    model = build_model(cfg, ctx.labels)
    module = build_stage(model, spec, ctx.labels, cfg)
    t0 = time.perf_counter()
    store = stage_features(
        cfg,
        model,
        spec.freeze_layers,
        {"train": ctx.parts["train"], "valid": [], "test": []},
        ctx.labels,
        ctx.manifest_sha,
    )
    build_s = time.perf_counter() - t0
    opt = module.configure_optimizers()
    opt = opt[0][0] if isinstance(opt, tuple) else opt
    module.to(device)
    module.train()
    loader = make_dataloader(ctx.parts["train"], ctx.labels, ctx.aux, cfg.data, train=True, features=store)
    prec = str(cfg.trainer.precision)
    # as Lightning's precision plugin: bf16-mixed autocasts on CPU too, 16-mixed on CUDA only
    bf16 = prec == "bf16-mixed" or (prec.startswith("bf16") and cuda)
    autocast = (
        torch.autocast(device.type, dtype=torch.bfloat16)
        if bf16
        else (torch.autocast(device.type, dtype=torch.float16) if prec.startswith("16") and cuda else None)
    )
    params = [p for g in opt.param_groups for p in g["params"]]

    def step(batch, i):
        module.on_train_batch_start(batch, i)
        with autocast if autocast is not None else contextlib.nullcontext():
            loss = module._loss(module(batch), batch).total
        loss.backward()
        if spec.config.optim.grad_clip:
            torch.nn.utils.clip_grad_norm_(params, spec.config.optim.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)

    return BenchStage(model, store, build_s, opt, loader, step)


def _worker(cfg_dict: dict, stage: str, mode: str, steps: int, warmup: int, count_flops: bool) -> ModeResult:
    import torch

    from metaser.models.dropout import FastDropout
    from metaser.models.encoder.fft_conv import uses_fft_conv
    from metaser.training.trainer import quiet_lightning

    quiet_lightning()
    with tempfile.TemporaryDirectory() as work:
        cfg = mode_config(from_dict(RunConfig, cfg_dict), mode, work)
        cuda = torch.cuda.is_available() and cfg.trainer.accelerator in ("auto", "gpu", "cuda")
        device = torch.device("cuda" if cuda else "cpu")
        torch.set_float32_matmul_precision(cfg.trainer.matmul_precision)
        if cfg.trainer.num_threads:
            torch.set_num_threads(cfg.trainer.num_threads)
        bench = build_bench_stage(cfg, stage, device)
        model, store, opt, loader, step = bench.model, bench.store, bench.optimizer, bench.loader, bench.step

        times, audio, pad, real, sizes, kept = [], 0.0, 0, 0, [], []
        it = forever(loader)
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        for i in range(warmup + steps):
            t0 = time.perf_counter()
            batch = next(it).to(device, non_blocking=True)
            step(batch, i)
            if cuda:
                torch.cuda.synchronize()
            dt = time.perf_counter() - t0
            if i >= warmup:
                times.append(dt)
                audio += batch.num_samples / SAMPLE_RATE
                p, r = _padding(batch)
                pad, real = pad + p, real + r
                sizes.append(len(batch))
                if count_flops:
                    kept.append((batch.to("cpu"), i))
        peak = (
            (torch.cuda.max_memory_allocated() / 2**20)
            if cuda
            else (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0)
        )
        wall = sum(times)
        res = ModeResult(
            stage=stage,
            mode=mode,
            device=torch.cuda.get_device_name() if cuda else "cpu",
            steps=steps,
            audio_seconds=round(audio, 2),
            wall_seconds=round(wall, 3),
            throughput=round(audio / wall, 3),
            padding_ratio=round(pad / max(real, 1), 4),
            peak_memory_mb=round(peak, 1),
            median_step_s=round(statistics.median(times), 4),
            batch_utterances_mean=round(statistics.fmean(sizes), 2),
            cached_layer=None if store is None else int(store.meta.get("layer", 0)),
            cache_build_seconds=round(bench.cache_build_seconds, 2),
            cache_audio_seconds=0.0 if store is None else round(store.total_samples / SAMPLE_RATE, 2),
            attention=model.encoder.attn_implementation,
            fused_optimizer=bool(opt.defaults.get("fused")),
            fast_dropout=any(isinstance(m, FastDropout) for m in model.modules()),
            fft_conv=uses_fft_conv(model.encoder.model),
        )
        if count_flops and kept:
            from torch.utils.flop_counter import FlopCounterMode

            total = 0
            for b, i in kept:
                with FlopCounterMode(display=False, custom_mapping=flop_formulas()) as fc:
                    step(b.to(device), i)
                total += fc.get_total_flops()
            res.flops_per_step = total / len(kept)
            res.achieved_tflops = round(total / wall / 1e12, 4)
            if cuda:
                peak_flops = next((v for k, v in GPU_PEAK_BF16.items() if k in torch.cuda.get_device_name()), None)
                if peak_flops:
                    res.mfu = round(total / wall / peak_flops, 4)
        return res


def conv_backward_flops(
    grad_out_shape,
    x_shape,
    w_shape,
    _bias,
    _stride,
    _padding,
    _dilation,
    transposed,
    _output_padding,
    _groups,
    output_mask,
    out_shape=None,
    **kwargs,
) -> int:
    """FLOPs of ``aten.convolution_backward``: one forward's worth per gradient it computes.

    torch's own formula (``torch.utils.flop_counter``, torch 2.13) counts the weight gradient of
    a grouped convolution ``groups`` times over (the positional convolution, 16 groups: 8.7 GFLOP
    counted for a forward + backward of 1.4); the input and weight gradients of a convolution
    each cost what its forward does.
    """
    from torch.utils.flop_counter import conv_flop_count

    forward = conv_flop_count(x_shape, w_shape, grad_out_shape, transposed=transposed)
    return forward * (int(bool(output_mask[0])) + int(bool(output_mask[1])))


def flop_formulas() -> dict:
    """The formulas the bench gives ``FlopCounterMode`` on top of torch's (``custom_mapping``)."""
    import torch

    return {torch.ops.aten.convolution_backward: conv_backward_flops}


def forever(loader):
    """The loader's batches epoch after epoch (``set_epoch`` on its sampler, as Lightning does)."""
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
        spec.write_text(
            json.dumps(
                {
                    "cfg": to_dict(cfg),
                    "stage": stage,
                    "mode": mode,
                    "steps": steps,
                    "warmup": warmup,
                    "count_flops": count_flops,
                }
            )
        )
        out = Path(tmp) / "out.json"
        proc = subprocess.run(
            [sys.executable, "-m", "metaser.bench.train", str(spec), str(out)],
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONWARNINGS": "ignore"},
        )
        if proc.returncode != 0 or not out.is_file():
            tail = "\n".join((proc.stderr or "").strip().splitlines()[-15:])
            raise MetaserError(f"benchmark worker ({stage}, {mode}) failed:\n{tail}")
        return ModeResult(**json.loads(out.read_text()))


# ------------------------------------------------------------------------------- train
def bench_train(
    cfg: RunConfig,
    *,
    steps: int = 20,
    warmup: int = 3,
    json_out: Path | None = None,
    console=None,
    modes: tuple[str, ...] = ("reference", "tuned"),
    stages: tuple[str, ...] | None = None,
    count_flops: bool = True,
) -> dict:
    """Run every (stage, mode) and print the table; returns the figures (also to ``json_out``)."""
    from rich.console import Console
    from rich.table import Table

    from metaser.training.stages import stage_plan

    console = console or Console()
    if not cfg.data.manifest:
        raise MetaserError("bench train needs data.manifest=PATH (a prepared manifest)")
    bad = [m for m in modes if m not in MODES]
    if bad:
        raise MetaserError(f"unknown bench mode(s) {', '.join(bad)}: choose from {', '.join(MODES)}")
    plan = [s.name for s in stage_plan(cfg)]
    stages = tuple(s for s in (stages or plan) if s in plan)
    results: list[ModeResult] = []
    for stage in stages:
        for mode in modes:
            console.print(f"[dim]bench {stage} {mode}: {warmup} warm-up + {steps} timed steps ...[/]")
            results.append(_run_worker(cfg, stage, mode, steps, warmup, count_flops))
    table = Table(title=f"training throughput ({results[0].device}, {cfg.model.encoder.name_or_path})")
    for col in ("stage", "mode", "audio s/s", "pad", "utt/b", "step s", "cache", "attn", "peak MB", "TFLOP/s", "MFU"):
        table.add_column(col, justify="right")
    for r in results:
        table.add_row(
            r.stage,
            r.mode,
            f"{r.throughput:.2f}",
            f"{r.padding_ratio:.3f}",
            f"{r.batch_utterances_mean:.1f}",
            f"{r.median_step_s:.3f}",
            "–" if r.cached_layer is None else f"L{r.cached_layer}",
            r.attention,
            f"{r.peak_memory_mb:.0f}",
            "–" if r.achieved_tflops is None else f"{r.achieved_tflops:.3f}",
            "–" if r.mfu is None else f"{100 * r.mfu:.1f}%",
        )
    console.print(table)
    console.print(
        "[dim]audio s/s = audio seconds trained per wall second; pad = padding / real; utt/b = utterances "
        "per batch; step s = median step time; cache = the frozen prefix read from the feature cache "
        "(L0 = CNN output, L4 = 4 frozen layers)[/]"
    )
    ratios: dict[str, dict[str, float]] = {}
    for stage in stages:
        by = {r.mode: r for r in results if r.stage == stage}
        if "reference" in by:
            ratios[stage] = {
                m: round(r.throughput / by["reference"].throughput, 2) for m, r in by.items() if m != "reference"
            }
            for m, x in ratios[stage].items():
                console.print(f"{stage}: {m} / reference throughput = [bold]{x:.2f}x[/]")
    out = {
        "kind": "train",
        "encoder": cfg.model.encoder.name_or_path,
        "steps": steps,
        "warmup": warmup,
        "results": [asdict(r) for r in results],
        "speedup": ratios,
        "python": sys.version.split()[0],
        "cpu_count": os.cpu_count(),
    }
    if json_out:
        Path(json_out).write_text(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":  # worker entry: python -m metaser.bench.train SPEC OUT
    spec = json.loads(Path(sys.argv[1]).read_text())
    r = _worker(spec["cfg"], spec["stage"], spec["mode"], spec["steps"], spec["warmup"], spec["count_flops"])
    Path(sys.argv[2]).write_text(json.dumps(asdict(r)))
