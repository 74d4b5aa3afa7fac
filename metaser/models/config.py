"""Typed configs of the model components (one dataclass per component).

``ModelConfig`` is what a user writes in YAML under ``model:``. The label-dependent parts
(emotion classes, enabled auxiliary tasks with their class names / CTC vocabulary) come
from the data and are passed separately as :class:`TaskSpec` lists; ``save_pretrained``
stores both, so a model directory is self-contained.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass
class EncoderConfig:
    """The pretrained SSL speech encoder.

    name_or_path: a hub id (``microsoft/wavlm-base``), a local directory saved with
        ``save_pretrained``, or a random preset (``tiny-wavlm`` and the other ``tiny-*`` for
        tests and the offline demo, ``base-random-*`` for benchmarks; see ``encoder.PRESETS``).
    normalize_waveform: zero-mean / unit-variance per utterance before the CNN. ``None``
        takes ``do_normalize`` from the checkpoint's ``preprocessor_config.json`` when present,
        else False.
    attn_implementation: ``"eager"`` | ``"sdpa"`` | None. None means SDPA: transformers' own
        for wav2vec2 / HuBERT / data2vec-audio, metaser's for WavLM (whose transformers
        implementation is eager only; ``metaser.models.encoder.wavlm_sdpa``).
    gradient_checkpointing: trade compute for memory in the trainable transformer layers.
    dropout: if set, overrides the checkpoint's hidden, attention, activation and
        feature-projection dropout (None keeps the checkpoint's values).
    """

    name_or_path: str = "tiny-wavlm"
    normalize_waveform: bool | None = None
    attn_implementation: str | None = None
    gradient_checkpointing: bool = False
    dropout: float | None = None

    def __post_init__(self) -> None:
        if self.dropout is not None and not 0.0 <= self.dropout < 1.0:
            from metaser.errors import ConfigError

            raise ConfigError(f"encoder.dropout: must be in [0, 1), got {self.dropout!r}")


@dataclass
class FusionConfig:
    """How encoder layers are fused, and how aux-task hidden layers feed the emotion head.

    layers: ``ari`` (Eq. 3: [F_L ; sum_{i<L} w_i F_i], 2D per frame), ``weighted_sum``
        (sum_i w_i F_i over all L layers, D per frame) or ``last`` (F_L).
    weights: how the layer weights W of ARI / the weighted sum are normalised: ``softmax``
        (metaser's reading: w = softmax(a)) or ``raw`` (the paper's Eq. 3 read literally: W is
        a learned vector used as it is). Both start uniform.
    tasks: how the aux tasks' hidden layers reach the SER classifier (Sec. II-A-5, prose only):
        ``coattention`` (metaser's reading, the default: task-to-frame and frame-to-task
        attention, z = [u_bar ; e_1..e_K ; a_1..a_K]), ``guided`` (the minimal literal
        reading: the tasks weight the emotion frames, z = [u_bar ; a_1..a_K]), ``concat``
        ("w/o Co": pooled frames concatenated with the aux hidden layers) or ``none``
        (emotion from pooled frames only).
    normalize: ``none`` (the paper) or ``batch``: standardise each fused feature dimension
        over the valid frames of the batch (BatchNorm without affine, running statistics at
        inference). Not in the paper: it helps encoders whose features share a large common
        offset across utterances, such as the untrained tiny encoders of the offline demo.
    """

    layers: Literal["ari", "weighted_sum", "last"] = "ari"
    weights: Literal["softmax", "raw"] = "softmax"
    tasks: Literal["coattention", "guided", "concat", "none"] = "coattention"
    normalize: Literal["none", "batch"] = "none"


@dataclass
class HeadConfig:
    """A two-layer head: Linear(hidden_dim) -> ReLU -> Dropout -> Linear(outputs)."""

    hidden_dim: int = 256
    dropout: float = 0.1


@dataclass
class ModelConfig:
    """The composed model.

    architecture: ``metaser`` (fusion + aux heads + co-attention + emotion head) or
        ``baseline`` (last layer -> masked mean -> one Linear: the paper's baseline, trained in
        one emotion-only stage). The width H of the co-attention projections is
        ``aux_head.hidden_dim``, the width of the aux hidden layers a_k.
    """

    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    fusion: FusionConfig = field(default_factory=FusionConfig)
    aux_head: HeadConfig = field(default_factory=HeadConfig)
    emotion_head: HeadConfig = field(default_factory=lambda: HeadConfig(hidden_dim=256, dropout=0.2))
    architecture: Literal["metaser", "baseline"] = "metaser"


@dataclass
class TaskSpec:
    """One task the data provides.

    kind: ``classification`` (utterance level), ``regression`` (utterance level, one value:
        valence, arousal, ...) or ``ctc`` (frame level ASR).
    labels: class names, or for ``ctc`` the character tokens without the blank
        (CTC output index 0 is the blank, ``labels[i]`` is output ``i + 1``); empty for
        ``regression``.
    """

    name: str
    kind: Literal["classification", "regression", "ctc"]
    labels: list[str] = field(default_factory=list)

    @property
    def num_outputs(self) -> int:
        if self.kind == "regression":
            return 1
        return len(self.labels) + (1 if self.kind == "ctc" else 0)
