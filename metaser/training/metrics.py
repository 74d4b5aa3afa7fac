"""Evaluation metrics, all derived from one confusion matrix so they can never disagree.

Definitions (peers swap the names, so every report states them):
- UA (unweighted accuracy) = mean over classes of per-class recall = balanced accuracy.
  Classes with no reference utterance in the evaluated set are left out of the mean.
- WA (weighted accuracy)   = overall accuracy = correct / total.
- macro-F1 = mean over classes (with support) of per-class F1.
- CER / WER = edit distance / reference length over the whole set (torchmetrics), from
  greedy CTC decoding.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torchmetrics import Metric
from torchmetrics.classification import MulticlassConfusionMatrix
from torchmetrics.text import CharErrorRate, WordErrorRate

UA_WA_DEFINITION = "UA = mean per-class recall (balanced accuracy); WA = overall accuracy (correct / total)."


def scores_from_confusion(cm: torch.Tensor) -> dict[str, float]:
    """cm: (C, C) counts with rows = reference, columns = prediction."""
    cm = cm.double()
    support = cm.sum(1)  # (C,)
    predicted = cm.sum(0)  # (C,)
    tp = cm.diag()
    present = support > 0
    total = cm.sum()
    recall = torch.where(present, tp / support.clamp_min(1), torch.zeros_like(tp))
    precision = torch.where(predicted > 0, tp / predicted.clamp_min(1), torch.zeros_like(tp))
    f1 = torch.where(precision + recall > 0, 2 * precision * recall / (precision + recall), torch.zeros_like(tp))
    n_present = int(present.sum())
    return {
        "ua": float(recall[present].sum() / n_present) if n_present else 0.0,
        "wa": float(tp.sum() / total) if total > 0 else 0.0,
        "macro_f1": float(f1[present].sum() / n_present) if n_present else 0.0,
        "num_utterances": int(total),
    }


def confusion_from_labels(y_true: Sequence[int], y_pred: Sequence[int], num_classes: int) -> torch.Tensor:
    cm = torch.zeros(num_classes, num_classes, dtype=torch.long)
    for t, p in zip(y_true, y_pred):
        cm[int(t), int(p)] += 1
    return cm


def classification_scores(y_true: Sequence[int], y_pred: Sequence[int], num_classes: int) -> dict:
    cm = confusion_from_labels(y_true, y_pred, num_classes)
    return {**scores_from_confusion(cm), "confusion": cm.tolist()}


class ClassificationMetric(Metric):
    """Accumulates a confusion matrix (ignoring unknown targets) and reports UA/WA/F1."""

    full_state_update = False

    def __init__(self, num_classes: int, ignore_index: int = -100):
        super().__init__()
        self.num_classes = num_classes
        self.cm = MulticlassConfusionMatrix(num_classes, ignore_index=ignore_index)

    def update(self, logits: torch.Tensor, target: torch.Tensor) -> None:  # (B, C), (B,)
        self.cm.update(logits.argmax(-1), target)

    def compute(self) -> dict[str, float]:
        cm = self.cm.compute()
        return scores_from_confusion(cm)

    def confusion(self) -> torch.Tensor:
        return self.cm.compute()

    def reset(self) -> None:
        super().reset()
        self.cm.reset()


class ASRMetric:
    """CER / WER over greedy-decoded hypotheses (strings) against references.

    sync: gather the counts of every DDP process at ``compute`` (validation, where each process
    sees its shard); False for a recomputation from saved predictions in one process.
    """

    def __init__(self, sync: bool = True) -> None:
        self.cer = CharErrorRate(sync_on_compute=sync)
        self.wer = WordErrorRate(sync_on_compute=sync)
        self.n = 0

    def update(self, hyps: list[str], refs: list[str]) -> None:
        pairs = [(h, r) for h, r in zip(hyps, refs) if r]
        if not pairs:
            return
        h, r = zip(*pairs)
        self.cer.update(list(h), list(r))
        self.wer.update(list(h), list(r))
        self.n += len(pairs)

    def compute(self) -> dict[str, float]:
        if self.n == 0:
            return {}
        return {"cer": float(self.cer.compute()), "wer": float(self.wer.compute())}

    def reset(self) -> None:
        self.cer.reset()
        self.wer.reset()
        self.n = 0
