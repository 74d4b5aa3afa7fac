"""`metaser bench` runs and reports both modes (what it measures is not asserted: no timed tests)."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

from metaser.cli import main
from tests.conftest import TINY_PRESET, run_config_overrides


def test_bench_train_reports_reference_and_tuned_for_both_stages(synth_manifest, tmp_path):
    out = tmp_path / "bench.json"
    overrides = run_config_overrides(synth_manifest, tmp_path / "runs")
    r = CliRunner().invoke(
        main,
        [
            "bench",
            "train",
            str(TINY_PRESET),
            *overrides,
            "--steps",
            "2",
            "--warmup",
            "1",
            "--modes",
            "reference,tuned",
            "--json",
            str(out),
        ],
    )
    assert r.exit_code == 0, r.output
    res = json.loads(out.read_text())
    assert [(x["stage"], x["mode"]) for x in res["results"]] == [
        (s, m) for s in ("stage1", "stage2") for m in ("reference", "tuned")
    ]
    by = {(x["stage"], x["mode"]): x for x in res["results"]}
    for x in res["results"]:
        assert x["steps"] == 2 and x["audio_seconds"] > 0 and x["flops_per_step"] > 0
        assert 0 <= x["padding_ratio"] < 1
    for s in ("stage1", "stage2"):
        ref, tuned = by[(s, "reference")], by[(s, "tuned")]
        assert ref["batch_utterances_mean"] == 4.0 and ref["cached_layer"] is None  # fixed batches of 4, audio
        assert ref["attention"] == "eager" and tuned["attention"] == "sdpa"
        assert not ref["fused_optimizer"] and tuned["fused_optimizer"]  # torch's default Adam vs fused
        assert ref["cache_audio_seconds"] == 0 and tuned["cache_audio_seconds"] > 0
    # tuned is what `metaser train` runs: the CNN output cached in stage 1, the 4 frozen layers in stage 2
    assert (by[("stage1", "tuned")]["cached_layer"], by[("stage2", "tuned")]["cached_layer"]) == (0, 4)
    # both stores cover fold 1's training utterances at every speed: the same audio
    assert by[("stage1", "tuned")]["cache_audio_seconds"] == by[("stage2", "tuned")]["cache_audio_seconds"]
    assert set(res["speedup"]) == {"stage1", "stage2"}
    assert set(res["speedup"]["stage1"]) == {"tuned"}
    assert "tuned / reference throughput" in r.output


def test_bench_train_follows_the_stage_plan(synth_manifest, tmp_path):
    """The baseline has one emotion-only stage; the bench times that one, not a stage 1."""
    out = tmp_path / "bench.json"
    overrides = run_config_overrides(synth_manifest, tmp_path / "runs", "model.architecture=baseline")
    r = CliRunner().invoke(
        main,
        [
            "bench",
            "train",
            str(TINY_PRESET),
            *overrides,
            "--steps",
            "1",
            "--warmup",
            "0",
            "--modes",
            "tuned",
            "--json",
            str(out),
        ],
    )
    assert r.exit_code == 0, r.output
    assert [x["stage"] for x in json.loads(out.read_text())["results"]] == ["emotion_only"]


def test_bench_infer_times_every_backend_thread_count_and_batch_size_beside_the_reference(cv_run, tmp_path):
    from metaser.inference.export import export_model

    export_model(cv_run, tmp_path / "model")
    out = tmp_path / "infer.json"
    # model.onnx and model.int8.onnx, calibrated and checked on the exported fold's validation files
    r = CliRunner().invoke(main, ["export-onnx", str(tmp_path / "model"), "--int8", "--min-agreement", "0.5"])
    assert r.exit_code == 0, r.output
    from tests.inference.helpers import babble, write

    audio = [str(write(tmp_path / "audio" / f"a{i}.wav", babble(0.6 + 0.4 * i, seed=i))) for i in range(6)]
    args = ["--batch-sizes", "2", "--repeats", "1", "--threads", "2,1", "--json", str(out)]
    r = CliRunner().invoke(main, ["bench", "infer", str(tmp_path / "model"), *audio, *args])
    assert r.exit_code == 0, r.output
    res = json.loads(out.read_text())
    assert res["files"] == 6 and not res["partial"] and res["threads"] == [2, 1]
    assert [x["threads"] for x in res["reference"]] == [2, 1] and all(x["rtf"] > 0 for x in res["reference"])
    # batch size 1 is always measured: it is what every batch size is held to
    assert [(x["threads"], x["backend"], x["batch_size"]) for x in res["results"]] == [
        (t, b, bs) for t in (2, 1) for b in ("torch", "onnx", "onnx-int8") for bs in (1, 2)
    ]
    tasks = json.loads((tmp_path / "model" / "config.json").read_text())["tasks"]
    heads = {"emotion", *(t["name"] for t in tasks if t["kind"] == "classification")}
    assert {"gender", "style"} < heads  # the demo's classification tasks
    for x in res["results"]:
        assert x["vs_reference"] > 0 and x["vs_one_thread"] > 0 and x["load"] >= 0
        assert set(x["label_agreement_per_head"]) == heads
        if x["backend"] == "onnx-int8":
            assert x["max_prob_diff"] < 0.05  # int8 drifts a little, within what its guard measured
        else:
            assert x["max_prob_diff"] <= 1e-4 and x["label_agreement"] == 1.0  # same answers everywhere
            assert set(x["label_agreement_per_head"].values()) == {1.0}
    assert [x["vs_one_thread"] for x in res["results"] if x["threads"] == 1] == [1.0] * 6
    for pick in res["best_batch_size"]:  # the recommended batch size is the measured fastest
        rows = [x for x in res["results"] if (x["backend"], x["variant"], x["threads"]) == tuple(pick.values())[:3]]
        assert len(rows) == 2 and min(rows, key=lambda x: x["rtf"])["batch_size"] == pick["batch_size"]
    assert len(res["best_batch_size"]) == 6 and "best batch size" in r.output


def test_bench_serve_answers_every_request(cv_run, tmp_path):
    from metaser.inference.export import export_model

    export_model(cv_run, tmp_path / "model")
    out = tmp_path / "serve.json"
    r = CliRunner().invoke(
        main, ["bench", "serve", str(tmp_path / "model"), "--clients", "3", "--requests", "9", "--json", str(out)]
    )
    assert r.exit_code == 0, r.output
    res = json.loads(out.read_text())
    assert res["requests"] == 9 and res["errors"] == 0
    assert res["p95_ms"] >= res["p50_ms"] > 0 and res["rss_after_mb"] > 0


@pytest.mark.parametrize("groups", [1, 16])
@pytest.mark.parametrize("input_grad", [True, False])
def test_bench_counts_a_convolution_backward_as_one_forward_per_gradient(groups, input_grad):
    """torch's formula counts a grouped conv's weight gradient `groups` times; the bench's does not."""
    from torch.utils.flop_counter import FlopCounterMode

    from metaser.bench.train import flop_formulas

    conv = torch.nn.Conv1d(32, 32, 9, padding=4, groups=groups)
    x = torch.randn(2, 32, 40, requires_grad=input_grad)
    forward = 2 * 2 * 40 * 32 * (32 // groups) * 9  # 2 FLOPs per multiply-add
    with FlopCounterMode(display=False, custom_mapping=flop_formulas()) as fc:
        conv(x).sum().backward()
    assert fc.get_total_flops() == forward * (3 if input_grad else 2)
