"""Scaled-dot-product attention for WavLM (transformers' WavLM has eager attention only).

WavLM adds a gated relative position bias to the attention logits, which is why transformers
routes it through ``F.multi_head_attention_forward`` with explicit attention weights. Here the
gated bias (plus ``-inf`` on padded keys) goes to ``torch.nn.functional.scaled_dot_product_attention``
as an additive float mask instead. Only the inner attention call changes: the gate, the bias and
every parameter are the library's, so checkpoints and state-dict keys are unchanged.

Written by hand (transformers offers no SDPA path for WavLM). Installed after loading by
swapping the class of every ``WavLMAttention`` to :class:`WavLMSdpaAttention`, a subclass that
overrides only ``torch_multi_head_self_attention``; :func:`set_wavlm_attention` swaps back.
Attention dropout (``attention_dropout``) applies in training mode as in the eager path. On CPU
no fused SDPA kernel takes dropout, so torch runs its math kernel (scores, softmax, dropout,
product); with ``use_fast_dropout`` set (:func:`metaser.models.dropout.set_fast_dropout`, on by
default in training, ``trainer.fast_dropout``) that same math runs here with the PCG64 dropout
mask of :mod:`metaser.models.dropout`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from transformers.models.wavlm.modeling_wavlm import WavLMAttention

from metaser.models.dropout import fast_dropout

__all__ = ["WavLMSdpaAttention", "is_available", "set_wavlm_attention", "wavlm_attention"]


def is_available() -> bool:
    """Whether the installed transformers' WavLMAttention has the method this module replaces."""
    return callable(getattr(WavLMAttention, "torch_multi_head_self_attention", None))


class WavLMSdpaAttention(WavLMAttention):
    """WavLMAttention whose inner attention runs through ``F.scaled_dot_product_attention``."""

    use_fast_dropout = False  # CPU training: the math kernel with metaser's dropout mask

    def torch_multi_head_self_attention(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None,
        gated_position_bias: torch.Tensor,
    ) -> tuple[torch.Tensor, None]:
        """hidden_states (B, T, E); attention_mask (B, T), 1 = valid key, or None;
        gated_position_bias (B*H, T, T) -> (attention output (B, T, E), None: no weights)."""
        b, t, e = hidden_states.shape
        h, d = self.num_heads, self.head_dim
        q = self.q_proj(hidden_states).view(b, t, h, d).transpose(1, 2)  # (B, H, T, d)
        k = self.k_proj(hidden_states).view(b, t, h, d).transpose(1, 2)  # (B, H, T, d)
        v = self.v_proj(hidden_states).view(b, t, h, d).transpose(1, 2)  # (B, H, T, d)
        bias = gated_position_bias.view(b, h, t, t).to(q.dtype)  # (B, H, T, T)
        if attention_mask is not None:
            padded = attention_mask.ne(1)[:, None, None, :]  # (B, 1, 1, T) key padding
            bias = bias.masked_fill(padded, float("-inf"))
        p = self.dropout if self.training else 0.0
        if p > 0.0 and self.use_fast_dropout and q.device.type == "cpu":  # torch's CPU SDPA: this math
            scores = torch.matmul(q, k.transpose(-1, -2)).mul_(d**-0.5).add_(bias)  # (B, H, T, T)
            out = torch.matmul(fast_dropout(scores.softmax(-1), p), v)  # (B, H, T, d)
        else:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=p)  # (B, H, T, d)
        out = out.transpose(1, 2).reshape(b, t, e)  # (B, T, E)
        return self.out_proj(out), None


def set_wavlm_attention(model: nn.Module, implementation: str) -> int:
    """Switch every WavLM attention module of ``model`` to ``sdpa`` or ``eager``; returns how many."""
    if implementation not in ("sdpa", "eager"):
        raise ValueError(f"WavLM attention: 'sdpa' or 'eager', got {implementation!r}")
    cls = WavLMSdpaAttention if implementation == "sdpa" else WavLMAttention
    n = 0
    for module in model.modules():
        if isinstance(module, WavLMAttention):
            module.__class__ = cls
            n += 1
    return n


def wavlm_attention(model: nn.Module) -> str:
    """``sdpa`` if the model's WavLM attention modules use :class:`WavLMSdpaAttention`, else ``eager``."""
    kinds = {type(m) is WavLMSdpaAttention for m in model.modules() if isinstance(m, WavLMAttention)}
    return "sdpa" if kinds == {True} else "eager"
