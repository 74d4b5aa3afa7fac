"""Export a trained run, then predict on its test files: the run's saved test predictions come
back, on the torch and on the ONNX backend (issue: "export then predict on demo test files
reproduces the labels"; "predict --backend onnx gives the same labels and probabilities within
1e-4 as torch on the demo test files")."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from metaser.data.manifest import load_manifest
from metaser.inference.export import export_model
from metaser.inference.recognizer import EmotionRecognizer


def _rows(fold_dir: Path) -> list[dict]:
    return [json.loads(x) for x in (fold_dir / "predictions.jsonl").read_text().splitlines() if x.strip()]


def _test_files(cv_run: Path, synth_manifest: Path, fold: int) -> tuple[list[dict], list[str]]:
    rows = _rows(cv_run / f"fold{fold}")
    assert rows, "the selected fold has test predictions"
    cuts = {c.id: c for c in load_manifest(synth_manifest)}
    return rows, [cuts[r["id"]].recording.sources[0].source for r in rows]


def test_export_then_predict_reproduces_the_saved_test_predictions(cv_run, synth_manifest, tmp_path):
    info = export_model(cv_run, tmp_path / "model")
    rows, paths = _test_files(cv_run, synth_manifest, info["fold"])
    rec = EmotionRecognizer.from_pretrained(tmp_path / "model", device="cpu")
    preds = rec.predict_batch(paths)
    assert [getattr(p, "error", None) for p in preds] == [None] * len(rows)
    assert [p.emotion for p in preds] == [r["pred"] for r in rows]
    assert "gender_pred" in rows[0] and "style_pred" in rows[0] and "asr_pred" in rows[0]  # the demo's aux tasks
    assert [p.gender for p in preds] == [r["gender_pred"] for r in rows]
    assert [p.style for p in preds] == [r["style_pred"] for r in rows]
    assert [p.transcript for p in preds] == [r["asr_pred"] for r in rows]
    for p, r in zip(preds, rows):
        for cls, prob in r["probs"].items():
            assert p.probs[cls] == pytest.approx(prob, abs=1e-4)


def test_cli_predict_on_the_exported_model_gives_the_same_labels(cv_run, synth_manifest, tmp_path):
    from click.testing import CliRunner

    from metaser.cli import main

    out = tmp_path / "model"
    r = CliRunner().invoke(main, ["export", str(cv_run), "-o", str(out)])
    assert r.exit_code == 0, r.output
    fold = json.loads((out / "export.json").read_text())["fold"]
    rows, paths = _test_files(cv_run, synth_manifest, fold)
    res = CliRunner().invoke(main, ["predict", str(out), *paths, "--format", "json", "-o", str(tmp_path / "p.json")])
    assert res.exit_code == 0, res.output
    got = json.loads((tmp_path / "p.json").read_text())
    assert [g["emotion"] for g in got] == [row["pred"] for row in rows]
    assert [g["gender"] for g in got] == [row["gender_pred"] for row in rows]


def test_export_onnx_then_predict_backend_onnx_matches_torch_on_the_demo_test_files(cv_run, synth_manifest, tmp_path):
    from click.testing import CliRunner

    from metaser.cli import main

    out = tmp_path / "model"
    r = CliRunner().invoke(main, ["export", str(cv_run), "-o", str(out), "--onnx"])
    assert r.exit_code == 0, r.output
    assert (out / "model.onnx").is_file()
    assert json.loads((out / "config.json").read_text())["onnx"]["opset"] == 17
    fold = json.loads((out / "export.json").read_text())["fold"]
    rows, paths = _test_files(cv_run, synth_manifest, fold)
    got = {}
    for backend in ("torch", "onnx"):
        f = tmp_path / f"{backend}.json"
        res = CliRunner().invoke(
            main, ["predict", str(out), *paths, "--format", "json", "--backend", backend, "-o", str(f)]
        )
        assert res.exit_code == 0, res.output
        got[backend] = json.loads(f.read_text())
    assert [g["emotion"] for g in got["onnx"]] == [row["pred"] for row in rows]
    for t, o in zip(got["torch"], got["onnx"]):
        assert (t["emotion"], t["gender"], t["style"], t["transcript"]) == (
            o["emotion"],
            o["gender"],
            o["style"],
            o["transcript"],
        )
        assert max(abs(t["probs"][k] - o["probs"][k]) for k in t["probs"]) <= 1e-4
        assert abs(t["gender_prob"] - o["gender_prob"]) <= 1e-4
