"""`metaser bench` runs and reports both modes (what it measures is not asserted: no timed tests)."""

from __future__ import annotations

import json

from click.testing import CliRunner

from metaser.cli import main
from tests.conftest import TINY_PRESET, run_config_overrides


def test_bench_train_reports_naive_and_tuned_for_both_stages(synth_manifest, tmp_path):
    out = tmp_path / "bench.json"
    overrides = run_config_overrides(synth_manifest, tmp_path / "runs")
    r = CliRunner().invoke(main, ["bench", "train", str(TINY_PRESET), *overrides, "--steps", "2", "--warmup", "1",
                                  "--json", str(out)])
    assert r.exit_code == 0, r.output
    res = json.loads(out.read_text())
    assert [(x["stage"], x["mode"]) for x in res["results"]] == [
        ("stage1", "naive"), ("stage1", "tuned"), ("stage2", "naive"), ("stage2", "tuned")]
    for x in res["results"]:
        assert x["steps"] == 2 and x["throughput"] > 0 and x["padding_ratio"] >= 1.0
        assert x["flops_per_step"] > 0
    naive = [x for x in res["results"] if x["mode"] == "naive"]
    assert all(x["batch_utterances_mean"] == 4.0 for x in naive)  # fixed batches of 4
    assert set(res["speedup"]) == {"stage1", "stage2"}
    assert "tuned / naive throughput" in r.output


def test_bench_infer_reports_rtf(cv_run, tmp_path):
    from metaser.inference.export import export_model

    export_model(cv_run, tmp_path / "model")
    out = tmp_path / "infer.json"
    r = CliRunner().invoke(main, ["bench", "infer", str(tmp_path / "model"), "--json", str(out)])
    assert r.exit_code == 0, r.output
    res = json.loads(out.read_text())
    assert res["files"] == 32 and res["rtf"] > 0 and res["files_per_second"] > 0
