"""Stage-1 loss = sum_k w_k L_k; stage-2 loss = CE(emotion)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from metaser.boundary import Waveforms
from metaser.data.batch import Batch
from metaser.models.output import MetaSEROutput
from metaser.training.losses import AuxiliaryLoss, EmotionLoss, ctc_loss


def _fake(B=3, T=20, V=6):
    g = torch.Generator().manual_seed(0)
    out = MetaSEROutput(
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


# --------------------------------------------------------------------------- regression, soft labels
def _ccc_by_hand(x: list[float], y: list[float]) -> float:
    n = len(x)
    mx, my = sum(x) / n, sum(y) / n
    vx = sum((a - mx) ** 2 for a in x) / n
    vy = sum((b - my) ** 2 for b in y) / n
    cov = sum((a - mx) * (b - my) for a, b in zip(x, y)) / n
    return 2 * cov / (vx + vy + (mx - my) ** 2)


def test_ccc_loss_by_hand_ignores_unknown_targets():
    from metaser.training.losses import ccc_loss

    pred = torch.tensor([2.0, 3.5, 1.0, 4.0, 9.0], requires_grad=True)
    target = torch.tensor([2.5, 3.0, 1.5, 5.0, float("nan")])  # the last one is unknown
    # by hand: x = 2, 3.5, 1, 4; y = 2.5, 3, 1.5, 5: means 2.625 / 3.0, var_x 1.421875, var_y 1.625,
    # cov 1.375 -> CCC = 2.75 / (1.421875 + 1.625 + 0.140625) = 44 / 51
    assert _ccc_by_hand([2, 3.5, 1, 4], [2.5, 3, 1.5, 5]) == pytest.approx(44 / 51)
    loss = ccc_loss(pred, target)
    assert loss.item() == pytest.approx(1 - 44 / 51, abs=1e-6)
    loss.backward()
    assert torch.isfinite(pred.grad).all() and pred.grad[4] == 0  # the unknown value gets no gradient


def test_ccc_loss_edge_cases():
    from metaser.training.losses import ccc_loss

    # fewer than 2 known values: 0, with a (zero) gradient
    pred = torch.tensor([3.0, 1.0], requires_grad=True)
    loss = ccc_loss(pred, torch.tensor([2.0, float("nan")]))
    assert loss.item() == 0.0
    loss.backward()
    assert torch.equal(pred.grad, torch.zeros(2))
    # targets constant, predictions vary: cov = 0 -> CCC = 0, loss 1
    assert ccc_loss(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([2.0, 2.0, 2.0])).item() == pytest.approx(1.0)
    # predictions and targets one and the same constant: zero denominator -> CCC = 1, loss 0, finite gradient
    pred = torch.tensor([3.0, 3.0, 3.0], requires_grad=True)
    loss = ccc_loss(pred, torch.tensor([3.0, 3.0, 3.0]))
    assert loss.item() == 0.0
    loss.backward()
    assert torch.isfinite(pred.grad).all()
    # perfect agreement -> 0; a constant shift is penalised (unlike Pearson's r)
    y = torch.tensor([1.0, 2.0, 4.0])
    assert ccc_loss(y.clone(), y).item() == pytest.approx(0.0, abs=1e-7)
    assert ccc_loss(y + 1.0, y).item() > 0.2


def test_aux_loss_weights_a_regression_task_with_one_minus_ccc():
    out, batch = _fake()
    out.task_values["arousal"] = torch.tensor([2.0, 3.5, 1.0])
    batch.targets["arousal"] = torch.tensor([2.5, 3.0, float("nan")])
    lo = AuxiliaryLoss({"gender": 0.5, "arousal": 2.0})(out, batch)
    g = F.cross_entropy(out.task_logits["gender"][:2], batch.targets["gender"][:2])
    ccc = _ccc_by_hand([2.0, 3.5], [2.5, 3.0])
    assert lo.parts["arousal"].item() == pytest.approx(1 - ccc, abs=1e-6)
    assert lo.total.item() == pytest.approx(0.5 * g.item() + 2.0 * (1 - ccc), rel=1e-5)


def test_regression_main_loss_reads_the_main_value():
    from metaser.training.losses import RegressionLoss

    out, batch = _fake()
    out.main_value = torch.tensor([1.0, 2.0, 4.0])
    batch.targets["arousal"] = torch.tensor([1.5, 2.0, 3.0])
    lo = RegressionLoss("arousal")(out, batch)
    assert set(lo.parts) == {"arousal"}
    assert lo.total.item() == pytest.approx(1 - _ccc_by_hand([1, 2, 4], [1.5, 2, 3]), abs=1e-6)


def test_soft_emotion_loss_is_cross_entropy_against_the_distribution():
    from metaser.training.losses import EmotionLoss, SoftEmotionLoss

    out, batch = _fake()
    dist = torch.tensor([[0.5, 0.5, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]])  # row 3: nothing known
    batch.emotion_dist = dist
    lo = SoftEmotionLoss()(out, batch)
    logp = out.emotion_logits.log_softmax(-1)
    by_hand = (-(0.5 * logp[0, 0] + 0.5 * logp[0, 1]) - logp[1, 1]) / 2
    assert lo.total.item() == pytest.approx(by_hand.item(), rel=1e-6)
    # one-hot targets: the hard cross-entropy of Eq. (2)
    batch.emotion_dist = F.one_hot(batch.targets["emotion"], 4).float()
    hard = EmotionLoss()(out, batch).total
    assert SoftEmotionLoss()(out, batch).total.item() == pytest.approx(hard.item(), rel=1e-6)
    batch.emotion_dist = None
    with pytest.raises(RuntimeError, match="vote distribution"):
        SoftEmotionLoss()(out, batch)
