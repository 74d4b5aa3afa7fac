"""torch.profiler table of a few training steps of one `metaser bench train` mode (fold 1).

    python scripts/profile_step.py CONFIG STAGE MODE [key=value ...]
    python scripts/profile_step.py configs/demo/tiny.yaml stage2 tuned data.manifest=demo/manifest \
        model.encoder.name_or_path=base-random-wavlm model.aux_head.hidden_dim=256 model.emotion_head.hidden_dim=256

The stage is built by the bench's own ``metaser.bench.train.build_bench_stage`` (``mode_config``, the
fold runner's ``build_stage``, the same loaders and feature cache; on CPU); 2 untimed steps,
then 3 profiled ones. Prints the operators by self time and the share of matrix products (mm,
addmm, bmm).
"""

from __future__ import annotations

import sys
import tempfile

import torch

from metaser.bench.train import build_bench_stage, forever, mode_config
from metaser.config import load_config
from metaser.training.config import RunConfig
from metaser.training.trainer import quiet_lightning

MATMULS = ("aten::mm", "aten::addmm", "aten::bmm")


def main(config: str, stage: str, mode: str, overrides: list[str]) -> None:
    quiet_lightning()
    base = load_config(RunConfig, config, overrides)
    with tempfile.TemporaryDirectory() as work:
        cfg = mode_config(base, mode, work)
        if cfg.trainer.num_threads:
            torch.set_num_threads(cfg.trainer.num_threads)
        bench = build_bench_stage(cfg, stage, torch.device("cpu"))
        it = forever(bench.loader)
        for i in range(2):
            bench.step(next(it), i)
        with torch.profiler.profile() as prof:
            for i in range(3):
                bench.step(next(it), i)
    events = prof.key_averages()
    print(events.table(sort_by="self_cpu_time_total", row_limit=20))
    total = sum(e.self_cpu_time_total for e in events)
    mat = sum(e.self_cpu_time_total for e in events if e.key in MATMULS)
    print(f"matrix products (mm, addmm, bmm): {100 * mat / total:.1f} % of self CPU time")


if __name__ == "__main__":
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:])
