"""Cross-validation end to end on the synthetic corpus, and the reports built from its files.

The 5-fold run itself is the session fixture ``cv_run`` (``run_cv``, 1 epoch per stage); the
CLI runs fold 1 again through ``metaser cv`` and must reproduce it exactly.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
import shutil
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import metaser
from metaser.cli import main
from tests.conftest import TINY_PRESET, run_config_overrides

NUM_FOLDS = 5
FOLD_FILES = [
    "metrics.json",
    "predictions.jsonl",
    "aux_predictions.jsonl",
    "labels.json",
    "config.yaml",
    "run_info.json",
]


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def manifest_rows(manifest: Path) -> dict[str, dict]:
    """cut id -> raw manifest cut (read with gzip/json, independently of metaser)."""
    with gzip.open(manifest, "rt") as f:
        return {c["id"]: c for c in map(json.loads, f)}


def ua_wa(rows: list[dict]) -> tuple[float, float]:
    """UA = mean recall over classes with references; WA = correct / total, counted by hand."""
    total: dict[str, int] = defaultdict(int)
    hit: dict[str, int] = defaultdict(int)
    for r in rows:
        total[r["emotion"]] += 1
        hit[r["emotion"]] += r["pred"] == r["emotion"]
    ua = sum(hit[c] / total[c] for c in total) / len(total)
    wa = sum(hit.values()) / sum(total.values())
    return ua, wa


def test_cv_writes_every_output(cv_run: Path, synth_manifest: Path):
    for name in ("results.json", "report.md", "confusion.png", "layer_weights.png"):
        assert (cv_run / name).is_file(), name
    assert (cv_run / "confusion.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    sha = hashlib.sha256(synth_manifest.read_bytes()).hexdigest()
    for k in range(1, NUM_FOLDS + 1):
        d = cv_run / f"fold{k}"
        for name in FOLD_FILES:
            assert (d / name).is_file(), f"fold{k}/{name}"
        assert sorted(p.name for p in (d / "model").iterdir()) == ["config.json", "model.safetensors"]
        info = json.loads((d / "run_info.json").read_text())
        assert info["manifest_sha256"] == sha
        assert info["metaser_version"] == metaser.__version__
        assert (info["fold"], info["test_group"]) == (k, str(k))
        assert info["aux_tasks"] == ["gender", "speaker", "style", "asr"]
        for stage in ("stage1", "stage2"):
            done = json.loads((d / stage / "done.json").read_text())
            assert (
                done["epochs"] == 1
                and done["best"] == "best.ckpt"
                and done["key"] == info["stages"][[s["name"] for s in info["stages"]].index(stage)]["key"]
            )
    res = json.loads((cv_run / "results.json").read_text())
    assert [f["fold"] for f in res["folds"]] == [1, 2, 3, 4, 5]
    assert res["classes"] == ["ang", "hap", "neu", "sad"]
    # every utterance is tested exactly once over the folds: pooled confusion sums to the corpus
    assert sum(map(sum, res["pooled_confusion"])) == len(manifest_rows(synth_manifest)) == 37
    assert len(res["mean_layer_weights"]) == 11  # ARI over 12 layers: L - 1 weights
    assert sum(res["mean_layer_weights"]) == pytest.approx(1.0, abs=1e-5)


def test_ua_wa_recomputed_from_predictions_match_results_and_report(cv_run: Path):
    res = json.loads((cv_run / "results.json").read_text())
    report = (cv_run / "report.md").read_text()
    uas, was = [], []
    for k, fold in zip(range(1, NUM_FOLDS + 1), res["folds"]):
        rows = read_jsonl(cv_run / f"fold{k}" / "predictions.jsonl")
        ua, wa = ua_wa(rows)
        uas.append(ua)
        was.append(wa)
        assert fold["test"]["ua"] == pytest.approx(ua, abs=1e-12)
        assert fold["test"]["wa"] == pytest.approx(wa, abs=1e-12)
        assert fold["test"]["num_utterances"] == len(rows)
        metrics = json.loads((cv_run / f"fold{k}" / "metrics.json").read_text())
        assert metrics["test"]["ua"] == pytest.approx(ua, abs=1e-12)
        assert metrics["test"]["wa"] == pytest.approx(wa, abs=1e-12)
        # report.md: "| k | k | UA | WA | ..." in percent with 2 decimals
        row = re.search(rf"^\| {k} \| {k} \| ([\d.]+) \| ([\d.]+) \|", report, re.M)
        assert row, f"fold {k} row missing in report.md"
        assert row.groups() == (f"{100 * ua:.2f}", f"{100 * wa:.2f}")
    for key, vals in (("ua", uas), ("wa", was)):
        assert res["test"][key]["mean"] == pytest.approx(float(np.mean(vals)), abs=1e-12)
        assert res["test"][key]["std"] == pytest.approx(float(np.std(vals)), abs=1e-12)
        assert res["test"][key]["n"] == NUM_FOLDS
    cell = r"\*\*([\d.]+)\*\* ± ([\d.]+)"
    mean_row = re.search(rf"^\| \*\*mean ± std\*\* \| \| {cell} \| {cell} \|", report, re.M)
    assert mean_row.groups() == (
        f"{100 * np.mean(uas):.2f}",
        f"{100 * np.std(uas):.2f}",
        f"{100 * np.mean(was):.2f}",
        f"{100 * np.std(was):.2f}",
    )


def test_no_test_speaker_in_train_or_valid(cv_run: Path, synth_manifest: Path, make_run_config, tmp_path):
    from metaser.data.folds import make_folds
    from metaser.data.manifest import load_manifest

    cuts = manifest_rows(synth_manifest)
    speaker = {i: c["supervisions"][0]["speaker"] for i, c in cuts.items()}
    folds = make_folds(load_manifest(synth_manifest), make_run_config(tmp_path).data.split)
    for k in range(1, NUM_FOLDS + 1):
        d = cv_run / f"fold{k}"
        tested = [r["id"] for r in read_jsonl(d / "predictions.jsonl")]
        split = folds[k - 1]
        assert sorted(tested) == sorted(split.test_ids)
        assert sorted(r["id"] for r in read_jsonl(d / "aux_predictions.jsonl")) == sorted(tested)
        test_speakers = {speaker[i] for i in tested}
        assert test_speakers == {f"Ses0{k}F", f"Ses0{k}M"}  # session k is one pair of speakers
        seen = {speaker[i] for i in split.train_ids + split.valid_ids}
        assert not test_speakers & seen
        # the speaker classes the run trained on (labels.json) are the training speakers only
        labels = json.loads((d / "labels.json").read_text())["classes"]
        assert set(labels["speaker"]) == {speaker[i] for i in split.train_ids}
        assert not test_speakers & set(labels["speaker"])
        info = json.loads((d / "run_info.json").read_text())
        assert (info["num_train"], info["num_valid"], info["num_test"]) == (
            len(split.train_ids),
            len(split.valid_ids),
            len(tested),
        )
        assert info["num_train"] + info["num_valid"] + info["num_test"] == len(cuts)


def test_report_rebuilds_the_same_results(cv_run: Path, tmp_path):
    run = tmp_path / "cv"
    shutil.copytree(cv_run, run)
    before = json.loads((run / "results.json").read_text())
    report_before = (run / "report.md").read_text()
    for name in ("results.json", "report.md", "confusion.png", "layer_weights.png"):
        (run / name).unlink()
    result = CliRunner().invoke(main, ["report", str(run)])
    assert result.exit_code == 0, result.output
    assert json.loads((run / "results.json").read_text()) == before
    assert (run / "report.md").read_text() == report_before
    assert (run / "confusion.png").is_file() and (run / "layer_weights.png").is_file()
    assert "UA = mean per-class recall" in result.output


def test_report_recomputes_from_predictions_not_metrics(cv_run: Path, tmp_path):
    """Editing a saved prediction changes the rebuilt UA/WA: the report reads predictions.jsonl."""
    run = tmp_path / "cv"
    shutil.copytree(cv_run, run)
    path = run / "fold1" / "predictions.jsonl"
    rows = read_jsonl(path)
    for r in rows:
        r["pred"] = r["emotion"]  # all correct
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = CliRunner().invoke(main, ["report", str(run)])
    assert result.exit_code == 0, result.output
    res = json.loads((run / "results.json").read_text())
    assert (res["folds"][0]["test"]["ua"], res["folds"][0]["test"]["wa"]) == (1.0, 1.0)
    assert res["folds"][1]["test"] == json.loads((cv_run / "results.json").read_text())["folds"][1]["test"]


def test_cli_cv_reproduces_fold1_of_run_cv(cv_run: Path, synth_manifest: Path, tmp_path):
    out = tmp_path / "runs"
    args = ["cv", str(TINY_PRESET), *run_config_overrides(synth_manifest, out, "name=cli", "folds=[1]")]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    run = out / "cli"
    for name in ("results.json", "report.md", "confusion.png", "layer_weights.png"):
        assert (run / name).is_file(), name
    assert sorted(p.name for p in run.glob("fold*")) == ["fold1"]
    for name in FOLD_FILES:
        assert (run / "fold1" / name).is_file(), name
    ours = json.loads((run / "fold1" / "metrics.json").read_text())
    ref = json.loads((cv_run / "fold1" / "metrics.json").read_text())
    assert ours["test"] == ref["test"]
    assert ours["valid"] == ref["valid"]
    assert read_jsonl(run / "fold1" / "predictions.jsonl") == read_jsonl(cv_run / "fold1" / "predictions.jsonl")
    assert f"{100 * ref['test']['ua']:.2f}" in result.output
    # a second call finds the fold finished and only rebuilds the report
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 0, again.output
    assert "fold 1: already finished, skipped" in again.output
    assert json.loads((run / "fold1" / "metrics.json").read_text()) == ours


def test_report_ignores_stray_fold_like_entries(cv_run, tmp_path):
    """fold2.bak/ and folds/ beside the fold folders: report works and reads fold1..fold5 only."""
    import shutil

    run = tmp_path / "copy"
    shutil.copytree(cv_run, run, symlinks=True)
    shutil.copytree(run / "fold2", run / "fold2.bak", symlinks=True)
    (run / "folds").mkdir()
    (run / "fold").write_text("not a folder")
    result = CliRunner().invoke(main, ["report", str(run)])
    assert result.exit_code == 0, result.output
    res = json.loads((run / "results.json").read_text())
    assert [f["fold"] for f in res["folds"]] == [1, 2, 3, 4, 5]
    ref = json.loads((cv_run / "results.json").read_text())
    assert res["test"] == ref["test"]


def test_fold_discovery_is_one_function_for_report_and_export(tmp_path):
    from metaser.inference.export import list_folds
    from metaser.rundir import fold_dirs

    for name in ("fold10", "fold2", "fold1", "fold2.bak", "folds", "fold"):
        (tmp_path / name).mkdir()
    assert [p.name for p in fold_dirs(tmp_path)] == ["fold1", "fold2", "fold10"]
    assert [f.fold for f in list_folds(tmp_path)] == [1, 2, 10]


def test_pooled_figures_and_paper_tables_on_a_real_run(cv_run: Path, tmp_path):
    """results.json's test_pooled is the pooled confusion's UA/WA; paper-tables places the tiny run
    in the WavLM column only through --encoder-as, and then without Δ."""
    res = json.loads((cv_run / "results.json").read_text())
    cm = np.array(res["pooled_confusion"])
    assert res["test_pooled"]["ua"] == pytest.approx(float(np.mean(np.diag(cm) / cm.sum(1))), abs=1e-12)
    assert res["test_pooled"]["wa"] == pytest.approx(float(np.trace(cm) / cm.sum()), abs=1e-12)
    assert res["test_pooled"]["num_utterances"] == 37
    rows = [r for k in range(1, NUM_FOLDS + 1) for r in read_jsonl(cv_run / f"fold{k}" / "aux_predictions.jsonl")]
    pairs = [(r["gender"], r["gender_pred"]) for r in rows if r.get("gender") is not None]
    assert res["test_pooled"]["gender_acc"] == pytest.approx(sum(a == b for a, b in pairs) / len(pairs))
    assert "| **pooled** | |" in (cv_run / "report.md").read_text()

    plain = CliRunner().invoke(main, ["paper-tables", str(cv_run)])
    assert plain.exit_code == 0, plain.output
    assert "'tiny-wavlm' is not one of the paper's" in plain.output
    out = tmp_path / "tables.json"
    mapped = CliRunner().invoke(
        main, ["paper-tables", str(cv_run), "--encoder-as", "tiny-wavlm=wavlm", "--json", str(out)]
    )
    assert mapped.exit_code == 0, mapped.output
    doc = json.loads(out.read_text())
    assert doc["unplaced"] == [] and doc["runs"][0]["cells"] == [
        ["I", "proposed"],
        ["II", "full"],
        ["III", "ari"],
        ["IV", "gender_speaker_style_asr"],
    ]
    cell = next(r for r in doc["tables"]["II"]["rows"] if r["id"] == "full")["cells"]["wavlm"]
    assert cell["ours"]["mean"]["ua"] == pytest.approx(100 * res["test"]["ua"]["mean"])
    assert cell["ours"]["pooled"]["wa"] == pytest.approx(100 * res["test_pooled"]["wa"])
    assert cell["comparable"] is False and cell["delta"] is None and cell["n_folds"] == NUM_FOLDS
    assert "|  | Δ | – | – | – | – | n/c | n/c |" in mapped.output
