"""Evaluation metrics, all derived from one confusion matrix so they can never disagree.

Definitions (peers swap the names, so every report states them):
- UA (unweighted accuracy) = mean over classes of per-class recall = balanced accuracy.
  Classes with no reference utterance in the evaluated set are left out of the mean.
- WA (weighted accuracy)   = overall accuracy = correct / total.
- macro-F1 = mean over classes (with support) of per-class F1.
- CER / WER = edit distance / reference length over the whole set (torchmetrics), from
  greedy CTC decoding.

Regression tasks (valence, arousal, ...), over the utterances with a known value:
- CCC (concordance correlation coefficient, Lin 1989) = 2 cov(x, y) / (var x + var y +
  (mean x - mean y)^2) with population (1/N) moments. With fewer than 2 values it is 0 (no
  measured agreement); when the denominator is 0 (predictions and targets one and the same
  constant) it is 1. MAE = mean |x - y|.

Soft emotion targets (``emotion_target: soft``):
- KL = the mean over utterances of KL(target || predicted) = sum_c t_c (log t_c - log p_c)
  (0 log 0 = 0), over the utterances whose target is an annotator vote distribution: those
  that fell back to their label's one-hot are left out.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torchmetrics import Metric
from torchmetrics.classification import MulticlassConfusionMatrix
from torchmetrics.text import CharErrorRate, WordErrorRate

UA_WA_DEFINITION = "UA = mean per-class recall (balanced accuracy); WA = overall accuracy (correct / total)."
CCC_DEFINITION = (
    "CCC = 2 cov(x, y) / (var x + var y + (mean x - mean y)^2), population moments, over the utterances "
    "with a value; MAE = mean |x - y|."
)
KL_DEFINITION = "KL = mean KL(annotator vote distribution || predicted probabilities) over the utterances with votes."


def ccc_from_moments(
    mean_x: torch.Tensor, mean_y: torch.Tensor, var_x: torch.Tensor, var_y: torch.Tensor, cov: torch.Tensor
) -> torch.Tensor:
    """Lin's CCC from population moments; 1 where the denominator is 0 (x and y one and the
    same constant). Differentiable (no NaN gradient at a zero denominator)."""
    denom = var_x + var_y + (mean_x - mean_y) ** 2
    ok = denom > 0
    safe = torch.where(ok, denom, torch.ones_like(denom))
    return torch.where(ok, 2 * cov / safe, torch.ones_like(denom))


def concordance(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """CCC of two (N,) tensors (centered population moments); 0 for N < 2."""
    if x.numel() < 2:
        return (x.sum() + y.sum()) * 0.0
    mx, my = x.mean(), y.mean()
    dx, dy = x - mx, y - my
    return ccc_from_moments(mx, my, (dx * dx).mean(), (dy * dy).mean(), (dx * dy).mean())


def regression_scores(preds: Sequence[float], targets: Sequence[float | None]) -> dict[str, float]:
    """``{"ccc", "mae", "num_utterances"}`` over the pairs with a target (float64); {} when none."""
    pairs = [(float(p), float(t)) for p, t in zip(preds, targets) if t is not None and t == t]
    if not pairs:
        return {}
    x = torch.tensor([p for p, _ in pairs], dtype=torch.float64)
    y = torch.tensor([t for _, t in pairs], dtype=torch.float64)
    return {
        "ccc": float(concordance(x, y)),
        "mae": float((x - y).abs().mean()),
        "num_utterances": len(pairs),
    }


def kl_divergence(target: torch.Tensor, log_probs: torch.Tensor) -> torch.Tensor:
    """KL(target || p) per row: target (B, C) distributions, log_probs (B, C) -> (B,); 0 log 0 = 0."""
    t = target.double()
    logt = torch.where(t > 0, t, torch.ones_like(t)).log()
    return torch.where(t > 0, t * (logt - log_probs.double()), torch.zeros_like(t)).sum(-1)


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


class RegressionMetric(Metric):
    """Accumulates the sums behind CCC and MAE (float64) over the values with a target (NaN
    targets are skipped); reports ``{"ccc", "mae"}`` ({} before any value)."""

    full_state_update = False

    def __init__(self) -> None:
        super().__init__()
        for name in ("n", "sx", "sy", "sxx", "syy", "sxy", "sae"):
            self.add_state(name, default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:  # (B,), (B,)
        keep = ~torch.isnan(target)
        x, y = preds.detach()[keep].double(), target[keep].double()
        self.n += x.numel()
        self.sx += x.sum()
        self.sy += y.sum()
        self.sxx += (x * x).sum()
        self.syy += (y * y).sum()
        self.sxy += (x * y).sum()
        self.sae += (x - y).abs().sum()

    def compute(self) -> dict[str, float]:
        n = float(self.n)
        if n == 0:
            return {}
        mae = float(self.sae / n)
        if n < 2:
            return {"ccc": 0.0, "mae": mae}
        mx, my = self.sx / n, self.sy / n
        vx, vy = (self.sxx / n - mx * mx).clamp_min(0), (self.syy / n - my * my).clamp_min(0)
        return {"ccc": float(ccc_from_moments(mx, my, vx, vy, self.sxy / n - mx * my)), "mae": mae}


class KLMetric(Metric):
    """Mean KL(target || predicted) over the rows marked ``voted`` (see :func:`kl_divergence`)."""

    full_state_update = False

    def __init__(self) -> None:
        super().__init__()
        self.add_state("total", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("n", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, logits: torch.Tensor, target: torch.Tensor, voted: torch.Tensor) -> None:  # (B,C),(B,C),(B,)
        kl = kl_divergence(target[voted], logits.detach()[voted].float().log_softmax(-1))
        self.total += kl.sum()
        self.n += kl.numel()

    def compute(self) -> dict[str, float]:
        return {"kl": float(self.total / self.n)} if float(self.n) > 0 else {}


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
