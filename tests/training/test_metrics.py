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
