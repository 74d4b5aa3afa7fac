"""The composed MetaSER model: encoder -> layer fusion -> aux task heads -> task fusion -> emotion.

``MetaSERModel.forward`` maps waveforms to raw per-task outputs (:class:`MetaSEROutput`); it
computes no loss (losses are weighted in one place, in training). Stage 1 calls it with
``compute_emotion=False`` (no co-attention / emotion head compute).

``save_pretrained`` writes a self-contained directory (``config.json`` + ``model.safetensors``)
that :meth:`MetaSERModel.from_pretrained` loads without network or training code.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from metaser.config import from_dict, to_dict
from metaser.errors import ConfigError, MetaserError
from metaser.models.coattention import EmotionHead, build_task_fusion
from metaser.models.config import ModelConfig, TaskSpec
from metaser.models.encoder import SAMPLE_RATE, SSLEncoder
from metaser.models.fusion import MaskedBatchNorm, build_layer_fusion
from metaser.models.heads import BaselineHead, ClassificationHead, CTCHead

__all__ = ["MetaSERModel", "MetaSEROutput", "CONFIG_NAME", "WEIGHTS_NAME"]

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


@dataclass
class MetaSEROutput:
    """Raw outputs of one forward pass (B batch, T frames, C classes, K aux tasks, H head size).

    emotion_logits: (B, C), or None when ``compute_emotion=False``
    task_logits:    classification aux task name -> (B, C_k)
    ctc_log_probs:  (B, T, V+1) float32 log-softmax (blank = 0), or None without an ASR task
    ctc_lengths:    (B,) valid frames per utterance for CTC, or None
    frame_lengths:  (B,) valid encoder frames per utterance
    layer_weights:  softmax layer-fusion weights, (L-1,) for ARI, (L,) for weighted_sum, else None
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


def _validate(config: ModelConfig, emotion_labels: list[str], tasks: list[TaskSpec]) -> None:
    if len(emotion_labels) < 2:
        raise ConfigError(f"emotion labels: need at least 2 classes, got {list(emotion_labels)}")
    if len(set(emotion_labels)) != len(emotion_labels):
        raise ConfigError(f"emotion labels: duplicate class names in {list(emotion_labels)}")
    names = [t.name for t in tasks]
    if len(set(names)) != len(names):
        raise ConfigError(f"tasks: duplicate task names in {names}")
    for t in tasks:
        if t.name == "emotion":
            raise ConfigError("tasks: 'emotion' is the main task, not an auxiliary one")
        if not t.name or "." in t.name:
            raise ConfigError(f"tasks: invalid task name {t.name!r} (non-empty, no '.')")
        if t.kind not in ("classification", "ctc"):
            raise ConfigError(f"tasks.{t.name}.kind: {t.kind!r} is not 'classification' or 'ctc'")
        if not t.labels:
            raise ConfigError(f"tasks.{t.name}: no labels (classes or CTC tokens)")
    if sum(t.kind == "ctc" for t in tasks) > 1:
        raise ConfigError(f"tasks: at most one CTC task is supported, got {names}")
    if config.architecture == "baseline" and tasks:
        raise ConfigError(
            f"model.architecture=baseline takes no auxiliary tasks, got {names}",
            hint="the baseline is emotion-only; use architecture=metaser for auxiliary tasks",
        )
    if config.architecture not in ("metaser", "baseline"):
        raise ConfigError(f"model.architecture: {config.architecture!r} is not 'metaser' or 'baseline'")
    for name, head in (("aux_head", config.aux_head), ("emotion_head", config.emotion_head)):
        if head.hidden_dim < 1:
            raise ConfigError(f"model.{name}.hidden_dim must be >= 1, got {head.hidden_dim}")
        if not 0.0 <= head.dropout < 1.0:
            raise ConfigError(f"model.{name}.dropout must be in [0, 1), got {head.dropout}")


class MetaSERModel(nn.Module):
    """SSL encoder + ARI layer fusion + metadata task heads + co-attention + emotion head.

    ``architecture = baseline``: last encoder layer -> masked mean -> one Linear (no fusion,
    no aux heads). With no auxiliary task the metaser architecture reduces to an SER-only
    model (task fusion over the pooled fused frames).
    """

    def __init__(
        self,
        config: ModelConfig,
        emotion_labels: list[str],
        tasks: list[TaskSpec],
        encoder: SSLEncoder | None = None,
    ):
        super().__init__()
        tasks = list(tasks)
        _validate(config, list(emotion_labels), tasks)
        self.config = config
        self.emotion_labels = list(emotion_labels)
        self.tasks = tasks
        self.encoder = encoder if encoder is not None else SSLEncoder.from_pretrained(config.encoder)
        d, num_layers = self.encoder.hidden_size, self.encoder.num_layers
        c = len(self.emotion_labels)
        self._aux_trainable = True
        self._emotion_trainable = True
        if config.architecture == "baseline":
            self.layer_fusion = None
            self.fused_norm = None
            self.task_heads = nn.ModuleDict()
            self.task_fusion = None
            self.emotion_head: nn.Module = BaselineHead(d, c)
            return
        self.layer_fusion = build_layer_fusion(config.fusion.layers, num_layers, config.fusion.weights)
        d_f = self.layer_fusion.output_dim(d)
        self.fused_norm = MaskedBatchNorm(d_f) if config.fusion.normalize == "batch" else None
        h = config.aux_head.hidden_dim
        heads: dict[str, nn.Module] = {}
        for t in tasks:
            if t.kind == "ctc":
                heads[t.name] = CTCHead(d_f, h, t.num_outputs, config.aux_head.dropout)
            else:
                heads[t.name] = ClassificationHead(d_f, h, t.num_outputs, config.aux_head.dropout)
        self.task_heads = nn.ModuleDict(heads)
        self.task_fusion = build_task_fusion(config.fusion.tasks, d_f, h, len(tasks))
        self.emotion_head = EmotionHead(
            self.task_fusion.output_dim, config.emotion_head.hidden_dim, c, config.emotion_head.dropout
        )

    @classmethod
    def build(cls, config: ModelConfig, emotion_labels: list[str], tasks: list[TaskSpec]) -> MetaSERModel:
        """A new model whose encoder is loaded by ``SSLEncoder.from_pretrained(config.encoder)``."""
        return cls(config, emotion_labels, tasks, encoder=SSLEncoder.from_pretrained(config.encoder))

    # ------------------------------------------------------------------ forward
    def forward(
        self,
        waveforms: torch.Tensor | None,
        lengths: torch.Tensor | None,
        *,
        compute_emotion: bool = True,
        features: tuple[torch.Tensor, ...] | None = None,
        frame_lengths: torch.Tensor | None = None,
        feature_layer: int = 0,
    ) -> MetaSEROutput:
        """waveforms: (B, S) zero-padded 16 kHz audio; lengths: (B,) true samples.

        Or, from a frozen-prefix cache, ``features`` with ``frame_lengths`` (B,) instead of audio:
        ``feature_layer = 0``: ``(cnn,)`` the CNN output (B, T, C); ``feature_layer = n``: the
        outputs of the first n layers, n x (B, T, D) (see :meth:`SSLEncoder.forward_features`
        and :meth:`SSLEncoder.forward_from_layer`).
        """
        if features is None:
            enc = self.encoder(waveforms, lengths)
        elif feature_layer == 0:
            enc = self.encoder.forward_features(features[0], frame_lengths)
        else:
            enc = self.encoder.forward_from_layer(tuple(features), frame_lengths, feature_layer)
        mask = enc.frame_mask  # (B, T)
        out = MetaSEROutput(frame_lengths=enc.frame_lengths)
        if self.config.architecture == "baseline":
            if compute_emotion:
                out.emotion_logits = self.emotion_head(enc.hidden_states[-1], mask)  # (B, C)
            return out
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
        """Softmax layer-fusion weights (detached), or None (``last`` fusion / baseline)."""
        return None if self.layer_fusion is None else self.layer_fusion.weights()

    # ------------------------------------------------------- parameters, freezing
    def encoder_parameters(self) -> list[nn.Parameter]:
        """Parameters of the SSL encoder (the low learning-rate group)."""
        return list(self.encoder.parameters())

    def head_parameters(self) -> list[nn.Parameter]:
        """Everything not in the encoder: fusion weights, aux heads, task fusion, emotion head."""
        enc = {id(p) for p in self.encoder.parameters()}
        return [p for p in self.parameters() if id(p) not in enc]

    def freeze_encoder_layers(self, n: int) -> None:
        """Freeze the encoder's input prefix and first ``n`` transformer layers (see SSLEncoder)."""
        self.encoder.freeze_layers(n)

    def set_trainable(self, aux_heads: bool, emotion_head: bool, layer_fusion: bool = True) -> None:
        """Which heads train. ``aux_heads``: the auxiliary task heads; ``emotion_head``: the task
        fusion (co-attention) and the emotion classifier; ``layer_fusion``: the layer-fusion
        weights (they feed both; ``StageConfig.freeze_layer_fusion`` turns them off). The
        encoder follows :meth:`freeze_encoder_layers`. Frozen heads stay in eval mode (no
        dropout) while the model trains."""
        self._aux_trainable = bool(aux_heads)
        self._emotion_trainable = bool(emotion_head)
        self.task_heads.requires_grad_(self._aux_trainable)
        for m in (self.task_fusion, self.emotion_head):
            if m is not None:
                m.requires_grad_(self._emotion_trainable)
        if self.layer_fusion is not None:
            self.layer_fusion.requires_grad_(bool(layer_fusion))
        if self.training:
            self.train(True)

    def _frozen_heads(self) -> Iterator[nn.Module]:
        if not self._aux_trainable:
            yield self.task_heads
        if not self._emotion_trainable:
            for m in (self.task_fusion, self.emotion_head):
                if m is not None:
                    yield m

    def train(self, mode: bool = True) -> MetaSERModel:
        super().train(mode)  # the encoder keeps its frozen part in eval itself
        if mode:
            for m in self._frozen_heads():
                m.eval()
        return self

    # ---------------------------------------------------------------- save/load
    def save_pretrained(self, directory: str | Path) -> None:
        """Write ``config.json`` and ``model.safetensors`` into ``directory``."""
        from safetensors.torch import save_file

        from metaser import __version__

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        meta = {
            "metaser_version": __version__,
            "model": to_dict(self.config),
            "emotion_labels": list(self.emotion_labels),
            "tasks": [to_dict(t) for t in self.tasks],
            "encoder_config": self.encoder.hf_config_dict(),
            "sample_rate": SAMPLE_RATE,
            "normalize_waveform": self.encoder.normalize_waveform,
        }
        (directory / CONFIG_NAME).write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n")
        # Own, contiguous copies: safetensors refuses tensors that share storage (tied weights).
        state = {k: v.detach().to("cpu").contiguous().clone() for k, v in self.state_dict().items()}
        save_file(state, str(directory / WEIGHTS_NAME), metadata={"format": "pt", "metaser_version": __version__})

    @classmethod
    def from_pretrained(cls, directory: str | Path, map_location: str | torch.device = "cpu") -> MetaSERModel:
        """Load a directory written by :meth:`save_pretrained` (no network, no training code).

        The encoder is rebuilt from the saved transformers config and all weights come from
        ``model.safetensors`` (strict). Returns the model in eval mode on ``map_location``.
        """
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        directory = Path(directory)
        cfg_file, weights = directory / CONFIG_NAME, directory / WEIGHTS_NAME
        if not directory.is_dir():
            raise MetaserError(f"model directory not found: {directory}")
        for f in (cfg_file, weights):
            if not f.is_file():
                raise MetaserError(
                    f"{directory}: missing {f.name}", hint="a model directory is written by save_pretrained"
                )
        try:
            meta = json.loads(cfg_file.read_text())
        except (OSError, ValueError) as e:
            raise MetaserError(f"{cfg_file}: not valid JSON ({e})") from None
        missing = [k for k in ("model", "emotion_labels", "tasks", "encoder_config") if k not in meta]
        if missing:
            raise MetaserError(f"{cfg_file}: missing field(s) {', '.join(missing)}")
        try:
            config = from_dict(ModelConfig, meta["model"])
            tasks = [from_dict(TaskSpec, t) for t in meta["tasks"]]
        except ConfigError as e:
            raise ConfigError(f"{cfg_file}: {e.message}", hint=e.hint) from None
        enc_cfg = dataclasses.replace(config.encoder, normalize_waveform=bool(meta.get("normalize_waveform", False)))
        encoder = SSLEncoder.from_hf_config(meta["encoder_config"], enc_cfg)
        model = cls(config, list(meta["emotion_labels"]), tasks, encoder=encoder)
        try:
            state = load_file(str(weights), device="cpu")
        except (SafetensorError, OSError) as e:
            raise MetaserError(f"{weights}: cannot read ({e})") from None
        try:
            result = model.load_state_dict(state, strict=False)
        except RuntimeError as e:  # shape mismatches
            raise MetaserError(f"{weights} does not match {cfg_file}: {e}") from None
        if result.missing_keys or result.unexpected_keys:
            raise MetaserError(
                f"{weights} does not match {cfg_file}: missing {result.missing_keys[:5]}, "
                f"unexpected {result.unexpected_keys[:5]}"
                + (" ..." if len(result.missing_keys) > 5 or len(result.unexpected_keys) > 5 else "")
            )
        return model.to(map_location).eval()

    def extra_repr(self) -> str:
        return (
            f"architecture={self.config.architecture}, layers={self.config.fusion.layers}, "
            f"tasks={self.config.fusion.tasks}, aux={[t.name for t in self.tasks]}, "
            f"classes={len(self.emotion_labels)}"
        )
