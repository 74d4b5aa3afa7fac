"""The one place where task losses are computed and weighted.

Stage 1 (auxiliary):  L = sum_k w_k L_k over the enabled auxiliary tasks (Eq. 1, :class:`AuxiliaryLoss`;
                      cross-entropy for utterance-level tasks, CTC for ASR).
Stage 2 / one-stage:  L = CE(emotion) (Eq. 2, :class:`EmotionLoss`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from metaser.data.batch import Batch
from metaser.data.labels import IGNORE_INDEX


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


class AuxiliaryLoss:
    """Implements Eq. (1): L_stage1 = alpha L_aux1 + beta L_aux2 + gamma L_aux3 + ... = sum_k w_k L_k.

    ``weights`` maps task name -> w_k (``aux_tasks`` in the run config; the paper tunes them per
    encoder and publishes none). L_k is cross-entropy for utterance-level tasks and CTC for ASR.
    This is the one place where task losses are weighted.
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
