"""``metaser sweep``: parsing, trial layout, selection on validation only, a real tiny sweep.

The selection tests fake each trial's stage tasks and its CV report (``fake_trials``) so that
the trial with the best test score is not the one with the best validation score; the last
test runs a real two-trial sweep on the synthetic corpus (1 fold, 1 epoch per stage).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from metaser.cli import main
from metaser.config import load_config
from metaser.errors import ConfigError, MetaserError
from metaser.experiments import grid as grid_module
from metaser.experiments import report as report_module
from metaser.experiments.sweep import _split_values, parse_params, parse_select, plan_trials, summarize
from metaser.launch import TaskResult
from metaser.training.config import RunConfig
from tests.conftest import TINY_PRESET, run_config_overrides

#: fake CV outcomes per stage-1 ASR weight: the best test UA (0.1) is NOT the best valid UA (1.0)
FAKE = {0.1: {"valid": 0.60, "test": 0.90}, 1.0: {"valid": 0.70, "test": 0.50}, 3.0: {"valid": 0.65, "test": 0.95}}


SEEN_FOLDS: list[list[int]] = []


def _fake_stage(cfg, fold, stage, resume=False):
    return {}


def _fake_finish(cfg, fold):
    SEEN_FOLDS.append([fold])
    if cfg.aux_tasks["asr"] == 99.0:
        raise RuntimeError("this trial breaks")
    return {"metric": "test/ua", "value": FAKE[cfg.aux_tasks["asr"]]["test"]}


def _fake_report(run_dir):
    asr = float(Path(run_dir).name.removeprefix("asr"))
    s = FAKE[asr]
    return {
        "valid": {"ua": {"mean": s["valid"], "std": 0.0, "n": 1}, "loss": {"mean": 1 - s["valid"], "std": 0, "n": 1}},
        "test": {"ua": {"mean": s["test"], "std": 0.0, "n": 1}, "wa": {"mean": s["test"], "std": 0.0, "n": 1}},
    }


@pytest.fixture
def fake_trials(monkeypatch):
    """Every trial's stages do nothing and its CV report is FAKE's (asr 99 fails in its finish task)."""
    monkeypatch.setattr(grid_module, "stage_task", _fake_stage)
    monkeypatch.setattr(grid_module, "finish_task", _fake_finish)
    monkeypatch.setattr(report_module, "write_report", _fake_report)
    SEEN_FOLDS.clear()


def _base(tmp_path: Path) -> RunConfig:
    return load_config(RunConfig, TINY_PRESET, [f"output_dir={tmp_path}", "name=sw"])


# ---------------------------------------------------------------------------- parsing
def test_params_are_split_on_top_level_commas_and_parsed_as_yaml(tmp_path):
    assert _split_values("0.1,1,[0.8,1.0],{a: 1, b: 2},'x,y'") == ["0.1", "1", "[0.8,1.0]", "{a: 1, b: 2}", "'x,y'"]
    grid = parse_params(["aux_tasks.asr=0.1,1.0", "model.fusion.layers=ari,last"])
    trials = plan_trials(_base(tmp_path), grid, folds=[1])
    assert [t.slug for t in trials] == [
        "asr0.1_layersari",
        "asr0.1_layerslast",
        "asr1.0_layersari",
        "asr1.0_layerslast",
    ]
    t = trials[2]
    assert t.params == {"aux_tasks.asr": 1.0, "model.fusion.layers": "ari"}
    assert t.cfg.aux_tasks["asr"] == 1.0 and t.cfg.aux_tasks["gender"] == 1.0  # one dict entry changed, the rest kept
    assert t.cfg.model.fusion.layers == "ari" and t.cfg.folds == [1]
    assert t.run_dir == tmp_path / "sw" / "sweep" / "asr1.0_layersari"


def test_bad_params_fail_before_anything_trains(tmp_path):
    for bad, msg in [
        ("aux_tasks.asr", "must look like KEY=V1,V2"),
        ("aux_tasks.asr=0.1,", "must look like"),
        ("name=a,b", "the sweep sets name itself"),
    ]:
        with pytest.raises(ConfigError, match=msg):
            parse_params([bad])
    with pytest.raises(ConfigError, match="given twice"):
        parse_params(["aux_tasks.asr=1", "aux_tasks.asr=2"])
    with pytest.raises(ConfigError, match="unknown config key 'stage1.epoch'"):
        plan_trials(_base(tmp_path), parse_params(["stage1.epoch=1,2"]))
    with pytest.raises(ConfigError, match="aux_tasks.asr"):
        plan_trials(_base(tmp_path), parse_params(["aux_tasks.asr=-1,1"]))  # weights must be >= 0


def test_same_last_key_component_uses_the_whole_key_in_slugs(tmp_path):
    trials = plan_trials(_base(tmp_path), parse_params(["stage1.epochs=1", "stage2.epochs=2,3"]))
    assert [t.slug for t in trials] == ["stage1.epochs1_stage2.epochs2", "stage1.epochs1_stage2.epochs3"]


def test_cli_bad_override_or_param_is_a_usage_error(tmp_path):
    for args, msg in [
        (["stage1.epoks=3", "--param", "aux_tasks.asr=1"], "unknown config key 'stage1.epoks'"),
        (["--param", "stage1.epoks=1,2"], "unknown config key 'stage1.epoks'"),
        (["--param", "aux_tasks.asr"], "must look like KEY=V1,V2"),
        (["--param", "aux_tasks.asr=1", "--folds", "0"], "fold numbers start at 1"),
    ]:
        result = CliRunner().invoke(main, ["sweep", str(TINY_PRESET), f"output_dir={tmp_path}", *args])
        assert result.exit_code == 2 and msg in result.output and "Traceback" not in result.output, result.output


def test_select_refuses_test_metrics_with_the_reason():
    assert parse_select("valid.ua") == ("valid", "ua")
    with pytest.raises(MetaserError, match="choosing on test leaks the test folds into model selection"):
        parse_select("test.ua")
    with pytest.raises(MetaserError, match="expected valid.METRIC"):
        parse_select("ua")


def test_cli_refuses_select_test_and_exits_2(tmp_path):
    result = CliRunner().invoke(
        main,
        ["sweep", str(TINY_PRESET), f"output_dir={tmp_path}", "--param", "aux_tasks.asr=0.1,1", "--select", "test.ua"],
    )
    assert result.exit_code == 2, result.output
    assert "leaks the test folds" in result.output
    assert not (tmp_path / "demo-tiny").exists()  # nothing ran


def test_missing_corpus_or_fold_out_of_range_fails_before_any_trial(tmp_path, synth_manifest, fake_trials):
    base = ["sweep", str(TINY_PRESET), f"output_dir={tmp_path}", "--param", "aux_tasks.asr=0.1,1.0"]
    result = CliRunner().invoke(main, base + [f"data.manifest={synth_manifest}", "--folds", "1,9"])
    assert result.exit_code == 2 and "--folds 9: out of range, this corpus has 5 folds" in result.output
    result = CliRunner().invoke(main, base + [f"data.manifest={tmp_path / 'nope'}"])
    assert result.exit_code == 2 and "nope" in result.output
    assert SEEN_FOLDS == []


# -------------------------------------------------------------------------- selection
def test_best_is_chosen_on_validation_not_test(tmp_path, fake_trials, synth_manifest):
    result = CliRunner().invoke(
        main,
        [
            "sweep",
            str(TINY_PRESET),
            f"output_dir={tmp_path}",
            "name=sw",
            f"data.manifest={synth_manifest}",
            "--param",
            "aux_tasks.asr=0.1,1.0,3.0",
            "--select",
            "valid.ua",
            "--folds",
            "2",
        ],
    )
    assert result.exit_code == 0, result.output
    assert SEEN_FOLDS == [[2], [2], [2]]
    root = tmp_path / "sw" / "sweep"
    summary = json.loads((root / "summary.json").read_text())
    assert list(summary) == ["select", "trials", "best"] and summary["select"] == "valid.ua"
    assert [t["params"] for t in summary["trials"]] == [{"aux_tasks.asr": a} for a in (0.1, 1.0, 3.0)]
    first = summary["trials"][0]
    assert list(first) == ["params", "valid", "test", "run_dir"]
    assert first["valid"] == {"ua": 0.60, "loss": pytest.approx(0.40)} and first["test"] == {"ua": 0.90, "wa": 0.90}
    assert first["run_dir"] == str(root / "asr0.1")
    # the best test UA is 3.0's (0.95), the best validation UA is 1.0's (0.70): validation decides
    assert summary["best"] == {"params": {"aux_tasks.asr": 1.0}, "run_dir": str(root / "asr1.0")}
    md = (root / "summary.md").read_text()
    assert "| **1.0** | **70.00** |" in md and "played no part in the choice" in md
    assert "asr1.0" in result.output and "test/ua 0.5000" in result.output


def test_lower_is_better_for_a_validation_loss(tmp_path):
    trials = plan_trials(_base(tmp_path), parse_params(["aux_tasks.asr=0.1,1.0"]))
    results = [
        TaskResult("a", True, {"valid": {"loss": 0.3}, "test": {"ua": 0.9}, "run_dir": "a"}, None, 1, 1, None),
        TaskResult("b", True, {"valid": {"loss": 0.2}, "test": {"ua": 0.1}, "run_dir": "b"}, None, 1, 1, None),
    ]
    assert summarize(trials, results, "valid.loss")["best"]["run_dir"] == "b"


def test_a_failed_trial_is_retried_reported_and_the_sweep_exits_1(tmp_path, fake_trials, synth_manifest):
    result = CliRunner().invoke(
        main,
        [
            "sweep",
            str(TINY_PRESET),
            f"output_dir={tmp_path}",
            "name=sw",
            f"data.manifest={synth_manifest}",
            "--param",
            "aux_tasks.asr=99.0,0.1",
        ],
    )
    assert result.exit_code == 1, result.output
    root = tmp_path / "sw" / "sweep"
    summary = json.loads((root / "summary.json").read_text())
    bad, good = summary["trials"]
    assert bad["valid"] is None and bad["error"] == "RuntimeError: this trial breaks"
    assert summary["best"]["params"] == {"aux_tasks.asr": 0.1}
    log = root / "asr99.0" / "logs" / "fold1-finish.log"
    assert log.read_text().count("RuntimeError: this trial breaks") == 2  # tried, retried once
    assert str(log) in result.output.replace("\n", "")


# --------------------------------------------------------------------------- real run
def test_tiny_sweep_on_the_synthetic_corpus_picks_the_higher_validation_ua(synth_manifest, tmp_path):
    args = [
        "sweep",
        str(TINY_PRESET),
        *run_config_overrides(synth_manifest, tmp_path, "name=sw"),
        "--param",
        "aux_tasks.asr=0.1,1.0",
        "--select",
        "valid.ua",
        "--folds",
        "1",
    ]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    root = tmp_path / "sw" / "sweep"
    summary = json.loads((root / "summary.json").read_text())
    valid_ua = {}
    for trial, asr in zip(summary["trials"], (0.1, 1.0)):
        run = Path(trial["run_dir"])
        res = json.loads((run / "results.json").read_text())
        assert [f["fold"] for f in res["folds"]] == [1]
        assert trial["valid"]["ua"] == res["valid"]["ua"]["mean"] and trial["test"]["ua"] == res["test"]["ua"]["mean"]
        assert yaml.safe_load((run / "fold1" / "config.yaml").read_text())["aux_tasks"]["asr"] == asr
        valid_ua[run.name] = trial["valid"]["ua"]
    best = max(valid_ua, key=lambda k: (valid_ua[k], k == "asr0.1"))  # ties: the first trial
    assert Path(summary["best"]["run_dir"]).name == best


@pytest.mark.slow  # minutes on 2 cores; Ray vs local equality stays in the default suite (test_ray_cv.py)
def test_a_sweep_under_ray_writes_the_same_fold_results_as_local(synth_manifest, tmp_path):
    pytest.importorskip("ray")
    # CPU results depend on the number of torch threads; Ray gives a 1-CPU task one thread
    common = ["--param", "aux_tasks.asr=0.1", "--folds", "1"]
    out = {}
    for launcher in ("local", "ray"):
        args = [
            "sweep",
            str(TINY_PRESET),
            *run_config_overrides(synth_manifest, tmp_path / launcher, "name=sw", "trainer.num_threads=1"),
            *common,
            "--launcher",
            launcher,
        ]
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 0, result.output
        fold = tmp_path / launcher / "sw" / "sweep" / "asr0.1" / "fold1"
        m = json.loads((fold / "metrics.json").read_text())
        out[launcher] = (m["test"], m["valid"], (fold / "predictions.jsonl").read_text())
    assert out["ray"] == out["local"]


@pytest.mark.parametrize("preset", ["wavlm-base", "hubert-base", "wav2vec2-base"])
def test_the_sweep_in_each_iemocap_preset_comment_plans_its_grid(preset, tmp_path):
    import shlex

    path = TINY_PRESET.parents[1] / "iemocap" / f"{preset}.yaml"
    line = next(x for x in path.read_text().splitlines() if x.startswith("#   metaser sweep"))
    argv = shlex.split(line[1:])
    assert argv[:3] == ["metaser", "sweep", f"configs/iemocap/{preset}.yaml"]
    params = [argv[i + 1] for i, a in enumerate(argv) if a == "--param"]
    assert argv[argv.index("--select") + 1] == "valid.ua"
    base = load_config(RunConfig, path, [f"output_dir={tmp_path}"])
    trials = plan_trials(base, parse_params(params))
    assert len(trials) == 8 and len({t.slug for t in trials}) == 8
    assert {(t.cfg.aux_tasks["asr"], t.cfg.aux_tasks["gender"]) for t in trials} == {
        (a, g) for a in (0.1, 0.3, 1, 3) for g in (0.1, 1)
    }
    assert all(t.cfg.aux_tasks["speaker"] == base.aux_tasks["speaker"] for t in trials)
