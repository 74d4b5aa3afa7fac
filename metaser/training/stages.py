"""The stages of a run and the one function that builds a stage's Lightning module.

:func:`stage_plan` says which stages a run config trains, in order:

* ``model.architecture = metaser`` with auxiliary tasks: ``stage1`` (aux tasks, Eq. 1: CNN
  frozen, every transformer layer trained) then ``stage2`` (emotion, Eq. 2: the first
  ``stage2.freeze_layers`` = 4 layers frozen too, co-attention over the aux heads);
* no auxiliary task (Table IV "SER only") or ``architecture = baseline`` (Tables I/II): one
  ``emotion_only`` stage (``emotion_only.freeze_layers`` = 0: every transformer layer trained).

:func:`build_stage` is what the fold runner, ``metaser bench`` and the tests call: it freezes
the encoder prefix, picks what trains and returns the :class:`SERModule`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from metaser.data.labels import LabelSpace
from metaser.models.config import TaskSpec
from metaser.models.dropout import set_fast_dropout
from metaser.models.encoder.fft_conv import set_fft_pos_conv
from metaser.models.metaser import MetaSERModel
from metaser.training.config import RunConfig, StageConfig
from metaser.training.module import SERModule, objective, seed_all

__all__ = [
    "StageSpec",
    "stage_plan",
    "task_specs",
    "build_model",
    "build_stage",
    "load_stage_weights",
    "STAGE1_MODULES",
]

#: what stage 1 trains and stage 2 takes over; everything else starts from its seeded init.
STAGE1_MODULES = ("encoder.", "layer_fusion.", "fused_norm.", "task_heads.")


@dataclass(frozen=True)
class StageSpec:
    """One stage of a run: its name, what it optimises, its settings and the stage it starts from."""

    name: str
    losses: tuple[str, ...]  # aux task names (stage 1) or ("emotion",)
    config: StageConfig
    parent: str | None = None

    @property
    def objective(self) -> str:
        return objective(self.name)

    @property
    def monitor(self) -> tuple[str, str]:
        """(metric, mode) of checkpoint selection on validation."""
        return ("val/loss", "min") if self.objective == "aux" else ("val/ua", "max")

    @property
    def freeze_layers(self) -> int:
        return self.config.freeze_layers

    @property
    def epochs(self) -> int:
        return self.config.epochs


def stage_plan(cfg: RunConfig) -> list[StageSpec]:
    """The stages ``cfg`` trains, in the order they run."""
    aux = cfg.active_aux_tasks
    if not aux:
        return [StageSpec("emotion_only", ("emotion",), cfg.emotion_only)]
    return [StageSpec("stage1", tuple(aux), cfg.stage1), StageSpec("stage2", ("emotion",), cfg.stage2, parent="stage1")]


def task_specs(labels: LabelSpace, aux_tasks: list[str]) -> list[TaskSpec]:
    specs = []
    for t in aux_tasks:
        if t == "asr":
            specs.append(TaskSpec(name="asr", kind="ctc", labels=list(labels.vocab.tokens)))
        else:
            specs.append(TaskSpec(name=t, kind="classification", labels=list(labels.classes[t])))
    return specs


def compile_encoder_layers(model: MetaSERModel) -> None:
    """``torch.compile`` each transformer layer in place (``nn.Module.compile``).

    Per layer rather than the whole model: the frozen prefix runs under ``no_grad`` and the
    layer fusion needs every layer's output, so layers are the natural compiled units. State
    dict keys do not change, so checkpoints and exported models are the same as without it.
    """
    for layer in model.encoder.model.encoder.layers:
        layer.compile()


def build_model(cfg: RunConfig, labels: LabelSpace) -> MetaSERModel:
    """The run's model with its seeded initialisation (the same for every stage of a fold)."""
    seed_all(cfg.seed)
    model = MetaSERModel.build(cfg.model, labels.classes["emotion"], task_specs(labels, cfg.active_aux_tasks))
    if cfg.trainer.fast_dropout:  # after loading: WavLM's SDPA attention is installed by then
        set_fast_dropout(model, True)
    if cfg.trainer.fft_conv:
        set_fft_pos_conv(model.encoder.model, True)
    if cfg.trainer.compile:
        compile_encoder_layers(model)
    return model


def build_stage(model: MetaSERModel, spec: StageSpec, labels: LabelSpace, cfg: RunConfig) -> SERModule:
    """Freeze and unfreeze ``model`` for ``spec`` and wrap it in the stage's SERModule."""
    st = spec.config
    model.freeze_encoder_layers(st.freeze_layers)
    if spec.name == "stage1":
        model.set_trainable(aux_heads=True, emotion_head=False, layer_fusion=not st.freeze_layer_fusion)
    else:
        model.set_trainable(
            aux_heads=spec.name == "stage2" and st.train_aux_heads,
            emotion_head=True,
            layer_fusion=not st.freeze_layer_fusion,
        )
    aux = cfg.active_aux_tasks
    return SERModule(
        model,
        stage=spec.name,
        labels=labels,
        aux_weights={t: cfg.aux_tasks[t] for t in aux},
        stage_cfg=st,
        seed=cfg.seed,
    )


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
