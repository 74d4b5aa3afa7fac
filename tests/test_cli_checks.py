"""Checks a training command makes before anything trains, and the modes of what metaser writes.

Bad settings exit 2 with a clear message and leave no run directory behind; files written
atomically get the mode a plain ``open()`` would give (the umask decides, not tempfile's 0600).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from metaser.cli import main
from metaser.rundir import write_json_atomic, write_text_atomic

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "configs" / "demo" / "tiny.yaml"


def _train(tmp_path: Path, *overrides: str):
    return CliRunner().invoke(
        main, ["train", str(TINY), f"output_dir={tmp_path / 'runs'}", "data.manifest=/nonexistent", *overrides]
    )


@pytest.mark.parametrize(
    "override, words",
    [
        ("stage1.optim.encoder_lr=-1e-5", "encoder_lr must be > 0"),
        ("stage2.optim.head_lr=0", "head_lr must be > 0"),
        ("stage1.optim.grad_clip=-1", "grad_clip must be > 0"),
    ],
)
def test_a_bad_optimizer_setting_exits_2_before_anything_trains(tmp_path, override, words):
    r = _train(tmp_path, override)
    assert r.exit_code == 2, r.output
    assert words in r.output and "Traceback" not in r.output
    assert not (tmp_path / "runs").exists()


def test_an_unknown_encoder_exits_2_with_the_hint_before_anything_trains(tmp_path):
    r = _train(tmp_path, "model.encoder.name_or_path=tiny-wavlmm")
    assert r.exit_code == 2, r.output
    assert "'tiny-wavlmm' is not a preset" in r.output and "hint: did you mean 'tiny-wavlm'?" in r.output
    assert "Traceback" not in r.output and not (tmp_path / "runs").exists()


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_atomic_writes_respect_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        write_json_atomic({"a": 1}, tmp_path / "metrics.json")
        write_text_atomic(tmp_path / "d" / "config.json", "{}\n")
        with open(tmp_path / "plain.txt", "w") as f:  # what a plain open() gives
            f.write("x")
    finally:
        os.umask(old)
    want = stat.S_IMODE((tmp_path / "plain.txt").stat().st_mode)
    assert want == 0o666 & ~umask
    for p in (tmp_path / "metrics.json", tmp_path / "d" / "config.json"):
        assert stat.S_IMODE(p.stat().st_mode) == want, p
    assert not [p for p in tmp_path.rglob(".*tmp*")]  # no temporary file left


def test_an_exported_model_is_readable_by_the_group(tmp_path):
    from metaser.models.config import EncoderConfig, ModelConfig, TaskSpec
    from metaser.models.factory import build_ser_model

    model = build_ser_model(
        ModelConfig(encoder=EncoderConfig(name_or_path="tiny-wavlm")),
        ["ang", "hap", "neu", "sad"],
        [TaskSpec("gender", "classification", ["female", "male"])],
    )
    old = os.umask(0o022)
    try:
        model.save_pretrained(tmp_path / "m")
    finally:
        os.umask(old)
    for name in ("config.json", "model.safetensors"):
        assert stat.S_IMODE((tmp_path / "m" / name).stat().st_mode) == 0o644, name
