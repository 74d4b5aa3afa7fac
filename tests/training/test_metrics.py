"""UA / WA / F1 from a confusion matrix, and CER / WER."""

from __future__ import annotations

import pytest
import torch

from metaser.training.metrics import ASRMetric, ClassificationMetric, classification_scores, scores_from_confusion


def test_ua_is_mean_recall_and_wa_is_accuracy():
    # class 0: 8/10 correct, class 1: 1/2 correct -> UA = (0.8 + 0.5) / 2, WA = 9/12
    y_true = [0] * 10 + [1] * 2
    y_pred = [0] * 8 + [1] * 2 + [1, 0]
    s = classification_scores(y_true, y_pred, 2)
    assert s["ua"] == pytest.approx(0.65)
    assert s["wa"] == pytest.approx(9 / 12)
    assert s["confusion"] == [[8, 2], [1, 1]]
    # F1: class 0 p=8/9 r=0.8; class 1 p=1/3 r=0.5
    f0 = 2 * (8 / 9) * 0.8 / (8 / 9 + 0.8)
    f1 = 2 * (1 / 3) * 0.5 / (1 / 3 + 0.5)
    assert s["macro_f1"] == pytest.approx((f0 + f1) / 2)


def test_classes_without_reference_are_left_out_of_ua():
    cm = torch.tensor([[3, 1, 0], [0, 2, 0], [0, 0, 0]])
    assert scores_from_confusion(cm)["ua"] == pytest.approx((0.75 + 1.0) / 2)


def test_classification_metric_ignores_unknown_targets():
    m = ClassificationMetric(3)
    logits = torch.tensor([[5.0, 0, 0], [0, 5.0, 0], [0, 0, 5.0], [5.0, 0, 0]])
    m.update(logits, torch.tensor([0, 1, 0, -100]))
    s = m.compute()
    assert s["num_utterances"] == 3
    assert s["wa"] == pytest.approx(2 / 3)
    assert s["ua"] == pytest.approx((0.5 + 1.0) / 2)


def test_cer_wer():
    m = ASRMetric()
    m.update(["the cat sat", "dog"], ["the cat sat", "dogs"])
    s = m.compute()
    assert s["wer"] == pytest.approx(1 / 4)
    assert s["cer"] == pytest.approx(1 / 15)
    m.reset()
    assert m.compute() == {}


def test_regression_metric_ccc_and_mae_by_hand():
    from metaser.training.metrics import RegressionMetric, regression_scores

    m = RegressionMetric()
    with pytest.warns(UserWarning, match="before the ``update``"):
        assert m.compute() == {}  # nothing seen
    m.update(torch.tensor([2.0, 3.5]), torch.tensor([2.5, 3.0]))
    m.update(torch.tensor([1.0, 4.0, 7.0]), torch.tensor([1.5, 5.0, float("nan")]))  # NaN: unknown, skipped
    s = m.compute()
    # x = 2, 3.5, 1, 4; y = 2.5, 3, 1.5, 5: CCC = 2 * 1.375 / (1.421875 + 1.625 + 0.140625) = 44 / 51;
    # MAE = (0.5 + 0.5 + 0.5 + 1) / 4
    assert s["ccc"] == pytest.approx(44 / 51)
    assert s["mae"] == pytest.approx(0.625)
    rows = regression_scores([2.0, 3.5, 1.0, 4.0, 7.0], [2.5, 3.0, 1.5, 5.0, None])
    assert rows["ccc"] == pytest.approx(44 / 51) and rows["mae"] == pytest.approx(0.625)
    assert rows["num_utterances"] == 4
    assert regression_scores([1.0], [None]) == {}
    one = RegressionMetric()
    one.update(torch.tensor([2.0]), torch.tensor([3.0]))
    assert one.compute() == {"ccc": 0.0, "mae": 1.0}  # fewer than 2 values: CCC 0
    same = regression_scores([3.0, 3.0], [3.0, 3.0])
    assert same["ccc"] == 1.0 and same["mae"] == 0.0  # one and the same constant: CCC 1


def test_kl_metric_by_hand_leaves_out_the_fallback_rows():
    import math

    from metaser.training.metrics import KLMetric, kl_divergence

    logits = torch.tensor([[0.0, 0.0], [math.log(3.0), 0.0], [5.0, -5.0]])  # p = (.5,.5), (.75,.25), ...
    target = torch.tensor([[1.0, 0.0], [0.5, 0.5], [0.0, 1.0]])
    voted = torch.tensor([True, True, False])  # the last row fell back to its one-hot: left out
    m = KLMetric()
    m.update(logits, target, voted)
    # KL(t||p) = sum t log(t/p): row 1: log(1/0.5); row 2: 0.5 log(0.5/0.75) + 0.5 log(0.5/0.25)
    k1 = math.log(2.0)
    k2 = 0.5 * math.log(0.5 / 0.75) + 0.5 * math.log(2.0)
    assert m.compute()["kl"] == pytest.approx((k1 + k2) / 2, rel=1e-6)
    per_row = kl_divergence(target, logits.log_softmax(-1))
    assert per_row[:2].tolist() == pytest.approx([k1, k2], rel=1e-6)
    empty = KLMetric()
    empty.update(logits, target, torch.zeros(3, dtype=torch.bool))
    assert empty.compute() == {}
