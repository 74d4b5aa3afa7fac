"""Task heads on the fused frames, one per enabled auxiliary task, and the baseline's head.

Every head is two-layer: Linear(H) -> ReLU -> Dropout -> Linear(outputs). The H-dim
post-activation vector (before dropout) is the task's hidden layer a_k, which the
co-attention fusion reads (H = ``aux_head.hidden_dim``). A regression head (valence, arousal,
...) has one output, its value.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "masked_mean",
    "ClassificationHead",
    "ClassificationHeadOutput",
    "RegressionHead",
    "RegressionHeadOutput",
    "CTCHead",
    "CTCHeadOutput",
    "BaselineHead",
]


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over valid frames. x: (B, T, H); mask: (B, T) bool, True = valid -> (B, H).

    A row without any valid frame gives zeros (never NaN).
    """
    m = mask.to(x.dtype).unsqueeze(-1)  # (B, T, 1)
    total = (x * m).sum(dim=1)  # (B, H)
    count = m.sum(dim=1).clamp(min=1.0)  # (B, 1)
    return total / count


class ClassificationHeadOutput(NamedTuple):
    logits: torch.Tensor  # (B, C)
    hidden: torch.Tensor  # (B, H), the task's hidden layer a_k


class ClassificationHead(nn.Module):
    """Utterance-level task: masked mean pooling -> Linear(H) -> ReLU -> Dropout -> Linear(C)."""

    def __init__(self, in_dim: int, hidden_dim: int, num_classes: int, dropout: float = 0.1):
        super().__init__()
        self.hidden = nn.Linear(in_dim, hidden_dim)
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(hidden_dim, num_classes)

    def forward(self, frames: torch.Tensor, mask: torch.Tensor) -> ClassificationHeadOutput:
        """frames: (B, T, D_f); mask: (B, T)."""
        pooled = masked_mean(frames, mask)  # (B, D_f)
        hidden = F.relu(self.hidden(pooled))  # (B, H)
        logits = self.out(self.dropout(hidden))  # (B, C)
        return ClassificationHeadOutput(logits, hidden)


class RegressionHeadOutput(NamedTuple):
    value: torch.Tensor  # (B,)
    hidden: torch.Tensor  # (B, H), the task's hidden layer a_k


class RegressionHead(nn.Module):
    """Utterance-level value: masked mean pooling -> Linear(H) -> ReLU -> Dropout -> Linear(1)."""

    def __init__(self, in_dim: int, hidden_dim: int, dropout: float = 0.1):
        super().__init__()
        self.hidden = nn.Linear(in_dim, hidden_dim)
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(hidden_dim, 1)

    def forward(self, frames: torch.Tensor, mask: torch.Tensor) -> RegressionHeadOutput:
        """frames: (B, T, D_f); mask: (B, T)."""
        pooled = masked_mean(frames, mask)  # (B, D_f)
        hidden = F.relu(self.hidden(pooled))  # (B, H)
        value = self.out(self.dropout(hidden)).squeeze(-1)  # (B,)
        return RegressionHeadOutput(value, hidden)


class CTCHeadOutput(NamedTuple):
    log_probs: torch.Tensor  # (B, T, V+1), float32, index 0 = blank
    hidden_frames: torch.Tensor  # (B, T, H)
    hidden: torch.Tensor  # (B, H), masked mean of hidden_frames: the task's a_k


class CTCHead(nn.Module):
    """Frame-level ASR: Linear(H) -> ReLU -> Dropout -> Linear(V+1) -> log_softmax (float32)."""

    def __init__(self, in_dim: int, hidden_dim: int, num_outputs: int, dropout: float = 0.1):
        super().__init__()
        self.hidden = nn.Linear(in_dim, hidden_dim)
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(hidden_dim, num_outputs)

    def forward(self, frames: torch.Tensor, mask: torch.Tensor) -> CTCHeadOutput:
        """frames: (B, T, D_f); mask: (B, T). ``num_outputs`` includes the blank."""
        hidden_frames = F.relu(self.hidden(frames))  # (B, T, H)
        logits = self.out(self.dropout(hidden_frames))  # (B, T, V+1)
        log_probs = torch.log_softmax(logits.float(), dim=-1)  # (B, T, V+1)
        return CTCHeadOutput(log_probs, hidden_frames, masked_mean(hidden_frames, mask))


class BaselineHead(nn.Module):
    """The paper's baseline: last encoder layer -> masked mean -> one Linear(C)."""

    def __init__(self, in_dim: int, num_classes: int):
        super().__init__()
        self.out = nn.Linear(in_dim, num_classes)

    def forward(self, frames: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """frames: (B, T, D); mask: (B, T) -> logits (B, C)."""
        return self.out(masked_mean(frames, mask))
