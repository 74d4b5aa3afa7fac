"""What a model's forward returns: raw per-task outputs, no loss (losses are weighted in training)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

__all__ = ["MetaSEROutput"]


@dataclass
class MetaSEROutput:
    """Raw outputs of one forward pass (B batch, T frames, C classes, K aux tasks, H head size).

    emotion_logits: (B, C), or None when ``compute_emotion=False``
    task_logits:    classification aux task name -> (B, C_k)
    ctc_log_probs:  (B, T, V+1) float32 log-softmax (blank = 0), or None without an ASR task
    ctc_lengths:    (B,) valid frames per utterance for CTC, or None
    frame_lengths:  (B,) valid encoder frames per utterance
    layer_weights:  the layer-fusion weights (L-1,) for ARI, (L,) for weighted_sum, else None
    attentions:     "task_to_frame" (B, K, T), "frame_to_task" (B, T, K) (co-attention only)
    task_hidden:    aux task name -> its hidden layer a_k (B, H)
    """

    emotion_logits: torch.Tensor | None = None
    task_logits: dict[str, torch.Tensor] = field(default_factory=dict)
    ctc_log_probs: torch.Tensor | None = None
    ctc_lengths: torch.Tensor | None = None
    frame_lengths: torch.Tensor | None = None
    layer_weights: torch.Tensor | None = None
    attentions: dict[str, torch.Tensor] = field(default_factory=dict)
    task_hidden: dict[str, torch.Tensor] = field(default_factory=dict)
