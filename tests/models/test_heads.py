"""Task heads: masked mean pooling, classification and CTC heads, the baseline head."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from metaser.models.heads import BaselineHead, ClassificationHead, CTCHead, masked_mean


def frames_and_mask():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 5, 6, generator=g)  # (B, T, D)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0]], dtype=torch.bool)
    return x, mask


def test_masked_mean_exact_values():
    x = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]]])  # (1, 3, 2)
    mask = torch.tensor([[True, True, False]])
    assert masked_mean(x, mask).tolist() == [[2.0, 3.0]]


def test_masked_mean_all_zero_mask_gives_zeros_not_nan():
    x = torch.randn(2, 4, 3)
    mask = torch.zeros(2, 4, dtype=torch.bool)
    out = masked_mean(x, mask)
    assert torch.equal(out, torch.zeros(2, 3))


def test_classification_head_structure_and_padding():
    x, mask = frames_and_mask()
    head = ClassificationHead(6, 8, 3, dropout=0.5).eval()
    out = head(x, mask)
    assert out.logits.shape == (2, 3) and out.hidden.shape == (2, 8)
    pooled = torch.stack([x[0].mean(0), x[1, :2].mean(0)])
    hidden = F.relu(head.hidden(pooled))
    torch.testing.assert_close(out.hidden, hidden)
    torch.testing.assert_close(out.logits, head.out(hidden))
    assert bool((out.hidden >= 0).all())
    x2 = x.clone()
    x2[1, 2:] = 1e3  # padded frames must not matter
    torch.testing.assert_close(head(x2, mask).logits, out.logits)


def test_ctc_head_log_probs_float32_and_hidden_mean():
    x, mask = frames_and_mask()
    head = CTCHead(6, 8, 5, dropout=0.0).to(torch.bfloat16)
    out = head(x.to(torch.bfloat16), mask)
    assert out.log_probs.shape == (2, 5, 5) and out.log_probs.dtype == torch.float32
    torch.testing.assert_close(out.log_probs.exp().sum(-1), torch.ones(2, 5))
    assert out.hidden_frames.shape == (2, 5, 8) and out.hidden.shape == (2, 8)
    torch.testing.assert_close(out.hidden[1], out.hidden_frames[1, :2].mean(0))


def test_baseline_head_is_one_linear_on_the_masked_mean():
    x, mask = frames_and_mask()
    head = BaselineHead(6, 4)
    assert len(list(head.parameters())) == 2
    torch.testing.assert_close(head(x, mask), head.out(masked_mean(x, mask)))
