"""results.json / report.md / ablation summaries on fake run folders: pooled figures, layer
weights by stage, the fusion study's auxiliary columns and the tasks study's stage-1 plot."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from metaser.cli import main
from metaser.experiments.ablation import study_root, study_runs
from metaser.experiments.ablation_summary import summarize_study
from metaser.experiments.report import write_report
from metaser.paper import paper_row
from tests.experiments.fake_runs import fake_cv_run, fake_study, softmax_weights, tiny_config

#: the fields results.json had before pooled figures and stage weights (other code reads them)
RESULTS_FIELDS = {
    "run",
    "definitions",
    "folds",
    "test",
    "valid",
    "classes",
    "pooled_confusion",
    "mean_layer_weights",
    "paper",
    "paper_row",
}


def by_stage(fold: int, stage: str) -> list[float] | None:
    """Stage 1 peaks at layer 3 + fold, the emotion stages at layer 9 (fold 1) / 10 (fold 2)."""
    if stage == "stage1":
        return softmax_weights(3 + fold)
    return softmax_weights(8 + fold)


def _variants(base, study):
    return [
        {"slug": v.slug, "label": v.label, "overrides": v.overrides, "run_dir": r.cfg.run_dir}
        for v, r in study_runs(base, study)
    ]


def test_pooled_figures_come_from_all_test_utterances(tmp_path):
    # fold 1: 10 per class, UA 0.5; fold 2: 30 per class, UA 0.9; aux right for 90 % of each fold
    run = fake_cv_run(tmp_path, "cv", [0.5, 0.9], sizes=[(10,) * 4, (30,) * 4])
    res = write_report(run)
    assert set(res) >= RESULTS_FIELDS
    assert res["test"]["ua"]["mean"] == pytest.approx(0.7)
    pooled = res["test_pooled"]
    assert pooled["ua"] == pytest.approx(32 / 40) and pooled["wa"] == pytest.approx(32 / 40)
    assert pooled["num_utterances"] == 160 == sum(map(sum, res["pooled_confusion"]))
    assert pooled["gender_acc"] == pytest.approx((36 + 108) / 160)  # 90 % of 40 and of 120
    assert set(pooled) >= {"ua", "wa", "macro_f1", "cer", "wer", "gender_acc", "style_acc"}
    assert "mean over folds" in res["aggregation"]
    md = (run / "report.md").read_text()
    assert "| **pooled** | | 80.00 | 80.00 |" in md
    assert "| **mean ± std** | | **70.00** ± 20.00 | **70.00** ± 20.00 |" in md
    # the paper's figure is compared with the mean over folds
    assert f"| Δ (ours − paper) | | {70.0 - 77.74:+.2f} | {70.0 - 76.33:+.2f} |" in md
    out = CliRunner().invoke(main, ["report", str(run)])
    assert out.exit_code == 0 and "pooled" in out.output


def test_uneven_class_counts_make_pooled_ua_differ_from_pooled_wa(tmp_path):
    run = fake_cv_run(tmp_path, "cv", [0.5, 1.0], sizes=[(10, 10, 10, 10), (40, 0, 0, 0)])
    pooled = write_report(run)["test_pooled"]
    # ang: 5 + 40 of 50 right; hap, neu, sad: 5 of 10 each
    assert pooled["ua"] == pytest.approx((45 / 50 + 0.5 + 0.5 + 0.5) / 4)
    assert pooled["wa"] == pytest.approx((45 + 15) / 80)


def test_layer_weights_by_stage_are_averaged_and_reported(tmp_path):
    run = fake_cv_run(tmp_path, "cv", [0.6, 0.7], weights=by_stage)
    res = write_report(run)
    mean = res["mean_layer_weights_by_stage"]
    assert set(mean) == {"stage1", "stage2"}
    for stage, peak in (("stage1", 4), ("stage2", 9)):
        expect = [(a + b) / 2 for a, b in zip(softmax_weights(peak), softmax_weights(peak + 1))]
        assert mean[stage] == pytest.approx(expect)
        assert len(mean[stage]) == 11
    assert res["mean_layer_weights"] == pytest.approx(mean["stage2"])  # the selected emotion model's
    assert res["folds"][0]["layer_weights_by_stage"]["stage1"] == pytest.approx(softmax_weights(4))
    md = (run / "report.md").read_text()
    s1 = " ".join(f"L{i + 1}:{x:.3f}" for i, x in enumerate(mean["stage1"]))
    s2 = " ".join(f"L{i + 1}:{x:.3f}" for i, x in enumerate(mean["stage2"]))
    assert f"- stage 1 (auxiliary tasks): {s1}\n- stage 2 (emotion): {s2}\n" in md


def test_runs_without_the_field_keep_the_old_layer_weight_line(tmp_path):
    run = fake_cv_run(tmp_path, "cv", [0.6], weights=None)
    fold = run / "fold1" / "metrics.json"
    metrics = json.loads(fold.read_text())
    metrics["layer_weights"] = softmax_weights(5)
    fold.write_text(json.dumps(metrics))
    res = write_report(run)
    assert res["mean_layer_weights_by_stage"] is None
    md = (run / "report.md").read_text()
    assert "stage 1" not in md
    assert "\n" + " ".join(f"L{i + 1}:{x:.3f}" for i, x in enumerate(softmax_weights(5))) + "\n" in md


def test_fusion_summary_shows_the_papers_auxiliary_figures_and_delta(tmp_path):
    root = fake_study(tmp_path, "fusion", {"weighted_sum": [0.70, 0.80], "ari": [0.80, 0.80]}, aux_acc=0.9)
    base = tiny_config(tmp_path, "base")
    summary = summarize_study("base", "fusion", _variants(base, "fusion"), root)
    md = (root / "summary.md").read_text()
    head = (
        "| variant | CER | WER | GR | StyR | UA | WA | UA pooled | WA pooled | CER paper (Δ) | WER paper (Δ) | "
        "GR paper (Δ) | StyR paper (Δ) | UA paper (Δ) | WA paper (Δ) |"
    )
    assert head in md
    ws = next(v for v in summary["variants"] if v["slug"] == "weighted_sum")
    paper = paper_row("III", "weighted_sum", "wavlm")
    row = next(line for line in md.splitlines() if line.startswith("| Weighted sum |")).split(" | ")
    assert row[5:9] == ["75.00 ± 5.00", "75.00 ± 5.00", "75.00", "75.00"]
    cer = 100 * ws["test"]["cer"]["mean"]
    assert row[9] == f"{paper['cer']:.2f} ({cer - paper['cer']:+.2f})"
    assert row[11] == f"{paper['gr_acc']:.2f} ({90.0 - paper['gr_acc']:+.2f})"
    assert row[-1] == f"{paper['wa']:.2f} ({75.0 - paper['wa']:+.2f}) |"
    assert ws["test_pooled"]["ua"] == pytest.approx(0.75) and ws["paper_row"] == ["fusion", "weighted_sum"]
    assert json.loads((root / "summary.json").read_text()) == json.loads(json.dumps(summary))


def test_tasks_study_plots_stage1_weights_per_task(tmp_path):
    slugs = ["none", "gender", "speaker", "style", "asr", "gender_asr", "gender_speaker_style_asr"]
    fake_study(tmp_path, "tasks", {s: [0.7, 0.7] for s in slugs}, weights=by_stage)
    base = tiny_config(tmp_path, "base")
    root = study_root(base, "tasks")
    summary = summarize_study("base", "tasks", _variants(base, "tasks"), root)
    curves = summary["stage1_layer_weights"]
    # the single-task variants and the full one; "none" has no stage 1, gender_asr is not plotted
    assert list(curves) == ["gender", "speaker", "style", "asr", "gender_speaker_style_asr"]
    expect = [(a + b) / 2 for a, b in zip(softmax_weights(4), softmax_weights(5))]
    assert all(c == pytest.approx(expect) for c in curves.values())
    png = root / "layer_weights_stage1.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = (root / "summary.md").read_text()
    assert "layer_weights_stage1.png" in md and "- asr: L1:" in md
    none = json.loads((root / "none" / "results.json").read_text())
    assert none["mean_layer_weights_by_stage"] == {"emotion_only": pytest.approx(expect_emotion_only())}


def expect_emotion_only() -> list[float]:
    return [(a + b) / 2 for a, b in zip(softmax_weights(9), softmax_weights(10))]


def test_tasks_study_without_stage_weights_has_no_plot_and_no_error(tmp_path):
    fake_study(tmp_path, "tasks", {"gender": [0.7], "asr": [0.8]}, weights=None)
    base = tiny_config(tmp_path, "base")
    root = study_root(base, "tasks")
    (root / "layer_weights_stage1.png").write_bytes(b"stale")
    summary = summarize_study("base", "tasks", _variants(base, "tasks"), root)
    assert summary["stage1_layer_weights"] is None
    assert not (root / "layer_weights_stage1.png").exists()
    assert "layer_weights_stage1.png" not in (root / "summary.md").read_text()


def test_cv_table_prints_the_pooled_row(tmp_path):
    from rich.console import Console

    from metaser.experiments.tables import print_results

    run = fake_cv_run(tmp_path, "cv", [0.5, 0.9], sizes=[(10,) * 4, (30,) * 4])
    console = Console(width=200, record=True)
    print_results(write_report(run), console)
    text = console.export_text()
    rows = [[c.strip() for c in line.strip("│ ").split("│")] for line in text.splitlines()]
    pooled = next(r for r in rows if r[0] == "pooled")
    assert pooled[2:4] == ["80.00", "80.00"]


def test_fake_runs_are_what_training_writes(tmp_path: Path):
    """The fixture's fold files have the fields metaser.training.fold.finish_fold writes."""
    run = fake_cv_run(tmp_path, "cv", [0.6], weights=by_stage)
    metrics = json.loads((run / "fold1" / "metrics.json").read_text())
    assert set(metrics) >= {"fold", "fold_name", "test_group", "test", "valid", "stages", "layer_weights", "seconds"}
    assert list(metrics["stages"]) == ["stage1", "stage2"]
    assert metrics["test"]["ua"] == pytest.approx(0.6)
