"""Export a trained run, then predict on its test files: the labels of the run's saved test
predictions come back (issue: "export then predict on demo test files reproduces the labels")."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from metaser.data.manifest import load_manifest
from metaser.inference.export import export_model
from metaser.inference.recognizer import EmotionRecognizer


def _rows(fold_dir: Path) -> list[dict]:
    return [json.loads(x) for x in (fold_dir / "predictions.jsonl").read_text().splitlines() if x.strip()]


def test_export_then_predict_reproduces_the_saved_test_predictions(cv_run, synth_manifest, tmp_path):
    info = export_model(cv_run, tmp_path / "model")
    fold_dir = cv_run / f"fold{info['fold']}"
    rows = _rows(fold_dir)
    assert rows, "the selected fold has test predictions"
    cuts = {c.id: c for c in load_manifest(synth_manifest)}
    paths = [cuts[r["id"]].recording.sources[0].source for r in rows]

    rec = EmotionRecognizer.from_pretrained(tmp_path / "model", device="cpu")
    preds = rec.predict_batch(paths)
    assert [getattr(p, "error", None) for p in preds] == [None] * len(rows)
    assert [p.emotion for p in preds] == [r["pred"] for r in rows]
    for p, r in zip(preds, rows):
        for cls, prob in r["probs"].items():
            assert p.probs[cls] == pytest.approx(prob, abs=1e-4)
        if "gender_pred" in r:
            assert p.gender is not None


def test_cli_predict_on_the_exported_model_gives_the_same_labels(cv_run, synth_manifest, tmp_path):
    from click.testing import CliRunner

    from metaser.cli import main

    out = tmp_path / "model"
    r = CliRunner().invoke(main, ["export", str(cv_run), "-o", str(out)])
    assert r.exit_code == 0, r.output
    fold = json.loads((out / "export.json").read_text())["fold"]
    rows = _rows(cv_run / f"fold{fold}")
    cuts = {c.id: c for c in load_manifest(synth_manifest)}
    paths = [cuts[row["id"]].recording.sources[0].source for row in rows]
    res = CliRunner().invoke(main, ["predict", str(out), *paths, "--format", "json", "-o", str(tmp_path / "p.json")])
    assert res.exit_code == 0, res.output
    got = json.loads((tmp_path / "p.json").read_text())
    assert [g["emotion"] for g in got] == [row["pred"] for row in rows]
