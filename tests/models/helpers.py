"""Helpers for the model tests: deterministic padded waveform batches, tiny configs."""

from __future__ import annotations

import math

import torch

from metaser.models.config import EncoderConfig, FusionConfig, HeadConfig, ModelConfig, TaskSpec

EMOTIONS = ["ang", "hap", "neu", "sad"]
TASKS = [
    TaskSpec(name="gender", kind="classification", labels=["female", "male"]),
    TaskSpec(name="style", kind="classification", labels=["impro", "script", "other"]),
    TaskSpec(name="asr", kind="ctc", labels=list(" abcdefg")),
]
TINY_PRESETS = ["tiny-wav2vec2", "tiny-hubert", "tiny-wavlm", "tiny-data2vec"]


def make_batch(lengths: list[int], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero-padded (B, S) batch of noisy tones with the given true lengths (16 kHz)."""
    g = torch.Generator().manual_seed(seed)
    s = max(lengths)
    waves = torch.zeros(len(lengths), s)
    for i, n in enumerate(lengths):
        t = torch.arange(n) / 16000.0
        tone = 0.3 * torch.sin(2 * math.pi * (150 + 40 * i) * t)
        waves[i, :n] = tone + 0.05 * torch.randn(n, generator=g)
    return waves, torch.tensor(lengths, dtype=torch.long)


def tiny_model_config(
    preset: str = "tiny-wavlm",
    layers: str = "ari",
    tasks: str = "coattention",
    architecture: str = "metaser",
    normalize: bool | None = None,
) -> ModelConfig:
    """A ModelConfig with a tiny encoder and small heads (aux H = 16, emotion hidden = 24)."""
    return ModelConfig(
        encoder=EncoderConfig(name_or_path=preset, normalize_waveform=normalize),
        fusion=FusionConfig(layers=layers, tasks=tasks),
        aux_head=HeadConfig(hidden_dim=16, dropout=0.1),
        emotion_head=HeadConfig(hidden_dim=24, dropout=0.2),
        architecture=architecture,
    )
