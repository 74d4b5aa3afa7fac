"""Stage-1 loss = sum_k w_k L_k; stage-2 loss = CE(emotion)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from metaser.boundary import Waveforms
from metaser.data.batch import Batch
from metaser.training.losses import AuxiliaryLoss, EmotionLoss, ctc_loss


def _fake(B=3, T=20, V=6):
    g = torch.Generator().manual_seed(0)
    out = SimpleNamespace(
        emotion_logits=torch.randn(B, 4, generator=g),
        task_logits={"gender": torch.randn(B, 2, generator=g), "style": torch.randn(B, 2, generator=g)},
        ctc_log_probs=torch.randn(B, T, V, generator=g).log_softmax(-1),
        ctc_lengths=torch.tensor([20, 15, 10]),
    )
    batch = Batch(
        inputs=Waveforms(torch.zeros(B, 100), torch.tensor([100, 90, 80])),
        targets={
            "emotion": torch.tensor([0, 1, 3]),
            "gender": torch.tensor([0, 1, -100]),
            "style": torch.tensor([1, 1, 0]),
        },
        ctc_targets=torch.tensor([[1, 2, 3], [2, 2, 0], [4, 0, 0]]),
        ctc_target_lengths=torch.tensor([3, 2, 1]),
    )
    return out, batch


def test_aux_loss_is_the_weighted_sum():
    out, batch = _fake()
    lo = AuxiliaryLoss({"gender": 0.5, "style": 2.0, "asr": 0.3})(out, batch)
    g = F.cross_entropy(out.task_logits["gender"][:2], batch.targets["gender"][:2])
    s = F.cross_entropy(out.task_logits["style"], batch.targets["style"])
    c = F.ctc_loss(
        out.ctc_log_probs.transpose(0, 1),
        batch.ctc_targets,
        out.ctc_lengths,
        batch.ctc_target_lengths,
        blank=0,
        zero_infinity=True,
    )
    assert lo.total.item() == pytest.approx((0.5 * g + 2.0 * s + 0.3 * c).item(), rel=1e-5)
    assert set(lo.parts) == {"gender", "style", "asr"}


def test_emotion_loss_is_plain_cross_entropy():
    out, batch = _fake()
    lo = EmotionLoss()(out, batch)
    assert lo.total.item() == pytest.approx(F.cross_entropy(out.emotion_logits, batch.targets["emotion"]).item())


def test_stage1_needs_a_task():
    with pytest.raises(ValueError, match="at least one auxiliary task"):
        AuxiliaryLoss({})


def test_ctc_zero_infinity_and_empty_transcripts():
    lp = torch.randn(2, 3, 5).log_softmax(-1)  # 3 frames cannot emit 6 labels -> inf -> zeroed
    loss = ctc_loss(lp, torch.tensor([3, 3]), torch.tensor([[1, 2, 3, 4, 1, 2], [0] * 6]), torch.tensor([6, 0]))
    assert torch.isfinite(loss) and loss.item() == 0.0
