"""metaser's CPU dropout (PCG64 masks) against the dropout it replaces."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from metaser.models.config import EncoderConfig
from metaser.models.dropout import FastDropout, dropout_mask, fast_dropout, set_fast_dropout
from metaser.models.encoder import SSLEncoder, preset_config
from tests.models.helpers import make_batch


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_drop_rate_is_p(p):
    torch.manual_seed(0)
    n = 2_000_001  # odd: the last 64-bit draw is half used
    dropped = (~dropout_mask((n,), p)).double().mean().item()
    assert abs(dropped - p) < 5 * math.sqrt(p * (1 - p) / n)


def test_masks_are_uncorrelated_across_positions_and_calls():
    torch.manual_seed(0)
    a, b = dropout_mask((1000, 1000), 0.5).double(), dropout_mask((1000, 1000), 0.5).double()
    assert abs(((a - 0.5) * (b - 0.5)).mean()) < 5 * 0.25 / 1000  # two calls: independent
    # neighbours (the two 32-bit halves of one 64-bit draw, and the next draw) are independent too
    flat = a.flatten() - 0.5
    for lag in (1, 2, 3):
        assert abs((flat[:-lag] * flat[lag:]).mean()) < 5 * 0.25 / 1000


def test_forward_and_backward_are_dropout():
    torch.manual_seed(3)
    x = torch.randn(64, 50, requires_grad=True)
    y = fast_dropout(x, 0.25)
    kept = y != 0
    torch.testing.assert_close(y[kept], x[kept] * (1 / 0.75), rtol=0, atol=0)  # kept: scaled as torch does
    assert 0.15 < 1 - kept.double().mean() < 0.35
    g = torch.randn_like(y)
    y.backward(g)
    torch.testing.assert_close(x.grad, torch.where(kept, g * (1 / 0.75), 0.0), rtol=0, atol=0)


def test_seeded_repeatable_identity_off_training_and_cuda_fallback(monkeypatch):
    x = torch.randn(8, 300)
    torch.manual_seed(7)
    a = fast_dropout(x, 0.1)
    torch.manual_seed(7)
    assert torch.equal(fast_dropout(x, 0.1), a)
    assert not torch.equal(fast_dropout(x, 0.1), a)  # the generator moved on
    assert fast_dropout(x, 0.1, training=False) is x and fast_dropout(x, 0.0) is x
    calls = []
    monkeypatch.setattr("metaser.models.dropout.F.dropout", lambda *a, **k: calls.append(a[1]) or a[0])
    assert fast_dropout(x, 1.0) is x and calls == [1.0]  # p = 1 (and CUDA tensors) go to torch's dropout


def test_activation_checkpointing_recomputes_the_same_masks():
    w = torch.randn(40, 40, requires_grad=True)
    x = torch.randn(16, 40)

    def block(h):
        return fast_dropout(torch.tanh(h @ w), 0.3) @ w

    grads = []
    for ckpt in (False, True):
        torch.manual_seed(11)
        out = checkpoint(block, x, use_reentrant=False) if ckpt else block(x)
        (g,) = torch.autograd.grad(out.pow(2).sum(), w)
        grads.append(g)
    torch.testing.assert_close(grads[1], grads[0], rtol=0, atol=0)


def test_set_fast_dropout_swaps_every_dropout_and_back():
    enc = SSLEncoder.from_pretrained(EncoderConfig(name_or_path="tiny-wavlm"))
    before = list(enc.state_dict())
    n_dropout = sum(type(m) is nn.Dropout for m in enc.modules())
    n_attn = enc.num_layers
    assert set_fast_dropout(enc, True) == n_dropout + n_attn > n_attn
    assert not any(type(m) is nn.Dropout for m in enc.modules())
    assert all(m.use_fast_dropout for m in enc.modules() if hasattr(m, "use_fast_dropout"))
    assert list(enc.state_dict()) == before
    assert set_fast_dropout(enc, False) == n_dropout + n_attn
    assert not any(isinstance(m, FastDropout) for m in enc.modules())
    assert not any(m.use_fast_dropout for m in enc.modules() if hasattr(m, "use_fast_dropout"))


def test_wavlm_attention_dropout_is_the_math_kernel_with_the_mask():
    """Training with attention dropout: softmax(q k^T / sqrt(d) + bias) * mask / (1 - p) @ v."""
    d = {**preset_config("tiny-wavlm").to_dict(), "attention_dropout": 0.3}
    torch.manual_seed(5)
    enc = SSLEncoder.from_hf_config(d, EncoderConfig(name_or_path="tiny-wavlm", attn_implementation="sdpa"))
    set_fast_dropout(enc, True)
    attn = enc.model.encoder.layers[0].attention
    attn.train()
    b, t, e, h = 2, 9, attn.embed_dim, attn.num_heads
    x = torch.randn(b, t, e)
    mask = torch.ones(b, t, dtype=torch.long)
    mask[1, 6:] = 0
    bias = torch.randn(b * h, t, t)
    torch.manual_seed(1)
    got, _ = attn.torch_multi_head_self_attention(x, mask, bias)

    def split(proj):
        return proj(x).view(b, t, h, -1).transpose(1, 2)  # (B, H, T, d)

    q, k, v = split(attn.q_proj), split(attn.k_proj), split(attn.v_proj)
    logits = q @ k.transpose(-1, -2) / math.sqrt(attn.head_dim) + bias.view(b, h, t, t)
    logits = logits.masked_fill(mask[:, None, None, :] == 0, float("-inf"))
    torch.manual_seed(1)
    keep = dropout_mask((b, h, t, t), 0.3)
    want = attn.out_proj(((logits.softmax(-1) * keep / 0.7) @ v).transpose(1, 2).reshape(b, t, e))
    torch.testing.assert_close(got, want, rtol=0, atol=1e-5)
    assert not torch.equal(keep, torch.ones_like(keep))


def test_encoder_in_eval_is_unchanged():
    waves, lengths = make_batch([9000, 5000])
    enc = SSLEncoder.from_pretrained(EncoderConfig(name_or_path="tiny-wavlm")).eval()
    with torch.no_grad():
        a = enc(waves, lengths).hidden_states
        set_fast_dropout(enc, True)
        b = enc(waves, lengths).hidden_states
    assert all(torch.equal(x, y) for x, y in zip(a, b))
