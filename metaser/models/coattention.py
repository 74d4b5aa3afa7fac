"""Task fusion (co-attention between fused frames and aux-task hidden layers) and the emotion head.

``fusion.tasks`` picks how the K auxiliary hidden layers a_1..a_K (each (B, H)) reach the
emotion classifier:

* ``coattention`` -- :class:`CoAttentionFusion`, the default (metaser's reading of Sec. II-A-5);
* ``guided``      -- :class:`GuidedPoolingFusion`, the minimal literal reading of Sec. II-A-5:
  z = [mean_t (U_t * sigmoid(c_t)) ; a_1 .. a_K];
* ``concat``      -- :class:`ConcatTaskFusion`, "w/o Co" as metaser reads it: z = [mean_t U_t ; a_1 .. a_K];
* ``none``        -- :class:`PooledFramesFusion`: z = mean_t U_t.

All four first project the fused frames X (B, T, D_f) to U = X W_u (B, T, H) and return a
composite vector z (B, output_dim) that :class:`EmotionHead` classifies.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn

from metaser.errors import ConfigError
from metaser.models.heads import masked_mean

__all__ = [
    "TaskFusionOutput",
    "TaskFusion",
    "CoAttentionFusion",
    "GuidedPoolingFusion",
    "ConcatTaskFusion",
    "PooledFramesFusion",
    "EmotionHead",
    "build_task_fusion",
]


@dataclass
class TaskFusionOutput:
    """features: z (B, output_dim); attentions: "task_to_frame" (B, K, T), "frame_to_task" (B, T, K)
    (co-attention only; zero on padded frames)."""

    features: torch.Tensor
    attentions: dict[str, torch.Tensor] = field(default_factory=dict)


def _masked_softmax(scores: torch.Tensor, mask: torch.Tensor, dim: int) -> torch.Tensor:
    """Softmax of ``scores`` over ``dim`` where ``mask`` is True; exactly 0 elsewhere.

    A slice without any valid entry gives all zeros (never NaN).
    """
    neg = torch.finfo(scores.dtype).min
    probs = torch.softmax(scores.masked_fill(~mask, neg), dim=dim)
    return probs * mask.to(probs.dtype)


class FrameToTaskGate(nn.Module):
    """The task-guided feature weighting both co-attention readings share.

    beta_{t,k} = softmax_k((U_t W_q')·(a_k W_k') / sqrt(H)),  c_t = sum_k beta_{t,k} a_k W_v',
    u~_t = U_t * sigmoid(c_t). Returns u~ (B, T, H) and beta (B, T, K), zero on padded frames.
    """

    def __init__(self, hidden_dim: int):
        super().__init__()
        h = hidden_dim
        self.scale = 1.0 / math.sqrt(h)
        self.f2t_query = nn.Linear(h, h, bias=False)  # W_q'
        self.f2t_key = nn.Linear(h, h, bias=False)  # W_k'
        self.f2t_value = nn.Linear(h, h, bias=False)  # W_v'

    def forward(self, u: torch.Tensor, a: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """u: (B, T, H) frames; a: (B, K, H) task hidden layers; mask: (B, T)."""
        q2 = self.f2t_query(u)  # (B, T, H)
        k2 = self.f2t_key(a)  # (B, K, H)
        beta = torch.softmax(torch.einsum("bth,bkh->btk", q2, k2) * self.scale, dim=-1)  # (B, T, K)
        c = torch.einsum("btk,bkh->bth", beta, self.f2t_value(a))  # (B, T, H)
        u_tilde = u * torch.sigmoid(c)  # (B, T, H)
        return u_tilde, beta * mask[:, :, None].to(beta.dtype)  # padded frames -> 0


class TaskFusion(nn.Module):
    """Base: ``forward(frames (B,T,D_f), mask (B,T), task_hidden (B,K,H) | None) -> TaskFusionOutput``."""

    def __init__(self, in_dim: int, hidden_dim: int, num_tasks: int):
        super().__init__()
        self.hidden_dim = hidden_dim
        self.num_tasks = num_tasks
        self.frame_proj = nn.Linear(in_dim, hidden_dim)  # W_u

    @property
    def output_dim(self) -> int:
        raise NotImplementedError

    def _check(self, task_hidden: torch.Tensor | None) -> None:
        k = 0 if task_hidden is None else task_hidden.shape[1]
        if k != self.num_tasks:
            raise ValueError(f"expected {self.num_tasks} task hidden layers, got {k}")

    def _inputs(
        self, frames: torch.Tensor, task_hidden: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """U = X W_u (B, T, H) and A (B, K, H) in U's dtype, or None without auxiliary tasks."""
        self._check(task_hidden)
        u = self.frame_proj(frames)  # (B, T, H)
        a = None if task_hidden is None or self.num_tasks == 0 else task_hidden.to(u.dtype)  # (B, K, H)
        return u, a


class CoAttentionFusion(TaskFusion):
    """Implements the co-attention module (Sec. II-A-5; the paper gives no formula: this is
    metaser's reading, see docs/method.md; ``guided`` is the minimal literal one).

    With U = X W_u (B, T, H) the projected fused frames and A = [a_1 .. a_K] (B, K, H) the
    auxiliary tasks' hidden layers:

    * task-to-frame: alpha_{k,t} = softmax_t((a_k W_q)·(U_t W_k) / sqrt(H)) over valid frames,
      e_k = sum_t alpha_{k,t} U_t W_v                       (what each task finds in the frames)
    * frame-to-task: beta_{t,k} = softmax_k((U_t W_q')·(a_k W_k') / sqrt(H)),
      c_t = sum_k beta_{t,k} a_k W_v';  u~_t = U_t * sigmoid(c_t)   (task-guided feature weighting)
    * u_bar = masked mean_t u~_t;  z = [u_bar ; e_1 .. e_K ; a_1 .. a_K]  (B, (2K+1) H)

    With K = 0 there is nothing to attend to: no gating (u~ = U) and z = u_bar, so the model
    reduces to an SER-only model on the pooled projected frames.
    """

    def __init__(self, in_dim: int, hidden_dim: int, num_tasks: int):
        super().__init__(in_dim, hidden_dim, num_tasks)
        h = hidden_dim
        self.scale = 1.0 / math.sqrt(h)
        # task-to-frame (queries from tasks, keys / values from frames)
        self.t2f_query = nn.Linear(h, h, bias=False)  # W_q
        self.t2f_key = nn.Linear(h, h, bias=False)  # W_k
        self.t2f_value = nn.Linear(h, h, bias=False)  # W_v
        # frame-to-task (queries from frames, keys / values from tasks)
        self.gate = FrameToTaskGate(h)

    @property
    def output_dim(self) -> int:
        return (2 * self.num_tasks + 1) * self.hidden_dim

    def forward(self, frames: torch.Tensor, mask: torch.Tensor, task_hidden: torch.Tensor | None) -> TaskFusionOutput:
        u, a = self._inputs(frames, task_hidden)  # (B, T, H), (B, K, H)
        if a is None:
            return TaskFusionOutput(features=masked_mean(u, mask))  # (B, H)
        b, k, h = a.shape
        # task-to-frame attention
        q = self.t2f_query(a)  # (B, K, H)
        key = self.t2f_key(u)  # (B, T, H)
        scores = torch.einsum("bkh,bth->bkt", q, key) * self.scale  # (B, K, T)
        alpha = _masked_softmax(scores, mask[:, None, :], dim=-1)  # (B, K, T)
        e = torch.einsum("bkt,bth->bkh", alpha, self.t2f_value(u))  # (B, K, H)
        # frame-to-task attention: the task-guided weighting of the emotion frames
        u_tilde, beta = self.gate(u, a, mask)  # (B, T, H), (B, T, K)
        u_bar = masked_mean(u_tilde, mask)  # (B, H)
        z = torch.cat([u_bar, e.reshape(b, k * h), a.reshape(b, k * h)], dim=-1)  # (B, (2K+1) H)
        return TaskFusionOutput(features=z, attentions={"task_to_frame": alpha, "frame_to_task": beta})


class GuidedPoolingFusion(TaskFusion):
    """The minimal literal reading of Sec. II-A-5 (``fusion.tasks = guided``).

    "we leverage their interplay to guide feature weighting, thereby generating weighted
    emotion features. Subsequently, these weighted emotion features are combined with the
    hidden layer outputs from the auxiliary tasks": u~_t = U_t * sigmoid(c_t) with the
    frame-to-task attention of :class:`FrameToTaskGate`, u_bar = masked mean_t u~_t and
    z = [u_bar ; a_1 .. a_K]  (B, (K+1) H). No per-task attended block e_k.
    With K = 0: z = masked mean_t U_t.
    """

    def __init__(self, in_dim: int, hidden_dim: int, num_tasks: int):
        super().__init__(in_dim, hidden_dim, num_tasks)
        self.gate = FrameToTaskGate(hidden_dim)

    @property
    def output_dim(self) -> int:
        return (self.num_tasks + 1) * self.hidden_dim

    def forward(self, frames: torch.Tensor, mask: torch.Tensor, task_hidden: torch.Tensor | None) -> TaskFusionOutput:
        u, a = self._inputs(frames, task_hidden)  # (B, T, H), (B, K, H)
        if a is None:
            return TaskFusionOutput(features=masked_mean(u, mask))  # (B, H)
        u_tilde, beta = self.gate(u, a, mask)  # (B, T, H), (B, T, K)
        z = torch.cat([masked_mean(u_tilde, mask), a.flatten(1)], dim=-1)  # (B, (K+1) H)
        return TaskFusionOutput(features=z, attentions={"frame_to_task": beta})


class ConcatTaskFusion(TaskFusion):
    """The "w/o Co" ablation as metaser reads it (the paper does not describe it): the aux
    hidden layers are concatenated with the pooled frames, z = [masked mean_t U_t ; a_1 .. a_K]
    (B, (K+1) H)."""

    @property
    def output_dim(self) -> int:
        return (self.num_tasks + 1) * self.hidden_dim

    def forward(self, frames: torch.Tensor, mask: torch.Tensor, task_hidden: torch.Tensor | None) -> TaskFusionOutput:
        u, a = self._inputs(frames, task_hidden)  # (B, T, H), (B, K, H)
        pooled = masked_mean(u, mask)  # (B, H)
        if a is None:
            return TaskFusionOutput(features=pooled)
        return TaskFusionOutput(features=torch.cat([pooled, a.flatten(1)], dim=-1))  # (B, (K+1) H)


class PooledFramesFusion(TaskFusion):
    """``fusion.tasks = none``: z = masked mean_t U_t (B, H); the aux hidden layers are not used."""

    @property
    def output_dim(self) -> int:
        return self.hidden_dim

    def forward(self, frames: torch.Tensor, mask: torch.Tensor, task_hidden: torch.Tensor | None) -> TaskFusionOutput:
        return TaskFusionOutput(features=masked_mean(self.frame_proj(frames), mask))  # (B, H)


class EmotionHead(nn.Module):
    """The SER classifier on z: Linear(hidden) -> ReLU -> Dropout -> Linear(C).

    With the mean pooling inside the task fusion, this is the paper's "mean pooling and two
    FC layers with dropout".
    """

    def __init__(self, in_dim: int, hidden_dim: int, num_classes: int, dropout: float = 0.2):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(in_dim, hidden_dim),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden_dim, num_classes),
        )

    @property
    def in_features(self) -> int:
        """The width of z it takes."""
        return self.net[0].in_features

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """z: (B, in_dim) -> logits (B, C)."""
        return self.net(z)


_KINDS = {
    "coattention": CoAttentionFusion,
    "guided": GuidedPoolingFusion,
    "concat": ConcatTaskFusion,
    "none": PooledFramesFusion,
}


def build_task_fusion(kind: str, in_dim: int, hidden_dim: int, num_tasks: int) -> TaskFusion:
    """``kind``: ``coattention`` | ``guided`` | ``concat`` | ``none`` (``fusion.tasks``)."""
    if kind not in _KINDS:
        raise ConfigError(f"fusion.tasks: {kind!r} is not one of {', '.join(_KINDS)}")
    return _KINDS[kind](in_dim, hidden_dim, num_tasks)
