"""A run killed mid-training and resumed ends exactly where an uninterrupted run ends (CPU).

Fold 1 with 2 epochs per stage: once uninterrupted, then killed by a callback at a given
(stage, epoch, batch) and resumed with ``resume=True`` in the same output directory.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from click.testing import CliRunner

from metaser.cli import main
from metaser.errors import MetaserError

EPOCHS = ("stage1.epochs=2", "stage2.epochs=2")


class SimulatedKill(Exception):
    """Stands for a crash or SIGKILL: nothing after the last checkpoint survives."""


class KillAt(pl.Callback):
    """Raise ``exc`` at the start of training batch ``batch`` of epoch ``epoch``."""

    def __init__(self, epoch: int, batch: int, exc: type[BaseException]):
        self.epoch, self.batch, self.exc = epoch, batch, exc
        self.fired = False

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if (trainer.current_epoch, batch_idx) == (self.epoch, self.batch):
            self.fired = True
            raise self.exc()


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def reference(make_run_config, tmp_path_factory):
    """(metrics, fold dir) of the uninterrupted run."""
    from metaser.training.fold import fold_dir
    from metaser.training.fold_run import train_fold

    cfg = make_run_config(tmp_path_factory.mktemp("ref"), *EPOCHS)
    metrics = train_fold(cfg, 1)
    return metrics, fold_dir(cfg, 1)


def assert_same_run(metrics: dict, fdir: Path, reference) -> None:
    ref_metrics, ref_dir = reference
    assert metrics["test"] == ref_metrics["test"]
    assert metrics["valid"] == ref_metrics["valid"]
    for stage in ("stage1", "stage2"):
        assert metrics["stages"][stage]["best_score"] == ref_metrics["stages"][stage]["best_score"]
        assert metrics["stages"][stage]["epochs"] == ref_metrics["stages"][stage]["epochs"] == 2
    assert metrics["layer_weights"] == ref_metrics["layer_weights"]
    for name in ("predictions.jsonl", "aux_predictions.jsonl"):
        assert read_jsonl(fdir / name) == read_jsonl(ref_dir / name), name
    # the weights after the last epoch (not only the selected ones) are bit-identical
    for stage in ("stage1", "stage2"):
        ours, ref = (
            torch.load(d / stage / "last.ckpt", map_location="cpu", weights_only=False) for d in (fdir, ref_dir)
        )
        assert (ours["epoch"], ours["global_step"]) == (ref["epoch"], ref["global_step"])
        ours, ref = ours["state_dict"], ref["state_dict"]
        assert ours.keys() == ref.keys()
        assert [k for k in ref if not torch.equal(ours[k], ref[k])] == [], stage


def test_last_checkpoint_is_the_last_epoch(reference):
    """last.ckpt holds the final epoch even where the monitored metric did not improve."""
    _, ref_dir = reference
    for stage in ("stage1", "stage2"):
        last = torch.load(ref_dir / stage / "last.ckpt", map_location="cpu", weights_only=False)
        best = torch.load(ref_dir / stage / "best.ckpt", map_location="cpu", weights_only=False)
        assert last["epoch"] == 1  # 0-based: the second of 2 epochs
        # epochs may differ in batch count (TDSA changes the bucketed lengths every epoch): the best
        # checkpoint is the end of epoch 1 (all steps) or of epoch 0 (fewer steps)
        steps = last["global_step"]
        assert (best["epoch"], best["global_step"] == steps) in ((1, True), (0, False)), (best["epoch"], steps)
        assert 0 < best["global_step"] <= steps


def test_interrupt_in_stage1_then_resume(make_run_config, tmp_path, reference):
    """Ctrl+C in epoch 2 of stage 1: KeyboardInterrupt reaches the caller, --resume is required,
    and the resumed run matches the uninterrupted one exactly."""
    from metaser.training.fold import fold_dir
    from metaser.training.fold_run import train_fold

    cfg = make_run_config(tmp_path, *EPOCHS)
    kill = KillAt(epoch=1, batch=1, exc=KeyboardInterrupt)
    handler = signal.getsignal(signal.SIGINT)
    try:
        # not Lightning's SystemExit(1): the CLI turns KeyboardInterrupt into "continue with --resume"
        with pytest.raises(KeyboardInterrupt):
            train_fold(cfg, 1, stage_callbacks=lambda s: [kill] if s == "stage1" else [])
    finally:
        signal.signal(signal.SIGINT, handler)  # Lightning ignores SIGINT while shutting down
    fdir = fold_dir(cfg, 1)
    assert kill.fired
    assert (fdir / "stage1" / "last.ckpt").is_file()
    assert not (fdir / "stage1" / "done.json").exists() and not (fdir / "metrics.json").exists()

    with pytest.raises(MetaserError, match="unfinished run; pass --resume"):
        train_fold(cfg, 1)
    # the same through the CLI (the fold's saved config.yaml is the resolved run config)
    result = CliRunner().invoke(main, ["train", str(fdir / "config.yaml"), "--fold", "1"])
    assert result.exit_code == 2
    assert "--resume" in result.output and "Traceback" not in result.output

    metrics = train_fold(cfg, 1, resume=True)
    assert_same_run(metrics, fdir, reference)


def test_crash_in_stage2_then_resume(make_run_config, tmp_path, reference):
    """A crash at the first batch of stage 2's epoch 2 (stage 1 done): resume skips stage 1."""
    from metaser.training.fold import fold_dir
    from metaser.training.fold_run import train_fold

    cfg = make_run_config(tmp_path, *EPOCHS)
    kill = KillAt(epoch=1, batch=0, exc=SimulatedKill)
    with pytest.raises(SimulatedKill):
        train_fold(cfg, 1, stage_callbacks=lambda s: [kill] if s == "stage2" else [])
    fdir = fold_dir(cfg, 1)
    assert (fdir / "stage1" / "done.json").is_file() and (fdir / "stage2" / "last.ckpt").is_file()
    stage1_ckpt = (fdir / "stage1" / "best.ckpt").stat().st_mtime_ns

    metrics = train_fold(cfg, 1, resume=True)
    assert_same_run(metrics, fdir, reference)
    assert (fdir / "stage1" / "best.ckpt").stat().st_mtime_ns == stage1_ckpt  # not retrained


def test_cli_reports_interrupt_with_resume_hint(monkeypatch, tmp_path):
    import metaser.training.fold as fold_mod
    from tests.conftest import TINY_PRESET

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(fold_mod, "train_fold", interrupted)
    result = CliRunner().invoke(main, ["train", str(TINY_PRESET), f"output_dir={tmp_path}"])
    assert result.exit_code == 130
    assert "interrupted" in result.output and "--resume" in result.output
