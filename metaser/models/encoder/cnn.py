"""The encoder's CNN, run so that an utterance's features do not depend on its batch.

wav2vec2-base, HuBERT-base and WavLM-base have a group-norm CNN: its first conv layer is
followed by ``GroupNorm(C groups, C channels)``, which normalises every channel over ALL frames
of the padded tensor. Padding an utterance into a batch therefore changes its features (and the
paper's models were trained that way; transformers gives these encoders no attention mask).

:func:`cnn_features` with ``independent=True`` replaces that one normalisation by
:class:`masked_group_norm`: the same statistics over each utterance's valid frames only. The
other conv layers are causal in the right sense (a valid output frame reads valid input frames
only, by the frame-count formula), so every valid frame then equals the utterance's output alone,
at batch size 1, up to float rounding. Vectorised over the batch and traceable to ONNX (no loop
over utterances). Layer-norm CNNs normalise each frame on its own and take the plain path.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from metaser.masks import lengths_to_mask
from metaser.models.encoder.waveform import conv_output_lengths

__all__ = ["cnn_features", "masked_group_norm", "has_group_norm"]


def has_group_norm(feature_extractor: nn.Module) -> bool:
    """True when the first conv layer normalises over time (wav2vec2/HuBERT/WavLM base)."""
    return isinstance(getattr(feature_extractor.conv_layers[0], "layer_norm", None), nn.GroupNorm)


def masked_group_norm(x: torch.Tensor, frames: torch.Tensor, norm: nn.GroupNorm) -> torch.Tensor:
    """``norm(x)`` with the statistics of each utterance's first ``frames[b]`` frames only.

    x: (B, C, T); frames: (B,) valid frames. Population variance and ``norm.eps``, as
    ``nn.GroupNorm``; the affine weight and bias per channel. Padded frames get values too (from
    the same statistics); no valid frame downstream reads them.
    """
    b, c, t = x.shape
    g = norm.num_groups
    xg = x.reshape(b, g, c // g, t)  # (B, G, C/G, T)
    valid = lengths_to_mask(frames.to(x.device), t)[:, None, None, :].to(x.dtype)  # (B, 1, 1, T)
    count = (frames.to(x.dtype).clamp(min=1) * (c // g))[:, None, None, None]  # (B, 1, 1, 1)
    mean = (xg * valid).sum(dim=(2, 3), keepdim=True) / count  # (B, G, 1, 1)
    var = (((xg - mean) * valid) ** 2).sum(dim=(2, 3), keepdim=True) / count  # (B, G, 1, 1)
    y = ((xg - mean) / torch.sqrt(var + norm.eps)).reshape(b, c, t)  # (B, C, T)
    if norm.affine:
        y = y * norm.weight[None, :, None] + norm.bias[None, :, None]
    return y


def cnn_features(
    feature_extractor: nn.Module,
    x: torch.Tensor,
    lengths: torch.Tensor,
    conv_kernel: Sequence[int],
    conv_stride: Sequence[int],
    *,
    independent: bool,
) -> torch.Tensor:
    """x: (B, S) zero-padded (normalised) audio -> the CNN output (B, C, T).

    ``independent=False``: HF's feature extractor as it is. ``True``: the group norm of a
    group-norm CNN is taken over each utterance's valid frames (:func:`masked_group_norm`).
    """
    if not (independent and has_group_norm(feature_extractor)):
        return feature_extractor(x)
    first, rest = feature_extractor.conv_layers[0], feature_extractor.conv_layers[1:]
    h = first.conv(x[:, None])  # (B, C, T0)
    frames = conv_output_lengths(lengths, conv_kernel[:1], conv_stride[:1])  # (B,)
    h = first.activation(masked_group_norm(h, frames, first.layer_norm))  # (B, C, T0)
    for layer in rest:
        h = layer(h)  # (B, C, T_i)
    return h
