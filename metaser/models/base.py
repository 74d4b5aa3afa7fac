"""What every SER model shares: the encoder, parameter groups, freezing, save / load.

Two architectures build on :class:`SERModel` by composition (an :class:`SSLEncoder` plus their
own heads): :class:`~metaser.models.metaser.MetaSERModel` (ARI, auxiliary heads, co-attention)
and :class:`~metaser.models.baseline.BaselineModel` (the paper's baseline). Their ``forward``
takes the boundary features (:class:`~metaser.boundary.FrozenFeatures`) and returns raw outputs
(:class:`~metaser.models.output.MetaSEROutput`); :meth:`SERModel.infer` is the forward from
audio that inference runs (batch-independent).

``save_pretrained`` writes a self-contained directory (``config.json`` + ``model.safetensors``)
that :func:`~metaser.models.factory.load_ser_model` loads without network or training code.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import nn

from metaser.boundary import FrozenFeatures, Waveforms
from metaser.constants import SAMPLE_RATE
from metaser.errors import ConfigError, MetaserError
from metaser.models.config import ModelConfig, TaskSpec
from metaser.models.encoder import SSLEncoder
from metaser.models.output import MetaSEROutput
from metaser.models.saved import WEIGHTS_NAME, SavedModelConfig
from metaser.rundir import shared_mode

__all__ = ["SERModel"]


def _validate(config: ModelConfig, emotion_labels: list[str], tasks: list[TaskSpec], main_task: str) -> None:
    if main_task == "emotion":
        if len(emotion_labels) < 2:
            raise ConfigError(f"emotion labels: need at least 2 classes, got {list(emotion_labels)}")
        if len(set(emotion_labels)) != len(emotion_labels):
            raise ConfigError(f"emotion labels: duplicate class names in {list(emotion_labels)}")
    else:
        if not main_task or "." in main_task or main_task == "asr":
            raise ConfigError(f"main_task: invalid task name {main_task!r} (emotion, or a regression task)")
        if emotion_labels:
            raise ConfigError(
                f"main_task={main_task!r} is a regression (one value): the model takes no emotion labels, "
                f"got {list(emotion_labels)}"
            )
    names = [t.name for t in tasks]
    if len(set(names)) != len(names):
        raise ConfigError(f"tasks: duplicate task names in {names}")
    for t in tasks:
        if t.name == "emotion":
            raise ConfigError("tasks: 'emotion' is the main task, not an auxiliary one")
        if not t.name or "." in t.name:
            raise ConfigError(f"tasks: invalid task name {t.name!r} (non-empty, no '.')")
        if t.kind not in ("classification", "regression", "ctc"):
            raise ConfigError(f"tasks.{t.name}.kind: {t.kind!r} is not 'classification', 'regression' or 'ctc'")
        if t.kind != "regression" and not t.labels:
            raise ConfigError(f"tasks.{t.name}: no labels (classes or CTC tokens)")
    if sum(t.kind == "ctc" for t in tasks) > 1:
        raise ConfigError(f"tasks: at most one CTC task is supported, got {names}")
    for name, head in (("aux_head", config.aux_head), ("emotion_head", config.emotion_head)):
        if head.hidden_dim < 1:
            raise ConfigError(f"model.{name}.hidden_dim must be >= 1, got {head.hidden_dim}")
        if not 0.0 <= head.dropout < 1.0:
            raise ConfigError(f"model.{name}.dropout must be in [0, 1), got {head.dropout}")


class SERModel(nn.Module):
    """Base of the SER architectures: the SSL encoder, the label spaces and the shared plumbing.

    Subclasses set ``architecture`` (the ``model.architecture`` value they implement), build
    their heads in ``__init__``, and implement :meth:`forward` and :meth:`_heads`.

    main_task: ``emotion`` (the main head classifies ``emotion_labels``) or the name of a
    regression task (valence, arousal, ...): the main head (still the ``emotion_head`` module)
    then outputs one value (``MetaSEROutput.main_value``) and ``emotion_labels`` is empty.
    """

    architecture: str = ""

    def __init__(
        self,
        config: ModelConfig,
        emotion_labels: list[str],
        tasks: list[TaskSpec],
        encoder: SSLEncoder | None = None,
        *,
        main_task: str = "emotion",
    ):
        super().__init__()
        if config.architecture != self.architecture:
            raise ConfigError(
                f"model.architecture={config.architecture!r} is not a {type(self).__name__} ({self.architecture!r})",
                hint="build models with metaser.models.factory.build_ser_model, which picks the class",
            )
        tasks = list(tasks)
        _validate(config, list(emotion_labels), tasks, main_task)
        self.config = config
        self.emotion_labels = list(emotion_labels)
        self.tasks = tasks
        self.main_task = main_task
        self.encoder = encoder if encoder is not None else SSLEncoder.from_pretrained(config.encoder)
        self._aux_trainable = True
        self._emotion_trainable = True

    @property
    def main_regression(self) -> bool:
        """The main task is a regression (one value), not emotion classes."""
        return self.main_task != "emotion"

    @property
    def main_outputs(self) -> int:
        """Outputs of the main head: C emotion classes, or 1 value."""
        return 1 if self.main_regression else len(self.emotion_labels)

    def _main_output(self, out: MetaSEROutput, main: torch.Tensor) -> None:
        """Store the main head's raw output (B, C) or (B, 1) in ``out``."""
        if self.main_regression:
            out.main_value = main.squeeze(-1)  # (B,)
        else:
            out.emotion_logits = main  # (B, C)

    # ------------------------------------------------------------------ forward
    def forward(self, features: FrozenFeatures, *, compute_emotion: bool = True) -> MetaSEROutput:
        """The boundary features (the output of ``encoder.prefix``) -> raw outputs.
        ``compute_emotion``: run the main head (emotion, or the regression main task)."""
        raise NotImplementedError

    def from_audio(
        self, waveforms: torch.Tensor, lengths: torch.Tensor, *, compute_emotion: bool = True, independent: bool = False
    ) -> MetaSEROutput:
        """The forward from audio: waveforms (B, S) zero-padded 16 kHz, lengths (B,) -> raw
        outputs, through ``encoder.prefix`` up to the encoder's frozen layers (no autograd there).
        ``independent``: every utterance computed as if it were alone in the batch."""
        audio = Waveforms(waveforms, lengths)
        feats = self.encoder.prefix(audio, self.encoder.frozen_layers, independent=independent)
        return self(feats, compute_emotion=compute_emotion)

    def infer(self, waveforms: torch.Tensor, lengths: torch.Tensor) -> MetaSEROutput:
        """What inference runs (the torch backend, the ONNX graph): :meth:`from_audio` with every
        utterance computed as if it were alone, so no answer depends on the batch."""
        return self.from_audio(waveforms, lengths, compute_emotion=True, independent=True)

    def layer_weights(self) -> torch.Tensor | None:
        """The layer-fusion weights (detached), or None (no weighted fusion)."""
        return None

    # ------------------------------------------------------- parameters, freezing
    def encoder_parameters(self) -> list[nn.Parameter]:
        """Parameters of the SSL encoder (the low learning-rate group)."""
        return list(self.encoder.parameters())

    def head_parameters(self) -> list[nn.Parameter]:
        """Everything not in the encoder: fusion weights, heads, task fusion, emotion head."""
        enc = {id(p) for p in self.encoder.parameters()}
        return [p for p in self.parameters() if id(p) not in enc]

    def freeze_encoder_layers(self, n: int) -> None:
        """Freeze the encoder's input prefix and first ``n`` transformer layers (see SSLEncoder)."""
        self.encoder.freeze_layers(n)

    def _heads(self) -> tuple[list[nn.Module], list[nn.Module], list[nn.Module]]:
        """(auxiliary heads, emotion path, layer fusion) modules, for :meth:`set_trainable`."""
        raise NotImplementedError

    def set_trainable(self, *, aux_heads: bool, emotion_head: bool, layer_fusion: bool = True) -> None:
        """Which heads train. ``aux_heads``: the auxiliary task heads; ``emotion_head``: the task
        fusion (co-attention) and the emotion classifier; ``layer_fusion``: the layer-fusion
        weights (they feed both; ``StageConfig.freeze_layer_fusion`` turns them off). The
        encoder follows :meth:`freeze_encoder_layers`. Frozen heads stay in eval mode (no
        dropout) while the model trains."""
        aux, emotion, fusion = self._heads()
        self._aux_trainable = bool(aux_heads)
        self._emotion_trainable = bool(emotion_head)
        for m in aux:
            m.requires_grad_(self._aux_trainable)
        for m in emotion:
            m.requires_grad_(self._emotion_trainable)
        for m in fusion:
            m.requires_grad_(bool(layer_fusion))
        if self.training:
            self.train(True)

    def _frozen_heads(self) -> Iterator[nn.Module]:
        aux, emotion, _ = self._heads()
        if not self._aux_trainable:
            yield from aux
        if not self._emotion_trainable:
            yield from emotion

    def train(self, mode: bool = True) -> SERModel:
        super().train(mode)  # the encoder keeps its frozen part in eval itself
        if mode:
            for m in self._frozen_heads():
                m.eval()
        return self

    # ---------------------------------------------------------------- save/load
    def saved_config(self) -> SavedModelConfig:
        from metaser import __version__

        return SavedModelConfig(
            model=self.config,
            emotion_labels=list(self.emotion_labels),
            tasks=list(self.tasks),
            encoder_config=self.encoder.hf_config_dict(),
            sample_rate=SAMPLE_RATE,
            normalize_waveform=self.encoder.normalize_waveform,
            metaser_version=__version__,
            main_task=self.main_task,
        )

    def save_pretrained(self, directory: str | Path) -> None:
        """Write ``config.json`` and ``model.safetensors`` into ``directory``."""
        from safetensors.torch import save_file

        from metaser import __version__

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.saved_config().write(directory)
        # Own, contiguous copies: safetensors refuses tensors that share storage (tied weights).
        state = {k: v.detach().to("cpu").contiguous().clone() for k, v in self.state_dict().items()}
        tmp = directory / f".{WEIGHTS_NAME}.tmp-{os.getpid()}"
        save_file(state, str(tmp), metadata={"format": "pt", "metaser_version": __version__})
        shared_mode(tmp)  # safetensors writes 0600: collaborators on shared storage could not read it
        os.replace(tmp, directory / WEIGHTS_NAME)

    def load_weights(self, directory: str | Path) -> None:
        """Load every weight of ``directory/model.safetensors`` (strict), with clear errors."""
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        weights = Path(directory) / WEIGHTS_NAME
        if not weights.is_file():
            raise MetaserError(f"{directory}: missing {WEIGHTS_NAME}", hint="a model directory is written by export")
        try:
            state = load_file(str(weights), device="cpu")
        except (SafetensorError, OSError) as e:
            raise MetaserError(f"{weights}: cannot read ({e})") from None
        try:
            result = self.load_state_dict(state, strict=False)
        except RuntimeError as e:  # shape mismatches
            raise MetaserError(f"{weights} does not match its config.json: {e}") from None
        if result.missing_keys or result.unexpected_keys:
            more = len(result.missing_keys) > 5 or len(result.unexpected_keys) > 5
            raise MetaserError(
                f"{weights} does not match its config.json: missing {result.missing_keys[:5]}, "
                f"unexpected {result.unexpected_keys[:5]}" + (" ..." if more else "")
            )

    def extra_repr(self) -> str:
        main = f"main={self.main_task} (regression)" if self.main_regression else f"classes={len(self.emotion_labels)}"
        return f"architecture={self.architecture}, aux={[t.name for t in self.tasks]}, {main}"
