"""``metaser bench train``: training throughput, padding and memory of the real training step.

For each stage of the config's plan (stage 1 and stage 2, or the emotion-only stage) and each
mode, a fresh Python process (so peak memory is that mode's own; :mod:`metaser.bench.train_worker`)
builds fold 1's training data and the stage exactly as the fold runner does, and trains it with
``metaser train``'s Trainer arguments and training step (forward, weighted loss, backward,
clipping, optimizer): ``warmup`` untimed steps, then ``steps`` timed ones, the wait for data
included.

Modes:

- ``reference``: the loop a user of the SpeechBrain IEMOCAP recipe gets. Fixed batches of 4 in
  random order, fp32, frozen parts with ``requires_grad=False`` (autograd builds no graph
  through them), speed perturbation applied in the loop, data loaded in the main process, no
  feature cache, transformers' default attention (eager for WavLM), torch's default Adam (the
  per-parameter loop on CPU), torch's dropout and convolution.
- ``tuned``: what ``metaser train`` runs for the config (length-bucketed batches, the
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

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from metaser.config import apply_overrides, to_dict
from metaser.errors import MetaserError
from metaser.training.config import STAGE_NAMES, RunConfig

__all__ = ["MODES", "ModeResult", "bench_train", "mode_config", "flop_formulas", "GPU_PEAK_BF16"]

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
        out += [f"{s}.optim.fused=false" for s in STAGE_NAMES]  # torch's default Adam
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
            [sys.executable, "-m", "metaser.bench.train_worker", str(spec), str(out)],
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
        Path(json_out).parent.mkdir(parents=True, exist_ok=True)
        Path(json_out).write_text(json.dumps(out, indent=2))
    return out
