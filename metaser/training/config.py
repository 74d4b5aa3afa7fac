"""Typed configs of a training run: optimisation, stages, Lightning trainer, and the run.

A YAML preset (``configs/...``) is a :class:`RunConfig`; every key can be overridden on the
command line with ``key.sub=value`` (see :mod:`metaser.config`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from metaser.data.config import DataConfig
from metaser.models.config import ModelConfig

#: Auxiliary tasks of the paper; any other categorical manifest field may be used too.
PAPER_AUX_TASKS = ("gender", "speaker", "style", "asr")

#: The stages a run can train, each configured by the RunConfig field of the same name
#: (what each one does: :mod:`metaser.training.stages`).
STAGE_NAMES = ("stage1", "stage2", "emotion_only")


@dataclass
class OptimConfig:
    """Two parameter groups: the SSL encoder and everything else (the paper: 1e-5 / 1e-4)."""

    optimizer: Literal["adam", "adamw"] = "adam"
    encoder_lr: float = 1e-5
    head_lr: float = 1e-4
    weight_decay: float = 0.0
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    warmup_steps: int = 0
    scheduler: Literal["none", "plateau", "cosine", "linear"] = "none"  # transformers' schedules (+ warmup_steps)
    plateau_patience: int = 3
    plateau_factor: float = 0.5
    grad_clip: float | None = 5.0
    fused: bool = True  # torch's fused Adam kernel (CPU and CUDA); false: the per-parameter loop

    def __post_init__(self) -> None:
        for name in ("encoder_lr", "head_lr"):
            value = getattr(self, name)
            if not value > 0:
                raise ValueError(f"optim.{name} must be > 0, got {value!r}")
        if len(self.betas) != 2 or not all(0.0 <= b < 1.0 for b in self.betas):
            raise ValueError(f"optim.betas must be two numbers in [0, 1), got {self.betas!r}")
        if self.weight_decay < 0:
            raise ValueError(f"optim.weight_decay must be >= 0, got {self.weight_decay!r}")
        if self.warmup_steps < 0:
            raise ValueError(f"optim.warmup_steps must be >= 0, got {self.warmup_steps!r}")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise ValueError(f"optim.grad_clip must be > 0 or null (no clipping), got {self.grad_clip!r}")
        if self.plateau_patience < 0 or not 0.0 < self.plateau_factor < 1.0:
            raise ValueError("optim.plateau_patience must be >= 0 and optim.plateau_factor in (0, 1)")


@dataclass
class StageConfig:
    """One fine-tuning stage.

    freeze_layers: the first n transformer layers are frozen (stage 1: 0, stage 2: 4; the
        CNN is always frozen), or ``all``: the whole encoder is frozen and only the layer fusion
        and the heads train (the SUPERB / EmoBox frozen-encoder setting, with
        ``model.fusion.layers: weighted_sum``).
    train_aux_heads: read by stage 2 only: whether the auxiliary heads keep training there.
        RunConfig's ``stage2`` sets it false (the heads are frozen; their hidden layers still
        feed the co-attention), as every shipped preset does.
    freeze_layer_fusion: keep the layer-fusion weights (ARI's W, or the weighted sum's) fixed
        at their initial values in this stage. The paper (Sec. IV-D) names freezing the ARI
        module in stage 1 as a mitigation when few auxiliary tasks are used; off by default.
    early_stopping_patience: epochs without improvement of the selection metric (None = off).
    """

    epochs: int = 100
    freeze_layers: int | Literal["all"] = 0
    train_aux_heads: bool = True
    freeze_layer_fusion: bool = False
    early_stopping_patience: int | None = None
    optim: OptimConfig = field(default_factory=OptimConfig)


@dataclass
class TrainerConfig:
    """The training loop and the torch runtime.

    accelerator, devices, strategy, num_nodes, precision, accumulate_grad_batches,
    log_every_n_steps, deterministic, enable_progress_bar, limit_train_batches and
    limit_val_batches go to ``lightning.Trainer`` as they are (multi-GPU / multi-node need no
    code change). The others are metaser's: ``matmul_precision`` and ``num_threads`` set torch's
    global state when a training command starts (:func:`metaser.training.trainer.configure_torch`);
    ``compile``, ``fast_dropout`` and ``fft_conv`` change how the model is built
    (:func:`metaser.training.stages.build_model`).
    """

    accelerator: str = "auto"
    devices: int | str = "auto"
    strategy: str = "auto"
    num_nodes: int = 1
    precision: str = "32-true"
    accumulate_grad_batches: int = 1
    log_every_n_steps: int = 10
    deterministic: bool = False
    enable_progress_bar: bool = True
    limit_train_batches: float | int | None = None
    limit_val_batches: float | int | None = None
    # "high" runs fp32 matrix products as TF32 on Ampere+ GPUs (the paper presets say "highest":
    # true fp32, as their precision 32-true; the fast mode sets "high")
    matmul_precision: Literal["highest", "high", "medium"] = "high"
    compile: bool = False  # torch.compile each encoder transformer layer (in place; checkpoints unchanged)
    num_threads: int | None = None  # torch intra-op threads (None = torch's default, one per core)
    fast_dropout: bool = True  # CPU: dropout masks from numpy's PCG64, not torch's bernoulli_ (metaser.models.dropout)
    fft_conv: bool = True  # CPU: the positional convolution through FFTs (metaser.models.encoder.fft_conv)

    def __post_init__(self) -> None:
        if "spawn" in self.strategy:
            raise ValueError(
                f"trainer.strategy={self.strategy!r}: spawn-based strategies cannot pickle the "
                "transformers encoders (weight-norm parametrizations); use 'ddp', which Lightning "
                "launches as subprocesses (or run under torchrun / srun)"
            )
        if self.num_threads is not None and self.num_threads < 1:
            raise ValueError(f"trainer.num_threads must be >= 1, got {self.num_threads}")


@dataclass
class CacheConfig:
    """The frozen-prefix feature cache (see :mod:`metaser.training.frozen`).

    mode: ``auto`` (every utterance computed as if it were alone in its batch: a group-norm
        CNN normalises over its valid frames, every encoder gets an attention mask; the frozen
        prefix is cached wherever only the discrete speed set augments the waveform),
        ``strict`` (HF's padded-batch computation, as the paper pads its batches; cached only
        where that equals the utterance alone: group-norm encoders then train from audio; the
        IEMOCAP paper presets set it) or ``none`` (padded, never cached). Not "on"/"off": YAML
        reads those as booleans. Part of the stage keys (see :mod:`metaser.training.keys`):
        with a group-norm encoder it changes the result.
    dir: where cached features live; None = ``<output_dir>/<name>/cache``.
    storage: ``auto`` (host RAM when the estimate fits in ``max_memory_gb``, else
        memory-mapped files on disk), ``memory`` or ``disk``.
    """

    mode: Literal["auto", "strict", "none"] = "auto"
    dir: str | None = None
    storage: Literal["auto", "memory", "disk"] = "auto"
    max_memory_gb: float = 8.0


@dataclass
class RunConfig:
    """A complete experiment: data, model, tasks and its stages.

    Which stages run follows from ``model.architecture`` and ``aux_tasks`` (the one place):

    * ``metaser`` with auxiliary tasks: ``stage1`` (aux tasks, Eq. 1) then ``stage2`` (emotion, Eq. 2);
    * ``metaser`` without auxiliary tasks (Table IV "SER only") or ``baseline`` (Tables I/II):
      one emotion-only stage, configured by ``emotion_only``.

    aux_tasks: task name -> loss weight w_k in stage 1 (loss = sum_k w_k L_k).
    folds: which folds to run (1-based); empty = all.
    store_dir: where trained stages are kept by content key, so that a stage shared by several
        runs of one output tree is trained once; None = ``<output_dir>/<name>/stages``.
    reuse: reuse a stage already trained under the same key in ``store_dir``.
    """

    name: str = "run"
    output_dir: str = "runs"
    seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    aux_tasks: dict[str, float] = field(
        default_factory=lambda: {"gender": 1.0, "speaker": 1.0, "style": 1.0, "asr": 1.0}
    )
    stage1: StageConfig = field(default_factory=lambda: StageConfig(freeze_layers=0))
    stage2: StageConfig = field(default_factory=lambda: StageConfig(freeze_layers=4, train_aux_heads=False))
    emotion_only: StageConfig = field(default_factory=lambda: StageConfig(freeze_layers=0))
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    cache: CacheConfig = field(default_factory=CacheConfig)
    folds: list[int] = field(default_factory=list)
    store_dir: str | None = None
    reuse: bool = True

    def __post_init__(self) -> None:
        for task, w in self.aux_tasks.items():
            if task == "emotion":
                raise ValueError("aux_tasks: 'emotion' is the main task, not an auxiliary one")
            if w < 0:
                raise ValueError(f"aux_tasks.{task}: the loss weight must be >= 0, got {w}")
        for name in STAGE_NAMES:
            st = getattr(self, name)
            if st.epochs < 1:
                raise ValueError(f"{name}.epochs must be >= 1, got {st.epochs}")
            if st.freeze_layers != "all" and st.freeze_layers < 0:
                raise ValueError(f"{name}.freeze_layers must be >= 0 or 'all'")

    @property
    def baseline(self) -> bool:
        """The paper's baseline model (encoder -> last layer -> mean -> one Linear)."""
        return self.model.architecture == "baseline"

    @property
    def active_aux_tasks(self) -> list[str]:
        """The auxiliary tasks this run trains (none for the baseline)."""
        return [] if self.baseline else list(self.aux_tasks)

    @property
    def run_dir(self):
        from pathlib import Path

        return Path(self.output_dir) / self.name
