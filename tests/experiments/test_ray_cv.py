"""``metaser cv --launcher ray`` writes the same per-fold results as the local launcher
(tiny preset, 2 folds, 1 epoch per stage, a local 2-CPU Ray instance), and a stage shared by
two variants runs once under Ray."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from metaser.cli import main
from tests.conftest import TINY_PRESET, run_config_overrides

pytest.importorskip("ray", reason="Ray is the optional extra metaser[ray]")

PINNED = ["trainer.num_threads=1", "name=cv"]  # CPU float rounding depends on the thread count


@pytest.fixture(scope="module")
def runs(synth_manifest, tmp_path_factory):
    out = {}
    for launcher in ("local", "ray"):
        root = tmp_path_factory.mktemp(launcher)
        args = [
            "cv",
            str(TINY_PRESET),
            *run_config_overrides(synth_manifest, root, *PINNED),
            "--folds",
            "1,2",
            "--launcher",
            launcher,
            "--cpus-per-task",
            "1",
        ]
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 0, result.output
        out[launcher] = (root / "cv", result.output)
    return out


def test_ray_writes_the_same_per_fold_test_metrics_as_local(runs):
    local, ray = runs["local"][0], runs["ray"][0]
    assert sorted(p.name for p in ray.glob("fold*")) == ["fold1", "fold2"]
    for k in (1, 2):
        a, b = (json.loads((d / f"fold{k}" / "metrics.json").read_text()) for d in (local, ray))
        assert a["test"] == b["test"] and a["valid"] == b["valid"]
        assert (local / f"fold{k}" / "predictions.jsonl").read_text() == (
            ray / f"fold{k}" / "predictions.jsonl"
        ).read_text()
    assert (
        json.loads((ray / "results.json").read_text())["test"]
        == json.loads((local / "results.json").read_text())["test"]
    )


def test_ray_prints_one_line_per_task(runs):
    output = runs["ray"][1]
    for k in (1, 2):
        assert f"fold={k}" in output or f"fold {k}" in output
    assert output.count("stage1") >= 2 and output.count("stage2") >= 2


@pytest.mark.slow  # minutes on 2 cores; the dedup itself is the grid's, tested locally in test_reuse.py
def test_a_shared_stage_runs_once_under_ray(synth_manifest, tmp_path):
    """w/o Co and the full model share stage 1: one stage-1 task, linked into both folds."""
    args = [
        "ablate",
        str(TINY_PRESET),
        "--study",
        "modules",
        "--only",
        "wo_co,full",
        "--folds",
        "1",
        *run_config_overrides(synth_manifest, tmp_path, "trainer.num_threads=1", "name=r"),
        "--launcher",
        "ray",
        "--cpus-per-task",
        "1",
    ]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    root = tmp_path / "r"
    assert len(list((root / "stages").glob("stage1-*"))) == 1
    assert len(list((root / "stages").glob("stage2-*"))) == 2
    dirs = {(root / "ablate-modules" / v / "fold1" / "stage1").resolve() for v in ("wo_co", "full")}
    assert len(dirs) == 1
