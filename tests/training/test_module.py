"""SERModule / build_stage: optimiser parameter groups and what each stage trains, after one real step.

The model, label space, loaders and stage modules are built with the functions ``train_fold``
uses (fold 1 of the synthetic corpus, the tiny demo preset); one optimiser step runs through a
Lightning Trainer.
"""

from __future__ import annotations

import re

import pytest
import pytorch_lightning as pl
import torch

ENCODER_LR, HEAD_LR = 2e-3, 5e-3
FREEZE = 4


@pytest.fixture(scope="module")
def parts(make_run_config, tmp_path_factory):
    """(cfg, labels, aux task names, FoldData) of fold 1."""
    from metaser.data.dataset import build_label_space
    from metaser.data.manifest import load_manifest
    from metaser.rundir import manifest_file
    from metaser.training.datamodule import FoldData
    from metaser.training.fold import resolve_fold

    cfg = make_run_config(
        tmp_path_factory.mktemp("module"),
        f"stage1.optim.encoder_lr={ENCODER_LR}",
        f"stage1.optim.head_lr={HEAD_LR}",
        f"stage2.optim.encoder_lr={ENCODER_LR}",
        f"stage2.optim.head_lr={HEAD_LR}",
    )
    cuts = load_manifest(manifest_file(cfg.data.manifest))
    train, valid, test = resolve_fold(cfg, cuts, 1).subsets(cuts)
    aux = list(cfg.aux_tasks)
    labels = build_label_space(train, aux)
    return cfg, labels, aux, FoldData(cfg, labels, aux, train, valid, test)


def build_model(cfg, labels, aux):
    from metaser.training.stages import build_model as build

    assert aux == cfg.active_aux_tasks
    return build(cfg, labels)


def stage(cfg, model, labels, name):
    """The stage module exactly as train_fold builds it."""
    from metaser.training.stages import build_stage, stage_plan

    spec = next(s for s in stage_plan(cfg) if s.name == name)
    return build_stage(model, spec, labels, cfg)


def one_step(module, data, precision: str = "32-true") -> dict[str, torch.Tensor]:
    """Parameters before a single optimiser step (the module is updated in place)."""
    before = {k: v.detach().clone() for k, v in module.model.named_parameters()}
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=1,
        precision=precision,
        gradient_clip_val=module.stage_cfg.optim.grad_clip,
        max_steps=1,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        use_distributed_sampler=False,
    )
    trainer.fit(module, datamodule=data)
    assert trainer.global_step == 1
    return before


def changed(module, before) -> set[str]:
    return {k for k, v in module.model.named_parameters() if not torch.equal(v, before[k])}


def layer(name: str) -> int | None:
    m = re.match(r"encoder\.model\.encoder\.layers\.(\d+)\.", name)
    return int(m.group(1)) if m else None


def assert_groups(module) -> None:
    """Two groups (encoder / heads) with the configured lrs, holding exactly the trainable params."""
    opt = module.configure_optimizers()
    assert isinstance(opt, torch.optim.Adam)
    assert opt.defaults["fused"] is module.stage_cfg.optim.fused is True  # the default: fused kernels, CPU too
    groups = {g["name"]: g for g in opt.param_groups}
    assert list(groups) == ["encoder", "heads"]
    assert (groups["encoder"]["lr"], groups["heads"]["lr"]) == (ENCODER_LR, HEAD_LR)
    enc_ids = {id(p) for p in module.model.encoder.parameters()}
    in_opt = [p for g in opt.param_groups for p in g["params"]]
    assert len(in_opt) == len({id(p) for p in in_opt})  # no parameter twice
    assert {id(p) for p in in_opt} == {id(p) for p in module.model.parameters() if p.requires_grad}
    assert all(id(p) in enc_ids for p in groups["encoder"]["params"])
    assert not any(id(p) in enc_ids for p in groups["heads"]["params"])


def test_stage1_trains_aux_heads_and_encoder_not_emotion_head(parts):
    from metaser.training.module import SERModule

    cfg, labels, aux, data = parts
    model = build_model(cfg, labels, aux)
    module = stage(cfg, model, labels, "stage1")
    assert isinstance(module, SERModule) and module.objective == "aux"
    assert_groups(module)
    names = dict(model.named_parameters())
    emotion = [k for k in names if k.startswith(("emotion_head.", "task_fusion."))]
    assert emotion and not any(names[k].requires_grad for k in emotion)

    before = one_step(module, data)
    moved = changed(module, before)
    assert not moved & set(emotion)
    for task in ("gender", "speaker", "style", "asr"):
        assert any(k.startswith(f"task_heads.{task}.") for k in moved), task
    assert {layer(k) for k in moved if layer(k) is not None} == set(range(12))  # freeze_layers=0
    assert not any(k.startswith("encoder.model.feature_extractor.") for k in moved)  # the CNN never trains


def test_stage2_freezes_aux_heads_and_first_layers(parts):
    from metaser.training.module import SERModule

    cfg, labels, aux, data = parts
    assert cfg.stage2.freeze_layers == FREEZE and cfg.stage2.train_aux_heads is False
    model = build_model(cfg, labels, aux)
    module = stage(cfg, model, labels, "stage2")
    assert isinstance(module, SERModule) and module.objective == "emotion"
    assert_groups(module)

    before = one_step(module, data)
    moved = changed(module, before)
    frozen = [
        k
        for k in before
        if k.startswith("task_heads.")
        or (layer(k) is not None and layer(k) < FREEZE)
        or k.startswith(("encoder.model.feature_projection.", "encoder.model.encoder.pos_conv_embed."))
    ]
    assert frozen and not moved & set(frozen)
    assert {layer(k) for k in moved if layer(k) is not None} == set(range(FREEZE, 12))
    assert any(k.startswith("emotion_head.") for k in moved)
    assert any(k.startswith("task_fusion.") for k in moved)
    assert any(k.startswith("layer_fusion.") for k in moved)


def test_stage2_can_keep_training_aux_heads(parts):
    from metaser.config import apply_overrides

    cfg, labels, aux, _ = parts
    cfg = apply_overrides(cfg, ["stage2.train_aux_heads=true"])
    model = build_model(cfg, labels, aux)
    module = stage(cfg, model, labels, "stage2")
    assert module.spec.trains_aux_heads and module.spec.trains_emotion
    assert_groups(module)
    opt = module.configure_optimizers()
    heads = {id(p) for p in opt.param_groups[1]["params"]}
    assert all(id(p) in heads for p in model.task_heads.parameters())


def test_per_step_reseed_makes_dropout_independent_of_prior_rng_use(parts):
    """The random stream of a training step depends on (seed, stage, epoch, batch) only."""
    cfg, labels, aux, _ = parts
    module = stage(cfg, build_model(cfg, labels, aux), labels, "stage1")
    draws = []
    for noise in (0, 5):
        torch.rand(noise)  # unrelated use of the global RNG before the step
        module.on_train_batch_start(None, 3)
        draws.append(torch.rand(4))
    assert torch.equal(draws[0], draws[1])
    module.on_train_batch_start(None, 4)
    assert not torch.equal(torch.rand(4), draws[0])


@pytest.mark.parametrize("name", ["stage1", "stage2", "emotion_only"])
def test_one_step_of_every_stage_kind_in_bf16_mixed(parts, name):
    """The documented fast mode: fused Adam, gradient clipping and bf16-mixed together (Lightning's
    mixed-precision plugin refuses to clip for a fused optimizer; the module clips itself). On
    CPU this takes the same plugin path as on a GPU."""
    from metaser.config import apply_overrides

    cfg, labels, aux, data = parts
    if name == "emotion_only":
        cfg = apply_overrides(cfg, ["aux_tasks={}"])
        aux = []
    model = build_model(cfg, labels, aux)
    module = stage(cfg, model, labels, name)
    assert module.stage_cfg.optim.fused and module.stage_cfg.optim.grad_clip == 5.0
    before = one_step(module, data, precision="bf16-mixed")
    assert changed(module, before)


def test_clipping_bounds_the_gradient_norm(parts):
    """configure_gradient_clipping clips the norm of every optimised gradient to optim.grad_clip."""
    from metaser.config import apply_overrides

    cfg, labels, aux, data = parts
    cfg = apply_overrides(cfg, ["stage1.optim.grad_clip=1e-6"])
    module = stage(cfg, build_model(cfg, labels, aux), labels, "stage1")
    opt = module.configure_optimizers()
    batch = next(iter(data.train_dataloader()))
    module.loss_on(batch).total.backward()
    module.configure_gradient_clipping(opt)
    params = [p for g in opt.param_groups for p in g["params"] if p.grad is not None]
    assert float(torch.nn.utils.get_total_norm([p.grad for p in params])) <= 1e-6 * (1 + 1e-4)


def test_stage1_can_freeze_the_layer_fusion(parts):
    """stage1.freeze_layer_fusion: the ARI weights stay at their init in stage 1 (Sec. IV-D)."""
    from metaser.config import apply_overrides

    cfg, labels, aux, data = parts
    cfg = apply_overrides(cfg, ["stage1.freeze_layer_fusion=true"])
    model = build_model(cfg, labels, aux)
    module = stage(cfg, model, labels, "stage1")
    assert not model.layer_fusion.logits.requires_grad
    assert_groups(module)
    before = one_step(module, data)
    moved = changed(module, before)
    assert not any(k.startswith("layer_fusion.") for k in moved)
    assert any(k.startswith("task_heads.") for k in moved)


@pytest.mark.parametrize("scheduler,warmup", [("none", 4), ("cosine", 2), ("linear", 0)])
def test_lr_schedules_are_transformers_warmup_schedules(parts, scheduler, warmup):
    """warm-up then constant / cosine / linear decay over the stage's steps (transformers' schedules)."""
    import math

    from metaser.config import apply_overrides

    cfg, labels, aux, _ = parts
    cfg = apply_overrides(cfg, [f"stage1.optim.scheduler={scheduler}", f"stage1.optim.warmup_steps={warmup}"])
    module = stage(cfg, build_model(cfg, labels, aux), labels, "stage1")

    class FakeTrainer:
        estimated_stepping_batches = 10

    module._trainer = FakeTrainer()  # only the step count is read
    opts, scheds = module.configure_optimizers()
    sched = scheds[0]["scheduler"]
    assert scheds[0]["interval"] == "step"
    factors = []
    for _ in range(10):
        factors.append(opts[0].param_groups[1]["lr"] / HEAD_LR)
        opts[0].step()
        sched.step()
    for step, f in enumerate(factors):
        if step < warmup:
            expected = step / warmup
        elif scheduler == "cosine":
            expected = 0.5 * (1 + math.cos(math.pi * (step - warmup) / (10 - warmup)))
        elif scheduler == "linear":
            expected = (10 - step) / (10 - warmup)
        else:
            expected = 1.0
        assert f == pytest.approx(expected, abs=1e-9), (step, factors)


class _Scripted(pl.LightningModule):
    """One parameter; each validation logs the next value of ``script`` under ``metric``."""

    def __init__(self, metric: str, script: list[float]):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.metric, self.script, self.validations = metric, script, 0

    def training_step(self, batch, batch_idx):
        return (self.w - batch[0]).pow(2).sum()

    def validation_step(self, batch, batch_idx):
        pass

    def on_validation_epoch_end(self):
        self.log(self.metric, self.script[self.validations])
        self.validations += 1

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


@pytest.mark.parametrize("name,monitor,mode", [("stage1", "val/loss", "min"), ("stage2", "val/ua", "max")])
def test_early_stopping_watches_the_stages_selection_metric(parts, tmp_path, name, monitor, mode):
    from pytorch_lightning.callbacks import EarlyStopping, ModelCheckpoint

    from metaser.config import apply_overrides
    from metaser.training.stages import stage_plan
    from metaser.training.trainer import make_trainer

    cfg, *_ = parts
    cfg = apply_overrides(cfg, [f"{name}.early_stopping_patience=2", f"{name}.epochs=8", "trainer.accelerator=cpu"])
    spec = next(s for s in stage_plan(cfg) if s.name == name)
    assert spec.monitor == (monitor, mode)
    trainer, ckpt = make_trainer(cfg, spec, tmp_path)
    stops = [c for c in trainer.callbacks if isinstance(c, EarlyStopping)]
    assert len(stops) == 1 and (stops[0].monitor, stops[0].mode, stops[0].patience) == (monitor, mode, 2)
    assert (ckpt.monitor, ckpt.mode) == (monitor, mode)
    # a real fit: it stops after 2 epochs without improvement of that metric, in that direction
    worse = [1.0, 0.9, 1.1, 1.2, 1.3, 1.4] if mode == "min" else [0.5, 0.6, 0.4, 0.3, 0.2, 0.1]
    module = _Scripted(monitor, worse)
    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.ones(2, 1)), batch_size=2)
    trainer.fit(module, train_dataloaders=data, val_dataloaders=data)
    assert module.validations == 4 and trainer.current_epoch < 8
    none = apply_overrides(cfg, [f"{name}.early_stopping_patience=null"])
    trainer, _ = make_trainer(none, next(s for s in stage_plan(none) if s.name == name), tmp_path)
    assert not any(isinstance(c, EarlyStopping) for c in trainer.callbacks)
    assert any(isinstance(c, ModelCheckpoint) for c in trainer.callbacks)


def test_importing_metaser_changes_no_warning_filter_or_logger():
    """Logging and warning filters are set when a training command runs, not at import."""
    import logging
    import subprocess
    import sys

    code = (
        "import warnings, logging, torch, pytorch_lightning, transformers, lhotse, torchmetrics; "
        "from transformers import AutoModel; before = list(warnings.filters); "
        "lvl = logging.getLogger('pytorch_lightning').level; "
        "import metaser.training.fold, metaser.experiments.cv, metaser.cli; "
        "assert warnings.filters == before, 'filters changed'; "
        "assert logging.getLogger('pytorch_lightning').level == lvl; print('ok')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]
    from metaser.training.trainer import quiet_lightning

    level = logging.getLogger("pytorch_lightning").level
    try:
        quiet_lightning()
        assert logging.getLogger("pytorch_lightning").level == logging.WARNING
    finally:
        logging.getLogger("pytorch_lightning").setLevel(level)


def test_fused_adam_takes_the_loops_steps():
    """optim.fused (the default) changes the kernel, not the update: 5 steps agree with torch's
    per-parameter loop up to float rounding."""
    torch.manual_seed(0)
    ps = [torch.randn(64, 33), torch.randn(7)]
    grads = [[torch.randn_like(p) for p in ps] for _ in range(5)]
    out = []
    for kw in ({"fused": True}, {"foreach": False}):
        qs = [p.clone().requires_grad_(True) for p in ps]
        opt = torch.optim.Adam(qs, lr=1e-3, **kw)
        for g in grads:
            for q, gq in zip(qs, g):
                q.grad = gq.clone()
            opt.step()
        out.append(qs)
    for a, b in zip(*out):
        assert not torch.equal(a, ps[0] if a.shape == ps[0].shape else ps[1])  # it moved
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
