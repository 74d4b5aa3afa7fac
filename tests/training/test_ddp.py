"""Distributed training: 2 CPU processes (gloo) through the real fold runner.

``trainer.strategy=ddp`` (Lightning re-launches the script for rank 1), fold 1, 1 epoch per
stage. A callback logs each rank's training batch ids; the ranks must see disjoint batches
that together cover the training part, and the fold's test predictions (written by rank 0
only) must cover the whole test part, not rank 0's shard.

``ddp_spawn`` is not used: it pickles the model into the workers, which transformers' speech
encoders do not survive (weight-norm parametrisation, output-capture registry).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections import defaultdict
from pathlib import Path

from tests.conftest import REPO_ROOT, TINY_PRESET, run_config_overrides

SCRIPT = textwrap.dedent('''
    """train_fold(fold 1) with a callback that logs every training batch's ids per rank."""
    import json
    import os
    import sys

    import pytorch_lightning as pl
    import torch

    from metaser.config import load_config
    from metaser.training.config import RunConfig
    from metaser.training.fold_run import train_fold


    class RecordIds(pl.Callback):
        def __init__(self, out_dir, stage):
            self.out_dir, self.stage = out_dir, stage

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            path = os.path.join(self.out_dir, f"{self.stage}-rank{trainer.global_rank}.jsonl")
            with open(path, "a") as f:
                f.write(json.dumps({"epoch": trainer.current_epoch, "batch": batch_idx,
                                    "world_size": trainer.world_size, "ids": list(batch.ids)}) + "\\n")


    if __name__ == "__main__":
        torch.set_num_threads(1)
        config, ids_dir, *overrides = sys.argv[1:]
        cfg = load_config(RunConfig, config, overrides)
        metrics = train_fold(cfg, 1, stage_callbacks=lambda stage: [RecordIds(ids_dir, stage)])
        rank = os.environ.get("LOCAL_RANK", "0")  # one file per rank: the ranks share stdout
        with open(os.path.join(ids_dir, f"tested-rank{rank}.txt"), "w") as f:
            f.write(str(metrics["test"]["num_utterances"]))
''')


def test_ddp_two_cpu_processes_see_disjoint_batches(synth_manifest: Path, make_run_config, tmp_path):
    from metaser.data.folds import make_folds
    from metaser.data.manifest import load_manifest

    script = tmp_path / "ddp_fold.py"
    script.write_text(SCRIPT)
    ids_dir = tmp_path / "ids"
    ids_dir.mkdir()
    out = tmp_path / "runs"
    overrides = run_config_overrides(
        synth_manifest, out, "name=ddp", "trainer.strategy=ddp", "trainer.devices=2", "trainer.accelerator=cpu"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO_ROOT)}
    for key in ("LOCAL_RANK", "RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    proc = subprocess.run(
        [sys.executable, str(script), str(TINY_PRESET), str(ids_dir), *overrides],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    split = make_folds(load_manifest(synth_manifest), make_run_config(tmp_path).data.split)[0]
    for stage in ("stage1", "stage2"):
        seen: dict[int, list[str]] = {}
        batches: dict[int, int] = defaultdict(int)
        for rank in (0, 1):
            rows = [json.loads(x) for x in (ids_dir / f"{stage}-rank{rank}.jsonl").read_text().splitlines()]
            assert {r["world_size"] for r in rows} == {2}
            assert {r["epoch"] for r in rows} == {0}
            seen[rank] = [i for r in rows for i in r["ids"]]
            batches[rank] = len(rows)
        assert batches[0] == batches[1] >= 2  # DDP needs the same number of steps on every rank
        assert len(set(seen[0])) == len(seen[0]) and len(set(seen[1])) == len(seen[1])
        assert not set(seen[0]) & set(seen[1]), f"{stage}: ranks shared utterances"
        # together the ranks cover the training part (lhotse may pad the last round with "_dup" copies)
        union = {i.split("_dup")[0] for i in seen[0] + seen[1]}
        assert union == set(split.train_ids)

    # evaluation after the DDP fit is not sharded: the whole test part is predicted, once
    fold = out / "ddp" / "fold1"
    for name in ("predictions.jsonl", "aux_predictions.jsonl"):
        ids = [json.loads(x)["id"] for x in (fold / name).read_text().splitlines()]
        assert sorted(ids) == sorted(split.test_ids), name
    metrics = json.loads((fold / "metrics.json").read_text())
    assert metrics["test"]["num_utterances"] == len(split.test_ids) == 8
    tested = {r: (ids_dir / f"tested-rank{r}.txt").read_text() for r in (0, 1)}
    assert tested == {0: "8", 1: "8"}
