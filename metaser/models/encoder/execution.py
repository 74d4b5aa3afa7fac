"""The part of a wav2vec2-family HF model after the CNN, run in pieces exactly as HF runs it.

Mirrors ``*Model.forward`` and ``*Encoder.forward`` / ``*EncoderStableLayerNorm.forward`` of
transformers' wav2vec2, HuBERT, WavLM and data2vec-audio (read from the installed version):

1. feature projection (HuBERT's returns a tensor, the others ``(hidden, normed_features)``);
   HF's SpecAugment masking is skipped: metaser forces it off;
2. with an attention mask, padded frames are zeroed before the positional convolution (with
   ``independent=True`` also between the convolutions of a stacked positional embedding, as
   data2vec-audio has: HF zeroes them before the first one only, so padding would leak into the
   valid frames near an utterance's end);
3. ``hidden + pos_conv_embed(hidden)``, then the encoder's layer norm for post-LN encoders
   (stable-layer-norm encoders apply theirs after the last layer, which is not one of our
   outputs), then dropout: this is the input of layer 0;
4. the layers, each given the mask HF gives it: WavLM the frame mask itself (it builds a key
   padding mask from it), the others ``create_bidirectional_mask``'s additive / boolean mask for
   their attention implementation. WavLM's layer 0 computes the ungated relative position bias
   ``(B*H, T, T)`` and each later layer receives it (and gates it with its own input);
   :func:`position_bias` recomputes it exactly for a run that starts after layer 0.

Layers are called as modules (``layer(hidden, attention_mask=...)``), so transformers'
gradient checkpointing (``GradientCheckpointingLayer``) and module hooks apply as usual.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["is_wavlm", "embed", "layer_attention_mask", "position_bias", "run_layer"]


def is_wavlm(model: nn.Module) -> bool:
    """True for encoders whose layers pass a relative position bias along (WavLM)."""
    return hasattr(model.encoder.layers[0].attention, "rel_attn_embed")


def _stable_layer_norm(model: nn.Module) -> bool:
    return bool(getattr(model.config, "do_stable_layer_norm", False))


def _positional(model: nn.Module, hidden: torch.Tensor, mask: torch.Tensor | None, independent: bool) -> torch.Tensor:
    """``pos_conv_embed(hidden)`` (B, T, D); with ``independent`` and a stack of positional
    convolutions, padded frames are zeroed again before each of them."""
    pos = model.encoder.pos_conv_embed
    layers = getattr(pos, "layers", None)
    if not (independent and mask is not None and layers is not None and len(layers) > 1):
        return pos(hidden)
    keep = mask[:, None, :].to(hidden.dtype)  # (B, 1, T)
    x = hidden.transpose(1, 2)  # (B, D, T)
    for layer in layers:
        x = layer(x) * keep
    return x.transpose(1, 2)  # (B, T, D)


def embed(
    model: nn.Module, features: torch.Tensor, mask: torch.Tensor | None, independent: bool = False
) -> torch.Tensor:
    """CNN features (B, T, C) -> the input of transformer layer 0 (B, T, D).

    mask: (B, T) bool, True = valid frame, or None (the encoder gets no attention mask).
    """
    hidden = model.feature_projection(features)
    if isinstance(hidden, tuple):  # (projected, layer-normed features)
        hidden = hidden[0]  # (B, T, D)
    if mask is not None:  # HF: hidden_states[~expand_attention_mask] = 0
        hidden = hidden.masked_fill(~mask[..., None], 0.0)
    enc = model.encoder
    hidden = hidden + _positional(model, hidden, mask, independent)  # (B, T, D)
    if not _stable_layer_norm(model):
        hidden = enc.layer_norm(hidden)
    return enc.dropout(hidden)


def layer_attention_mask(model: nn.Module, hidden: torch.Tensor, mask: torch.Tensor | None):
    """The ``attention_mask`` HF passes to every layer, for layer inputs shaped like ``hidden``."""
    if is_wavlm(model):
        return mask  # (B, T) bool or None; WavLMAttention makes the key padding mask itself
    from transformers.masking_utils import create_bidirectional_mask

    return create_bidirectional_mask(config=model.encoder.config, inputs_embeds=hidden, attention_mask=mask)


def position_bias(model: nn.Module, batch: int, frames: int) -> torch.Tensor:
    """WavLM's ungated relative position bias (B*H, T, T), exactly as its layer 0 makes it.

    It depends only on T and layer 0's ``rel_attn_embed``.
    """
    attention = model.encoder.layers[0].attention
    bias = attention.compute_bias(frames, frames)  # (H, T, T)
    return bias.unsqueeze(0).repeat(batch, 1, 1, 1).view(batch * attention.num_heads, frames, frames)


def run_layer(
    model: nn.Module, index: int, hidden: torch.Tensor, attention_mask, bias: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Transformer layer ``index`` on hidden (B, T, D) -> (its output (B, T, D), the WavLM bias or None)."""
    layer = model.encoder.layers[index]
    if not is_wavlm(model):
        return layer(hidden, attention_mask=attention_mask), None
    if _stable_layer_norm(model):
        out = layer(hidden, attention_mask=attention_mask, position_bias=bias)
    else:
        out = layer(hidden, attention_mask=attention_mask, position_bias=bias, index=index)
    return out[0], out[1]
