"""Task fusion: co-attention (our formulation, docs/method.md), concat ("w/o Co"), none; emotion head."""

from __future__ import annotations

import math

import pytest
import torch

from metaser.errors import ConfigError
from metaser.models.coattention import (
    CoAttentionFusion,
    ConcatTaskFusion,
    EmotionHead,
    GuidedPoolingFusion,
    PooledFramesFusion,
    build_task_fusion,
)
from metaser.models.heads import masked_mean

B, T, D, H, K = 2, 6, 5, 4, 3


def inputs(dtype=torch.float64):
    g = torch.Generator().manual_seed(5)
    x = torch.randn(B, T, D, generator=g, dtype=dtype)
    a = torch.randn(B, K, H, generator=g, dtype=dtype)
    mask = torch.tensor([[True] * 6, [True] * 4 + [False] * 2])
    return x, mask, a


def reference(m: CoAttentionFusion, x, mask, a):
    """The docstring's formulas, written out with explicit loops."""
    out, alphas, betas = [], [], []
    for b in range(B):
        valid = [t for t in range(T) if mask[b, t]]
        u = [m.frame_proj(x[b, t]) for t in range(T)]
        e, alpha_b = [], torch.zeros(K, T, dtype=x.dtype)
        for k in range(K):
            q = m.t2f_query(a[b, k])
            s = torch.stack([q @ m.t2f_key(u[t]) / math.sqrt(H) for t in valid])
            w = torch.softmax(s, 0)
            alpha_b[k, valid] = w
            e.append(sum(w[j] * m.t2f_value(u[t]) for j, t in enumerate(valid)))
        beta_b = torch.zeros(T, K, dtype=x.dtype)
        gated = []
        for t in valid:
            q = m.gate.f2t_query(u[t])
            s = torch.stack([q @ m.gate.f2t_key(a[b, k]) / math.sqrt(H) for k in range(K)])
            w = torch.softmax(s, 0)
            beta_b[t] = w
            c = sum(w[k] * m.gate.f2t_value(a[b, k]) for k in range(K))
            gated.append(u[t] * torch.sigmoid(c))
        u_bar = torch.stack(gated).mean(0)
        out.append(torch.cat([u_bar, *e, *a[b]]))
        alphas.append(alpha_b)
        betas.append(beta_b)
    return torch.stack(out), torch.stack(alphas), torch.stack(betas)


def test_coattention_matches_the_documented_formulas():
    m = CoAttentionFusion(D, H, K).double()
    x, mask, a = inputs()
    out = m(x, mask, a)
    z, alpha, beta = reference(m, x, mask, a)
    assert out.features.shape == (B, (2 * K + 1) * H) and m.output_dim == (2 * K + 1) * H
    torch.testing.assert_close(out.features, z, rtol=0, atol=1e-10)
    torch.testing.assert_close(out.attentions["task_to_frame"], alpha, rtol=0, atol=1e-12)
    torch.testing.assert_close(out.attentions["frame_to_task"], beta, rtol=0, atol=1e-12)


def test_attention_maps_are_distributions_over_valid_entries():
    m = CoAttentionFusion(D, H, K)
    x, mask, a = inputs(torch.float32)
    att = m(x, mask, a).attentions
    t2f, f2t = att["task_to_frame"], att["frame_to_task"]
    assert t2f.shape == (B, K, T) and f2t.shape == (B, T, K)
    torch.testing.assert_close(t2f.sum(-1), torch.ones(B, K))
    assert torch.equal(t2f[1, :, 4:], torch.zeros(K, 2))
    torch.testing.assert_close(f2t.sum(-1), mask.float())


def test_coattention_ignores_padded_frames():
    m = CoAttentionFusion(D, H, K)
    x, mask, a = inputs(torch.float32)
    x2 = x.clone()
    x2[1, 4:] = 50.0
    torch.testing.assert_close(m(x2, mask, a).features, m(x, mask, a).features)


def test_coattention_without_tasks_is_the_pooled_projection():
    m = CoAttentionFusion(D, H, 0)
    x, mask, _ = inputs(torch.float32)
    out = m(x, mask, None)
    assert m.output_dim == H and out.attentions == {}
    torch.testing.assert_close(out.features, masked_mean(m.frame_proj(x), mask))


def test_concat_and_none_variants():
    x, mask, a = inputs(torch.float32)
    cat = ConcatTaskFusion(D, H, K)
    z = cat(x, mask, a).features
    assert cat.output_dim == (K + 1) * H and z.shape == (B, (K + 1) * H)
    torch.testing.assert_close(z[:, :H], masked_mean(cat.frame_proj(x), mask))
    torch.testing.assert_close(z[:, H:], a.flatten(1))
    none = PooledFramesFusion(D, H, K)
    z = none(x, mask, a).features
    assert none.output_dim == H
    torch.testing.assert_close(z, masked_mean(none.frame_proj(x), mask))


def test_guided_is_the_literal_reading_pooled_gated_frames_then_task_hidden_layers():
    """fusion.tasks=guided: z = [mean_t U_t * sigmoid(c_t) ; a_1..a_K], c_t from frame-to-task attention."""
    m = GuidedPoolingFusion(D, H, K).double()
    x, mask, a = inputs()
    out = m(x, mask, a)
    assert m.output_dim == (K + 1) * H and out.features.shape == (B, (K + 1) * H)
    for b in range(B):
        valid = [t for t in range(T) if mask[b, t]]
        gated = []
        for t in valid:
            u = m.frame_proj(x[b, t])
            s = torch.stack([m.gate.f2t_query(u) @ m.gate.f2t_key(a[b, k]) / math.sqrt(H) for k in range(K)])
            w = torch.softmax(s, 0)
            c = sum(w[k] * m.gate.f2t_value(a[b, k]) for k in range(K))
            gated.append(u * torch.sigmoid(c))
        expected = torch.cat([torch.stack(gated).mean(0), a[b].flatten()])
        torch.testing.assert_close(out.features[b], expected, rtol=0, atol=1e-10)
    assert torch.equal(out.attentions["frame_to_task"][1, 4:], torch.zeros(2, K, dtype=torch.float64))
    assert "task_to_frame" not in out.attentions
    none = GuidedPoolingFusion(D, H, 0)
    torch.testing.assert_close(none(x.float(), mask, None).features, masked_mean(none.frame_proj(x.float()), mask))


def test_emotion_head_two_fc_layers_with_dropout():
    head = EmotionHead(12, 7, 4, dropout=0.2)
    linears = [m for m in head.modules() if isinstance(m, torch.nn.Linear)]
    drops = [m for m in head.modules() if isinstance(m, torch.nn.Dropout)]
    assert [(m.in_features, m.out_features) for m in linears] == [(12, 7), (7, 4)]
    assert [d.p for d in drops] == [0.2]
    assert head(torch.randn(3, 12)).shape == (3, 4)


def test_factory_and_wrong_task_count():
    assert isinstance(build_task_fusion("coattention", D, H, K), CoAttentionFusion)
    assert isinstance(build_task_fusion("concat", D, H, K), ConcatTaskFusion)
    assert isinstance(build_task_fusion("guided", D, H, K), GuidedPoolingFusion)
    assert isinstance(build_task_fusion("none", D, H, K), PooledFramesFusion)
    with pytest.raises(ConfigError, match="fusion.tasks"):
        build_task_fusion("cross", D, H, K)
    x, mask, a = inputs(torch.float32)
    with pytest.raises(ValueError, match="expected 3 task hidden layers"):
        CoAttentionFusion(D, H, K)(x, mask, a[:, :2])
