"""Waveform-side helpers of the encoder: per-utterance normalisation and CNN frame counts."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from metaser.constants import SAMPLE_RATE
from metaser.errors import DataError
from metaser.masks import lengths_to_mask

__all__ = ["normalize_waveforms", "conv_output_lengths", "check_min_length"]


def conv_output_lengths(lengths: torch.Tensor, kernels: Sequence[int], strides: Sequence[int]) -> torch.Tensor:
    """Frames after the CNN: ``floor((n - k) / s) + 1`` per conv layer."""
    for k, s in zip(kernels, strides):
        lengths = torch.div(lengths - k, s, rounding_mode="floor") + 1
    return lengths


def normalize_waveforms(waveforms: torch.Tensor, lengths: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """Per-utterance zero mean / unit variance over the true length; padding stays zero.

    Same statistics as HF's ``Wav2Vec2FeatureExtractor.zero_mean_unit_var_norm`` (population
    variance, ``eps = 1e-7``). waveforms: (B, S); lengths: (B,).
    """
    mask = lengths_to_mask(lengths.to(waveforms.device), waveforms.shape[1]).to(waveforms.dtype)  # (B, S)
    n = lengths.clamp(min=1).to(waveforms.dtype)[:, None]  # (B, 1)
    mean = (waveforms * mask).sum(1, keepdim=True) / n  # (B, 1)
    var = (((waveforms - mean) * mask) ** 2).sum(1, keepdim=True) / n  # (B, 1)
    return (waveforms - mean) / torch.sqrt(var + eps) * mask  # (B, S)


def check_min_length(lengths: torch.Tensor, min_samples: int) -> None:
    """DataError when an utterance is shorter than the CNN's receptive field (no frame at all)."""
    short = int((lengths < min_samples).sum())
    if short:
        raise DataError(
            f"{short} utterance(s) in the batch are shorter than {min_samples} samples "
            f"({min_samples / SAMPLE_RATE * 1000:.0f} ms), the encoder's receptive field",
            hint="filter out very short cuts when building the manifest",
        )
