"""The paper's baseline: "the base version of each SSL encoder followed by a fully connected
layer as classifier" (Sec. IV-A): last encoder layer -> masked mean -> one Linear.

Trained in one emotion-only stage (``model.architecture: baseline``); no layer fusion, no
auxiliary heads.
"""

from __future__ import annotations

from torch import nn

from metaser.boundary import FrozenFeatures
from metaser.errors import ConfigError
from metaser.models.base import SERModel
from metaser.models.config import ModelConfig, TaskSpec
from metaser.models.encoder import SSLEncoder
from metaser.models.heads import BaselineHead
from metaser.models.output import MetaSEROutput

__all__ = ["BaselineModel"]


class BaselineModel(SERModel):
    """SSL encoder + :class:`BaselineHead` (last layer -> masked mean -> Linear(C))."""

    architecture = "baseline"

    def __init__(
        self,
        config: ModelConfig,
        emotion_labels: list[str],
        tasks: list[TaskSpec],
        encoder: SSLEncoder | None = None,
    ):
        if tasks:
            raise ConfigError(
                f"model.architecture=baseline takes no auxiliary tasks, got {[t.name for t in tasks]}",
                hint="the baseline is emotion-only; use architecture=metaser for auxiliary tasks",
            )
        super().__init__(config, emotion_labels, [], encoder)
        self.emotion_head = BaselineHead(self.encoder.hidden_size, len(self.emotion_labels))

    def forward(self, features: FrozenFeatures, *, compute_emotion: bool = True) -> MetaSEROutput:
        """The boundary features -> emotion logits from the last layer's masked mean."""
        enc = self.encoder.suffix(features)
        out = MetaSEROutput(frame_lengths=enc.frame_lengths)
        if compute_emotion:
            out.emotion_logits = self.emotion_head(enc.hidden_states[-1], enc.frame_mask)  # (B, C)
        return out

    def _heads(self) -> tuple[list[nn.Module], list[nn.Module], list[nn.Module]]:
        return [], [self.emotion_head], []
