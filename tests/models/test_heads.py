"""Task heads: masked mean pooling, classification and CTC heads, the baseline head."""

from __future__ import annotations

import torch

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


def _set(linear: torch.nn.Linear, weight, bias) -> None:
    with torch.no_grad():
        linear.weight.copy_(torch.tensor(weight, dtype=torch.float32))
        linear.bias.copy_(torch.tensor(bias, dtype=torch.float32))


def test_classification_head_values_by_hand_and_padding():
    """Pool -> Linear -> ReLU (= a_k) -> Dropout -> Linear, checked on numbers worked out by hand."""
    head = ClassificationHead(2, 2, 2, dropout=0.5).eval()
    _set(head.hidden, [[1.0, 0.0], [0.0, -1.0]], [0.0, 0.5])
    _set(head.out, [[1.0, 1.0], [2.0, 0.0]], [0.0, -1.0])
    x = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [1e3, 1e3]]])  # (1, 3, 2); the last frame is padding
    mask = torch.tensor([[True, True, False]])
    out = head(x, mask)
    # mean of the valid frames = (2, 3); hidden = relu(2, -3 + 0.5) = (2, 0); logits = (2 + 0, 4 - 1)
    assert out.hidden.tolist() == [[2.0, 0.0]]
    assert out.logits.tolist() == [[2.0, 3.0]]
    head.train()  # dropout acts between a_k and the output layer only: a_k is never dropped
    torch.manual_seed(0)
    outs = [head(x, mask) for _ in range(20)]
    assert all(o.hidden.tolist() == [[2.0, 0.0]] for o in outs)
    assert {tuple(o.logits[0].tolist()) for o in outs} <= {(4.0, 7.0), (0.0, -1.0), (2.0, 3.0), (4.0, 3.0), (0.0, 3.0)}
    assert len({tuple(o.logits[0].tolist()) for o in outs}) > 1


def test_ctc_head_log_probs_float32_and_hidden_mean():
    x, mask = frames_and_mask()
    head = CTCHead(6, 8, 5, dropout=0.0).to(torch.bfloat16)
    out = head(x.to(torch.bfloat16), mask)
    assert out.log_probs.shape == (2, 5, 5) and out.log_probs.dtype == torch.float32
    torch.testing.assert_close(out.log_probs.exp().sum(-1), torch.ones(2, 5))
    assert out.hidden_frames.shape == (2, 5, 8) and out.hidden.shape == (2, 8)
    torch.testing.assert_close(out.hidden[1], out.hidden_frames[1, :2].mean(0))


def test_baseline_head_is_one_linear_on_the_masked_mean():
    head = BaselineHead(2, 1)
    assert len(list(head.parameters())) == 2
    _set(head.out, [[1.0, -2.0]], [0.5])
    x = torch.tensor([[[1.0, 1.0], [3.0, 0.0], [9.0, 9.0]]])  # mean of the 2 valid frames: (2, 0.5)
    assert head(x, torch.tensor([[True, True, False]])).tolist() == [[2.0 - 1.0 + 0.5]]


def test_regression_head_value_by_hand_and_padding():
    """Pool -> Linear -> ReLU (= a_k) -> Dropout -> Linear(1): one value per utterance."""
    from metaser.models.heads import RegressionHead

    head = RegressionHead(2, 2, dropout=0.5).eval()
    _set(head.hidden, [[1.0, 0.0], [0.0, 1.0]], [0.0, -1.0])
    _set(head.out, [[0.5, 2.0]], [1.0])
    x = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [1e3, 1e3]], [[2.0, 0.0], [7.0, 7.0], [7.0, 7.0]]])  # (2, 3, 2)
    mask = torch.tensor([[True, True, False], [True, False, False]])  # padding never counts
    out = head(x, mask)
    # row 1: mean (2, 3) -> hidden relu(2, 2) = (2, 2) -> 0.5 * 2 + 2 * 2 + 1 = 6
    # row 2: mean (2, 0) -> hidden relu(2, -1) = (2, 0) -> 1 + 0 + 1 = 2
    assert out.hidden.tolist() == [[2.0, 2.0], [2.0, 0.0]]
    assert out.value.shape == (2,) and out.value.tolist() == [6.0, 2.0]
