"""torch.profiler table of a few training steps of one `metaser bench train` mode (fold 1).

    python scripts/profile_step.py CONFIG STAGE MODE [key=value ...]
    python scripts/profile_step.py configs/demo/tiny.yaml stage2 tuned data.manifest=demo/manifest \
        model.encoder.name_or_path=base-random-wavlm model.aux_head.hidden_dim=256 model.emotion_head.hidden_dim=256

The stage is built as the bench builds it (``bench_train.mode_config``, ``build_stage``, the
same loaders and feature cache); 2 untimed steps, then 3 profiled ones. Prints the operators by
self time and the share of matrix products (mm, addmm, bmm).
"""

from __future__ import annotations

import sys
import tempfile

import torch

from metaser.config import load_config
from metaser.data.dataset import make_dataloader
from metaser.experiments.bench_train import _forever, mode_config
from metaser.training.cache import stage_features
from metaser.training.config import RunConfig
from metaser.training.fold import prepare_fold
from metaser.training.stages import build_model, build_stage
from metaser.training.trainer import quiet_lightning

MATMULS = ("aten::mm", "aten::addmm", "aten::bmm")


def main(config: str, stage: str, mode: str, overrides: list[str]) -> None:
    quiet_lightning()
    base = load_config(RunConfig, config, overrides)
    with tempfile.TemporaryDirectory() as work:
        cfg = mode_config(base, mode, work)
        if cfg.trainer.num_threads:
            torch.set_num_threads(cfg.trainer.num_threads)
        ctx = prepare_fold(cfg, 1)
        spec = ctx.spec(stage)
        model = build_model(cfg, ctx.labels)
        module = build_stage(model, spec, ctx.labels, cfg)
        parts = {"train": ctx.parts["train"], "valid": [], "test": []}
        store = stage_features(cfg, model, spec.freeze_layers, parts, ctx.labels, ctx.manifest_sha)
        opt = module.configure_optimizers()
        opt = opt[0][0] if isinstance(opt, tuple) else opt
        module.train()
        loader = make_dataloader(ctx.parts["train"], ctx.labels, ctx.aux, cfg.data, train=True, features=store)
        params = [p for g in opt.param_groups for p in g["params"]]

        def step(batch, i: int) -> None:
            module.on_train_batch_start(batch, i)
            module._loss(module(batch), batch).total.backward()
            if spec.config.optim.grad_clip:
                torch.nn.utils.clip_grad_norm_(params, spec.config.optim.grad_clip)
            opt.step()
            opt.zero_grad(set_to_none=True)

        it = _forever(loader)
        for i in range(2):
            step(next(it), i)
        with torch.profiler.profile() as prof:
            for i in range(3):
                step(next(it), i)
    events = prof.key_averages()
    print(events.table(sort_by="self_cpu_time_total", row_limit=20))
    total = sum(e.self_cpu_time_total for e in events)
    mat = sum(e.self_cpu_time_total for e in events if e.key in MATMULS)
    print(f"matrix products (mm, addmm, bmm): {100 * mat / total:.1f} % of self CPU time")


if __name__ == "__main__":
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:])
