"""The stages of a run: :class:`StageSpec` is the single source of what a stage does.

:func:`stage_plan` says which stages a run config trains, in order:

* ``model.architecture = metaser`` with auxiliary tasks: ``stage1`` (aux tasks, Eq. 1: CNN
  frozen, every transformer layer trained) then ``stage2`` (emotion, Eq. 2: the first
  ``stage2.freeze_layers`` = 4 layers frozen too, co-attention over the aux heads);
* no auxiliary task (Table IV "SER only") or ``architecture = baseline`` (Tables I/II): one
  ``emotion_only`` stage (``emotion_only.freeze_layers`` = 0: every transformer layer trained).

A :class:`StageSpec` carries the stage's objective, its loss, its selection metric, what it
trains, its seed offset and the config fields its result depends on (its key material,
:mod:`metaser.training.keys`). :func:`build_stage` is what the fold runner, ``metaser bench``
and the tests call to freeze a model for a stage and wrap it in its Lightning module.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from metaser.data.labels import LabelSpace
from metaser.models.base import SERModel
from metaser.models.config import TaskSpec
from metaser.models.dropout import set_fast_dropout
from metaser.models.encoder.fft_conv import set_fft_pos_conv
from metaser.models.factory import build_ser_model
from metaser.training.config import STAGE_NAMES, RunConfig, StageConfig
from metaser.training.frozen import FrozenBoundary, frozen_boundary
from metaser.training.losses import AuxiliaryLoss, EmotionLoss
from metaser.training.module import SERModule, seed_all

__all__ = [
    "StageSpec",
    "Objective",
    "stage_plan",
    "stage_spec",
    "task_specs",
    "build_model",
    "build_stage",
    "load_stage_weights",
    "STAGE1_MODULES",
]

Objective = Literal["aux", "emotion"]

#: what stage 1 trains and stage 2 takes over; everything else starts from its seeded init.
STAGE1_MODULES = ("encoder.", "layer_fusion.", "fused_norm.", "task_heads.")

#: config fields every stage's result depends on (dotted paths of RunConfig); see keys.py
_COMMON_KEYS = (
    "seed",
    "data.split",
    "data.augment",
    "data.sampler.mode",
    "data.sampler.batch_size",
    "data.sampler.max_duration",
    "data.sampler.num_buckets",
    "data.sampler.shuffle",
    "data.sampler.drop_last",
    "data.sampler.max_utterance_seconds",
    "data.sampler.seed",
    "data.eval_max_duration",
    "model.encoder",
    "cache.mode",
    "trainer.accelerator",
    "trainer.devices",
    "trainer.strategy",
    "trainer.num_nodes",
    "trainer.precision",
    "trainer.accumulate_grad_batches",
    "trainer.deterministic",
    "trainer.limit_train_batches",
    "trainer.limit_val_batches",
    "trainer.matmul_precision",
    "trainer.compile",
    "trainer.fast_dropout",
    "trainer.fft_conv",
)


@dataclass(frozen=True)
class StageSpec:
    """One stage of a run.

    name: ``stage1`` | ``stage2`` | ``emotion_only`` (the RunConfig field with its settings);
    objective: ``aux`` (Eq. 1 over ``aux_weights``) or ``emotion`` (Eq. 2);
    config: the stage's :class:`StageConfig`; parent: the stage whose selected weights it starts
    from; seed_offset: keeps the stages' random streams apart; aux_weights: (task, w_k) pairs;
    trains_aux_heads / trains_emotion: what it trains besides the encoder's unfrozen layers.
    """

    name: str
    objective: Objective
    config: StageConfig
    parent: str | None
    seed_offset: int
    aux_weights: tuple[tuple[str, float], ...]
    trains_aux_heads: bool
    trains_emotion: bool

    @property
    def losses(self) -> tuple[str, ...]:
        """The loss terms: the aux tasks (stage 1) or ``("emotion",)``."""
        return tuple(t for t, _ in self.aux_weights) if self.objective == "aux" else ("emotion",)

    @property
    def monitor(self) -> tuple[str, str]:
        """(metric, mode) of checkpoint selection on validation."""
        return ("val/loss", "min") if self.objective == "aux" else ("val/ua", "max")

    @property
    def freeze_layers(self) -> int | str:
        """The frozen transformer layers as configured: a count, or ``"all"``."""
        return self.config.freeze_layers

    def frozen_layer_count(self, num_layers: int) -> int:
        """The frozen transformer layers of an encoder with ``num_layers`` layers."""
        n = self.config.freeze_layers
        if n == "all":
            return num_layers
        if n > num_layers:
            raise ValueError(f"{self.name}.freeze_layers={n}: the encoder has only {num_layers} layers")
        return n

    @property
    def epochs(self) -> int:
        return self.config.epochs

    def loss(self) -> AuxiliaryLoss | EmotionLoss:
        """The stage's loss: Eq. (1) for ``aux``, Eq. (2) for ``emotion``."""
        return AuxiliaryLoss(dict(self.aux_weights)) if self.objective == "aux" else EmotionLoss()

    def key_fields(self, cfg: RunConfig) -> list[str]:
        """The dotted RunConfig fields this stage's result depends on (besides the manifest, the
        parent stage and the key schema; :mod:`metaser.training.keys` hashes their values)."""
        fields = [*_COMMON_KEYS, self.name]
        if self.name == "stage1":  # no co-attention or emotion-head setting: shared by "w/o Co"
            fields += ["aux_tasks", "model.fusion.layers", "model.fusion.weights", "model.fusion.normalize"]
            fields += ["model.aux_head"]
        elif self.name == "stage2":
            fields += ["aux_tasks", "model.fusion", "model.aux_head", "model.emotion_head"]
        else:  # emotion_only: the baseline reads no fusion / head settings
            fields += ["model.architecture"]
            if not cfg.baseline:
                fields += ["model.fusion", "model.emotion_head"]
        return fields


def stage_spec(cfg: RunConfig, name: str) -> StageSpec:
    """The :class:`StageSpec` of stage ``name`` for ``cfg``."""
    if name not in STAGE_NAMES:
        raise ValueError(f"unknown stage {name!r}: one of {', '.join(STAGE_NAMES)}")
    st: StageConfig = getattr(cfg, name)
    weights = tuple((t, float(cfg.aux_tasks[t])) for t in cfg.active_aux_tasks)
    objective: Objective = "aux" if name == "stage1" else "emotion"
    return StageSpec(
        name=name,
        objective=objective,
        config=st,
        parent="stage1" if name == "stage2" else None,
        seed_offset=STAGE_NAMES.index(name),
        aux_weights=weights,
        trains_aux_heads=name == "stage1" or (name == "stage2" and st.train_aux_heads),
        trains_emotion=objective == "emotion",
    )


def stage_plan(cfg: RunConfig) -> list[StageSpec]:
    """The stages ``cfg`` trains, in the order they run."""
    if not cfg.active_aux_tasks:
        return [stage_spec(cfg, "emotion_only")]
    return [stage_spec(cfg, "stage1"), stage_spec(cfg, "stage2")]


def task_specs(labels: LabelSpace, aux_tasks: list[str]) -> list[TaskSpec]:
    specs = []
    for t in aux_tasks:
        if t == "asr":
            specs.append(TaskSpec(name="asr", kind="ctc", labels=list(labels.vocab.tokens)))
        else:
            specs.append(TaskSpec(name=t, kind="classification", labels=list(labels.classes[t])))
    return specs


def compile_encoder_layers(model: SERModel) -> None:
    """``torch.compile`` each transformer layer in place (``nn.Module.compile``).

    Per layer rather than the whole model: the frozen prefix runs under ``no_grad`` and the
    layer fusion needs every layer's output, so layers are the natural compiled units. State
    dict keys do not change, so checkpoints and exported models are the same as without it.
    """
    for layer in model.encoder.model.encoder.layers:
        layer.compile()


def build_model(cfg: RunConfig, labels: LabelSpace) -> SERModel:
    """The run's model with its seeded initialisation (the same for every stage of a fold)."""
    seed_all(cfg.seed)
    model = build_ser_model(cfg.model, labels.classes["emotion"], task_specs(labels, cfg.active_aux_tasks))
    if cfg.trainer.fast_dropout:  # after loading: WavLM's SDPA attention is installed by then
        set_fast_dropout(model, True)
    if cfg.trainer.fft_conv:
        set_fft_pos_conv(model.encoder.model, True)
    if cfg.trainer.compile:
        compile_encoder_layers(model)
    return model


def build_stage(model: SERModel, spec: StageSpec, labels: LabelSpace, cfg: RunConfig) -> SERModule:
    """Freeze and unfreeze ``model`` for ``spec`` and wrap it in the stage's SERModule (whose
    ``boundary`` says where the frozen part ends and how it is computed)."""
    n = spec.frozen_layer_count(model.encoder.num_layers)
    model.freeze_encoder_layers(n)
    model.set_trainable(
        aux_heads=spec.trains_aux_heads,
        emotion_head=spec.trains_emotion,
        layer_fusion=not spec.config.freeze_layer_fusion,
    )
    boundary: FrozenBoundary = frozen_boundary(cfg, n, model.encoder)
    return SERModule(model, spec=spec, boundary=boundary, labels=labels, seed=cfg.seed)


def load_stage_weights(model: torch.nn.Module, ckpt_path, *, prefixes: tuple[str, ...] | None = None) -> None:
    """Load the ``model.*`` weights of a Lightning checkpoint into ``model``.

    ``prefixes``: only parameters whose names start with one of them (stage 2 takes over
    :data:`STAGE1_MODULES` from stage 1; the co-attention and emotion head keep their seeded
    init, so a stage 1 shared by variants that differ only there gives the same stage 2).
    """
    state = torch.load(ckpt_path, map_location="cpu", weights_only=False)["state_dict"]
    sd = {k[len("model.") :]: v for k, v in state.items() if k.startswith("model.")}
    if prefixes is None:
        model.load_state_dict(sd, strict=True)
        return
    sd = {k: v for k, v in sd.items() if k.startswith(prefixes)}
    own = {k for k in model.state_dict() if k.startswith(prefixes)}
    missing, unexpected = own - set(sd), set(sd) - own
    if missing or unexpected:
        raise RuntimeError(
            f"{ckpt_path}: stage weights do not match the model "
            f"(missing {sorted(missing)[:3]}, unexpected {sorted(unexpected)[:3]})"
        )
    model.load_state_dict(sd, strict=False)
