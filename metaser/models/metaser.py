"""The MetaSER model: encoder -> layer fusion (ARI) -> aux task heads -> task fusion -> emotion.

``MetaSERModel.forward`` maps the boundary features to raw per-task outputs
(:class:`~metaser.models.output.MetaSEROutput`); it computes no loss (losses are weighted in one
place, in training). Stage 1 calls it with ``compute_emotion=False`` (no co-attention / emotion
head compute). The paper's baseline is another class, :class:`~metaser.models.baseline.BaselineModel`.
"""

from __future__ import annotations

import torch
from torch import nn

from metaser.boundary import FrozenFeatures
from metaser.models.base import SERModel
from metaser.models.coattention import EmotionHead, build_task_fusion
from metaser.models.config import ModelConfig, TaskSpec
from metaser.models.encoder import SSLEncoder
from metaser.models.fusion import MaskedBatchNorm, build_layer_fusion
from metaser.models.heads import ClassificationHead, CTCHead
from metaser.models.output import MetaSEROutput
from metaser.models.saved import CONFIG_NAME, WEIGHTS_NAME

__all__ = ["MetaSERModel", "MetaSEROutput", "CONFIG_NAME", "WEIGHTS_NAME"]


class MetaSERModel(SERModel):
    """SSL encoder + ARI layer fusion + metadata task heads + co-attention + emotion head.

    With no auxiliary task it reduces to an SER-only model (task fusion over the pooled fused
    frames: Table IV's "SER only").
    """

    architecture = "metaser"

    def __init__(
        self,
        config: ModelConfig,
        emotion_labels: list[str],
        tasks: list[TaskSpec],
        encoder: SSLEncoder | None = None,
    ):
        super().__init__(config, emotion_labels, tasks, encoder)
        d, num_layers = self.encoder.hidden_size, self.encoder.num_layers
        c = len(self.emotion_labels)
        self.layer_fusion = build_layer_fusion(config.fusion.layers, num_layers, config.fusion.weights)
        d_f = self.layer_fusion.output_dim(d)
        self.fused_norm = MaskedBatchNorm(d_f) if config.fusion.normalize == "batch" else None
        h = config.aux_head.hidden_dim
        heads: dict[str, nn.Module] = {}
        for t in self.tasks:
            if t.kind == "ctc":
                heads[t.name] = CTCHead(d_f, h, t.num_outputs, config.aux_head.dropout)
            else:
                heads[t.name] = ClassificationHead(d_f, h, t.num_outputs, config.aux_head.dropout)
        self.task_heads = nn.ModuleDict(heads)
        self.task_fusion = build_task_fusion(config.fusion.tasks, d_f, h, len(self.tasks))
        self.emotion_head = EmotionHead(
            self.task_fusion.output_dim, config.emotion_head.hidden_dim, c, config.emotion_head.dropout
        )

    @classmethod
    def build(cls, config: ModelConfig, emotion_labels: list[str], tasks: list[TaskSpec]) -> MetaSERModel:
        """A new model whose encoder is loaded by ``SSLEncoder.from_pretrained(config.encoder)``."""
        return cls(config, emotion_labels, tasks, encoder=SSLEncoder.from_pretrained(config.encoder))

    # ------------------------------------------------------------------ forward
    def forward(self, features: FrozenFeatures, *, compute_emotion: bool = True) -> MetaSEROutput:
        """The boundary features (``encoder.prefix``'s output) -> raw per-task outputs."""
        enc = self.encoder.suffix(features)
        mask = enc.frame_mask  # (B, T)
        out = MetaSEROutput(frame_lengths=enc.frame_lengths)
        fused = self.layer_fusion(enc.hidden_states)  # (B, T, D_f)
        if self.fused_norm is not None:
            fused = self.fused_norm(fused, mask)  # (B, T, D_f)
        out.layer_weights = self.layer_fusion.weights()
        for t in self.tasks:
            head = self.task_heads[t.name]
            if t.kind == "ctc":
                ctc = head(fused, mask)
                out.ctc_log_probs = ctc.log_probs  # (B, T, V+1)
                out.ctc_lengths = enc.frame_lengths  # (B,)
                out.task_hidden[t.name] = ctc.hidden  # (B, H)
            else:
                cls_out = head(fused, mask)
                out.task_logits[t.name] = cls_out.logits  # (B, C_k)
                out.task_hidden[t.name] = cls_out.hidden  # (B, H)
        if compute_emotion:
            a = torch.stack([out.task_hidden[t.name] for t in self.tasks], dim=1) if self.tasks else None  # (B, K, H)
            tf = self.task_fusion(fused, mask, a)
            out.emotion_logits = self.emotion_head(tf.features)  # (B, C)
            out.attentions = tf.attentions
        return out

    def layer_weights(self) -> torch.Tensor | None:
        """The layer-fusion weights (detached), or None (``last`` fusion)."""
        return self.layer_fusion.weights()

    def _heads(self) -> tuple[list[nn.Module], list[nn.Module], list[nn.Module]]:
        return [self.task_heads], [self.task_fusion, self.emotion_head], [self.layer_fusion]

    def extra_repr(self) -> str:
        return (
            f"architecture={self.architecture}, layers={self.config.fusion.layers}, "
            f"tasks={self.config.fusion.tasks}, aux={[t.name for t in self.tasks]}, "
            f"classes={len(self.emotion_labels)}"
        )
