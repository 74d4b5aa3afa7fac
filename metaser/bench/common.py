"""What the inference benchmarks share: audio to time on, and the median of repeated runs."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import numpy as np

from metaser.constants import SAMPLE_RATE
from metaser.errors import MetaserError

__all__ = ["default_audio", "audio_files", "median_seconds"]


def default_audio(root: Path, n: int = 32, seed: int = 0) -> list[Path]:
    """``n`` files of 1-6 s of speech-like tone bursts (for a model without a corpus at hand)."""
    import soundfile as sf

    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        k = int(SAMPLE_RATE * rng.uniform(1, 6))
        t = np.arange(k) / SAMPLE_RATE
        x = 0.1 * np.sin(2 * np.pi * rng.uniform(100, 300) * t) * (1 + np.sin(2 * np.pi * 3 * t))
        x += 0.01 * rng.standard_normal(k)
        p = root / f"f{i:02d}.wav"
        sf.write(p, x.astype(np.float32), SAMPLE_RATE)
        out.append(p)
    return out


def audio_files(audio: list[Path], tmp: Path) -> list[str]:
    if not audio:
        return [str(p) for p in default_audio(tmp)]
    from metaser.inference.predict import expand_inputs

    files = [str(e) for e in expand_inputs(audio) if isinstance(e, Path)]
    if not files:
        raise MetaserError("bench: no audio files in the given paths")
    return files


def median_seconds(fn, repeats: int, warmup=None) -> float:
    """Median wall seconds of ``repeats`` calls of ``fn``, after one untimed ``warmup`` (default: ``fn``)."""
    (warmup or fn)()  # untimed (allocator, onnxruntime arenas, lazy imports)
    walls = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        walls.append(time.perf_counter() - t0)
    return statistics.median(walls)
