"""The one place where task losses are computed and weighted.

Stage 1 (auxiliary):  L = sum_k w_k L_k over the enabled auxiliary tasks (Eq. 1, :class:`AuxiliaryLoss`;
                      cross-entropy for classification tasks, 1 - CCC for regression tasks, CTC for ASR).
Stage 2 / one-stage:  L = CE(emotion) (Eq. 2, :class:`EmotionLoss`); metaser's variants: CE against
                      the annotators' vote distribution (:class:`SoftEmotionLoss`, ``emotion_target:
                      soft``) and 1 - CCC for a regression main task (:class:`RegressionLoss`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from metaser.data.batch import Batch
from metaser.data.labels import IGNORE_INDEX
from metaser.training.metrics import concordance


@dataclass
class LossOutput:
    total: torch.Tensor
    parts: dict[str, torch.Tensor]  # unweighted per-task losses (detached for logging)


def ctc_loss(
    log_probs: torch.Tensor, out_lengths: torch.Tensor, targets: torch.Tensor, target_lengths: torch.Tensor
) -> torch.Tensor:
    """Mean CTC loss, blank = 0, ``zero_infinity`` (too-short utterances give 0, not inf).

    log_probs: (B, T, V) log-softmax; targets: (B, U) zero-padded.
    """
    keep = target_lengths > 0  # utterances without a transcript do not count
    if not bool(keep.any()):
        return log_probs.sum() * 0.0
    lp = log_probs[keep].transpose(0, 1).float()  # (T, B', V)
    return F.ctc_loss(
        lp, targets[keep], out_lengths[keep], target_lengths[keep], blank=0, reduction="mean", zero_infinity=True
    )


def classification_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy ignoring utterances whose label is unknown (IGNORE_INDEX)."""
    if not bool((target != IGNORE_INDEX).any()):
        return logits.sum() * 0.0
    return F.cross_entropy(logits.float(), target, ignore_index=IGNORE_INDEX)


def ccc_loss(values: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """1 - CCC over the batch's utterances with a value (targets NaN where unknown); values and
    targets (B,). Fewer than 2 known values give 0 with no gradient (as a batch without labels
    does for cross-entropy): CCC needs at least two values to say anything."""
    keep = ~torch.isnan(targets)
    if int(keep.sum()) < 2:
        return values.sum() * 0.0
    return 1.0 - concordance(values[keep].float(), targets[keep].float())


class AuxiliaryLoss:
    """Implements Eq. (1): L_stage1 = alpha L_aux1 + beta L_aux2 + gamma L_aux3 + ... = sum_k w_k L_k.

    ``weights`` maps task name -> w_k (``aux_tasks`` in the run config; the paper tunes them per
    encoder and publishes none). L_k is cross-entropy for classification tasks, CTC for ASR, and
    for a regression task (a head with a value: valence, arousal, ...) metaser's 1 - CCC
    (:func:`ccc_loss`; not in the paper). This is the one place where task losses are weighted.
    """

    def __init__(self, weights: dict[str, float]):
        if not weights:
            raise ValueError("stage 1 needs at least one auxiliary task")
        self.weights = dict(weights)

    def __call__(self, out, batch: Batch) -> LossOutput:
        parts: dict[str, torch.Tensor] = {}
        total = None
        for task, w in self.weights.items():
            if task == "asr":
                if out.ctc_log_probs is None or batch.ctc_targets is None:
                    raise RuntimeError("ASR task enabled but the model or batch has no CTC output")
                loss = ctc_loss(out.ctc_log_probs, out.ctc_lengths, batch.ctc_targets, batch.ctc_target_lengths)
            elif task in out.task_values:
                loss = ccc_loss(out.task_values[task], batch.targets[task])
            else:
                loss = classification_loss(out.task_logits[task], batch.targets[task])
            parts[task] = loss.detach()
            total = w * loss if total is None else total + w * loss
        return LossOutput(total=total, parts=parts)


class EmotionLoss:
    """Implements Eq. (2): L_stage2 = L_emotion, the cross-entropy of the SER classifier (also
    the loss of the one-stage baseline and "SER only" rows)."""

    def __call__(self, out, batch: Batch) -> LossOutput:
        loss = classification_loss(out.emotion_logits, batch.targets["emotion"])
        return LossOutput(total=loss, parts={"emotion": loss.detach()})


def soft_cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean over rows of -sum_c t_c log softmax(logits)_c; logits, target (B, C). Rows whose
    target is all zeros (no label, no votes) are left out; none left gives 0 with no gradient."""
    keep = target.sum(-1) > 0  # (B,)
    if not bool(keep.any()):
        return logits.sum() * 0.0
    logp = torch.log_softmax(logits[keep].float(), dim=-1)  # (B', C)
    return -(target[keep].float() * logp).sum(-1).mean()


class SoftEmotionLoss:
    """metaser's soft-label variant of Eq. (2) (``emotion_target: soft``; the paper trains on the
    hard label): the cross-entropy of the SER classifier against the annotators' vote
    distribution vote_c / sum_c vote_c (``Batch.emotion_dist``), the hard label's one-hot for an
    utterance without votes. With one-hot targets it is Eq. (2)."""

    def __call__(self, out, batch: Batch) -> LossOutput:
        if batch.emotion_dist is None:
            raise RuntimeError("emotion_target=soft but the batch carries no vote distribution")
        loss = soft_cross_entropy(out.emotion_logits, batch.emotion_dist)
        return LossOutput(total=loss, parts={"emotion": loss.detach()})


class RegressionLoss:
    """metaser's loss for a regression main task (``main_task: arousal``, ...; not in the paper):
    L = 1 - CCC(main value, target) over the batch's utterances with a value (:func:`ccc_loss`)."""

    def __init__(self, task: str):
        self.task = task

    def __call__(self, out, batch: Batch) -> LossOutput:
        loss = ccc_loss(out.main_value, batch.targets[self.task])
        return LossOutput(total=loss, parts={self.task: loss.detach()})
