"""The ``metaser`` CLI: usage and input errors exit 2 with one clear message, never a traceback."""

from __future__ import annotations

import json
import shutil

import click
import pytest
from click.testing import CliRunner

from metaser.cli import main
from tests.conftest import TINY_PRESET

PRESET = str(TINY_PRESET)


def invoke(*args: str):
    return CliRunner().invoke(main, list(args), prog_name="metaser")


def assert_usage_error(result, *fragments: str) -> None:
    """Exit code 2, each fragment in the output, and no Python traceback."""
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)  # handled, not an escaped exception
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in result.output, (fragment, result.output)


def all_commands(group: click.Group, prefix: tuple[str, ...] = ()):
    for name, cmd in sorted(group.commands.items()):
        yield (*prefix, name)
        if isinstance(cmd, click.Group):
            yield from all_commands(cmd, (*prefix, name))


COMMANDS = list(all_commands(main))


def test_command_tree_is_covered():
    """The --help test below is parametrised over the discovered tree; check it found the commands."""
    assert set(COMMANDS) >= {
        ("ablate",),
        ("bench",),
        ("bench", "infer"),
        ("bench", "train"),
        ("cv",),
        ("demo",),
        ("export",),
        ("predict",),
        ("prepare",),
        ("prepare", "csv"),
        ("prepare", "emodb"),
        ("prepare", "iemocap"),
        ("prepare", "ravdess"),
        ("report",),
        ("synth-demo",),
        ("train",),
    }


def test_main_help():
    result = invoke("--help")
    assert result.exit_code == 0
    assert result.output.startswith("Usage: metaser [OPTIONS] COMMAND [ARGS]...")
    for name in ("cv", "train", "ablate", "report", "prepare", "predict", "export", "demo"):
        assert f"  {name} " in result.output


@pytest.mark.parametrize("path", COMMANDS, ids=" ".join)
def test_every_command_help(path):
    result = invoke(*path, "--help")
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"Usage: metaser {' '.join(path)} ")
    assert invoke(*path, "-h").output == result.output


@pytest.mark.parametrize("command", ["cv", "train", "ablate"])
def test_unknown_override_key(command):
    extra = ["--study", "modules"] if command == "ablate" else []
    assert_usage_error(
        invoke(command, PRESET, "stage1.epoks=3", *extra),
        "error: unknown config key 'stage1.epoks'",
        "did you mean 'epochs'?",
    )


@pytest.mark.parametrize(
    "override, message",
    [
        ("stage1.epochs=three", "stage1.epochs: expected an integer, got 'three'"),
        ("trainer.enable_progress_bar=maybe", "trainer.enable_progress_bar: expected true/false, got 'maybe'"),
        ("model.fusion.layers=bogus", "model.fusion.layers: 'bogus' is not one of 'ari', 'weighted_sum', 'last'"),
        ("stage1.epochs=0", "stage1.epochs must be >= 1, got 0"),
        ("stage1", "override 'stage1' must look like key.sub=value"),
    ],
)
def test_bad_override_value(override, message):
    assert_usage_error(invoke("cv", PRESET, override), message)


def test_missing_config_file(tmp_path):
    missing = tmp_path / "nope.yaml"
    assert_usage_error(invoke("cv", str(missing)), f"config file not found: {missing}")


def test_bad_yaml_config(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("stage1: [unclosed\n")
    assert_usage_error(invoke("train", str(bad)), f"{bad}: not valid YAML")
    bad.write_text("stage1:\n  epoks: 3\n")
    assert_usage_error(invoke("train", str(bad)), f"{bad}: unknown config key 'stage1.epoks'")


def test_missing_manifest(tmp_path):
    manifest = tmp_path / "none" / "cuts.jsonl.gz"
    assert_usage_error(
        invoke("cv", PRESET, f"data.manifest={manifest}", f"output_dir={tmp_path}"), f"manifest not found: {manifest}"
    )
    assert not (tmp_path / "demo-tiny").exists()


def test_train_fold_out_of_range(synth_manifest, tmp_path):
    assert_usage_error(
        invoke("train", PRESET, f"data.manifest={synth_manifest}", f"output_dir={tmp_path}", "--fold", "9"),
        "--fold 9 is out of range: this corpus has 5 folds (1..5)",
    )


def test_report_on_a_directory_that_is_not_a_run(tmp_path):
    assert_usage_error(invoke("report", str(tmp_path)), f"{tmp_path}: no finished fold (fold*/metrics.json) found")
    missing = tmp_path / "nothere"
    assert_usage_error(invoke("report", str(missing)), f"run directory not found: {missing}")


def test_report_on_an_incomplete_fold(cv_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(cv_run, run, ignore=shutil.ignore_patterns("*.ckpt", "model"))
    (run / "fold2" / "predictions.jsonl").unlink()
    result = invoke("report", str(run))
    assert_usage_error(result, "predictions.jsonl is missing: the fold's outputs are incomplete")
    assert "fold2" in result.output


def test_prepare_missing_corpus(tmp_path):
    out = tmp_path / "x"
    assert_usage_error(
        invoke("prepare", "iemocap", "/nonexistent", "-o", str(out)), "IEMOCAP root not found: /nonexistent"
    )
    assert not out.exists()


def test_click_usage_errors_also_exit_2():
    result = invoke("ablate", PRESET, "--study", "foo")
    assert result.exit_code == 2 and "'foo' is not one of 'modules', 'fusion', 'tasks'" in result.output
    assert invoke("nosuchcommand").exit_code == 2


def test_debug_env_shows_the_traceback(monkeypatch, tmp_path):
    """METASER_DEBUG=1 re-raises the MetaserError instead of exiting 2."""
    from metaser.errors import ConfigError

    monkeypatch.setenv("METASER_DEBUG", "1")
    result = invoke("cv", str(tmp_path / "nope.yaml"))
    assert isinstance(result.exception, ConfigError)
    assert json.dumps(str(result.exception)) == json.dumps(f"config file not found: {tmp_path / 'nope.yaml'}")


def test_error_message_is_printed_verbatim(tmp_path):
    """Paths are neither taken for rich markup nor hard-wrapped (long tmp paths, "[old]")."""
    missing = tmp_path / "[old]" / ("a-rather-long-directory-name-" * 3) / "config.yaml"
    result = invoke("cv", str(missing))
    assert_usage_error(result)
    assert result.output.splitlines() == [f"error: config file not found: {missing}"]
