"""torch.profiler table of a few training steps of one `metaser bench train` mode (fold 1).

    python scripts/profile_step.py CONFIG STAGE MODE [key=value ...]
    python scripts/profile_step.py configs/demo/tiny.yaml stage2 tuned data.manifest=demo/manifest \
        model.encoder.name_or_path=base-random-wavlm model.aux_head.hidden_dim=256 model.emotion_head.hidden_dim=256

The stage is built and trained by the bench's own worker (``metaser.bench.train_worker``:
``mode_config``, the fold runner's ``build_stage``, the same loaders and feature cache, the
Trainer arguments and training step of ``metaser train``; on CPU); 2 untimed steps, then 3
profiled ones. Prints the operators by self time and the share of matrix products (mm, addmm,
bmm).
"""

from __future__ import annotations

import sys
import tempfile

import pytorch_lightning as pl
import torch

from metaser.bench.train import mode_config
from metaser.bench.train_worker import build_bench_stage, run_steps
from metaser.config import load_config
from metaser.training.config import RunConfig
from metaser.training.trainer import configure_torch, quiet_lightning

MATMULS = ("aten::mm", "aten::addmm", "aten::bmm")


class _Profile(pl.Callback):
    """torch.profiler over optimizer steps ``start`` .. ``start + count - 1``."""

    def __init__(self, start: int, count: int):
        self.start, self.count = start, count
        self.prof = torch.profiler.profile()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.start:
            self.prof.__enter__()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == self.start + self.count:
            self.prof.__exit__(None, None, None)


def main(config: str, stage: str, mode: str, overrides: list[str]) -> None:
    quiet_lightning()
    base = load_config(RunConfig, config, overrides + ["trainer.accelerator=cpu"])
    with tempfile.TemporaryDirectory() as work:
        cfg = mode_config(base, mode, work)
        configure_torch(cfg.trainer)
        bench = build_bench_stage(cfg, stage)
        profile = _Profile(2, 3)
        run_steps(cfg, bench, 3, 2, work, callbacks=[profile])
    events = profile.prof.key_averages()
    print(events.table(sort_by="self_cpu_time_total", row_limit=20))
    total = sum(e.self_cpu_time_total for e in events)
    mat = sum(e.self_cpu_time_total for e in events if e.key in MATMULS)
    print(f"matrix products (mm, addmm, bmm): {100 * mat / total:.1f} % of self CPU time")


if __name__ == "__main__":
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:])
