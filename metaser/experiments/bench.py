"""``metaser bench``: measured throughput, padding and memory — tuned vs naive — and inference speed.

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


# ------------------------------------------------------------------------------- infer
def bench_infer(model_dir: Path, audio: list[Path], *, json_out: Path | None = None, console=None,
                repeats: int = 3) -> dict:
    import numpy as np
    import soundfile as sf
    from rich.console import Console

    from metaser.inference.recognizer import EmotionRecognizer

    console = console or Console()
    rec = EmotionRecognizer.from_pretrained(model_dir)
    tmp = None
    if not audio:  # 32 files of 1-6 s of speech-like noise bursts
        tmp = tempfile.TemporaryDirectory()
        rng = np.random.default_rng(0)
        audio = []
        for i in range(32):
            n = int(16000 * rng.uniform(1, 6))
            t = np.arange(n) / 16000
            x = 0.1 * np.sin(2 * np.pi * rng.uniform(100, 300) * t) * (1 + np.sin(2 * np.pi * 3 * t))
            x += 0.01 * rng.standard_normal(n)
            p = Path(tmp.name) / f"f{i:02d}.wav"
            sf.write(p, x.astype(np.float32), 16000)
            audio.append(p)
    files = [str(p) for p in audio]
    duration = sum(sf.info(f).duration for f in files)
    rec.predict_batch(files[:2])  # warm-up
    walls = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        rec.predict_batch(files)
        walls.append(time.perf_counter() - t0)
    wall = statistics.median(walls)
    out = {"kind": "infer", "files": len(files), "audio_seconds": round(duration, 2),
           "median_wall_seconds": round(wall, 3), "rtf": round(wall / duration, 5),
           "files_per_second": round(len(files) / wall, 2), "repeats": repeats}
    console.print(f"{len(files)} files, {duration:.1f} s audio: median {wall:.2f} s over {repeats} runs -> "
                  f"RTF {out['rtf']:.4f} ({1 / out['rtf']:.0f}x real time), {out['files_per_second']:.1f} files/s")
    if json_out:
        Path(json_out).write_text(json.dumps(out, indent=2))
    if tmp:
        tmp.cleanup()
    return out


