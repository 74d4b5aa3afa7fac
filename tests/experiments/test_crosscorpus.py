"""Across corpora: ``metaser evaluate`` (a model on any prepared corpus) and ``metaser cross``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from metaser.cli import main
from tests.conftest import TEST_OVERRIDES, TINY_PRESET
from tests.data.conftest import EMODB_ROOT


def test_evaluate_scores_a_model_on_a_corpus_through_the_label_map(cv_run, synth_manifest, tmp_path):
    """The demo model (ang / hap / neu / sad) on its own corpus: every label maps; a map that drops
    'sad' drops its utterances from the corpus and its probability mass from the model."""
    from metaser.experiments.crosscorpus import evaluate_model
    from metaser.training.metrics import classification_scores

    model = cv_run / "fold1" / "model"
    res = evaluate_model(model, synth_manifest)
    assert res["classes"] == ["ang", "hap", "neu", "sad"] and res["dropped"] == {} and res["failed"] == {}
    assert res["num_utterances"] == sum(map(sum, res["confusion"])) > 30
    assert 0.0 <= res["ua"] <= 1.0 and res["model_classes"] == {c: c for c in res["classes"]}
    again = classification_scores(
        [i for i, row in enumerate(res["confusion"]) for j, n in enumerate(row) for _ in range(n)],
        [j for row in res["confusion"] for j, n in enumerate(row) for _ in range(n)],
        4,
    )
    assert again["ua"] == pytest.approx(res["ua"]) and again["wa"] == pytest.approx(res["wa"])
    lmap = tmp_path / "map.yaml"
    lmap.write_text("ang: ang\nhap: hap\nneu: neu\nsad: null\n")
    three = evaluate_model(model, synth_manifest, label_map=lmap)
    assert three["classes"] == ["ang", "hap", "neu"] and three["dropped"]["sad"] > 0
    assert three["num_utterances"] == res["num_utterances"] - three["dropped"]["sad"]


def test_evaluate_command_writes_json_and_refuses_a_bad_map(cv_run, synth_manifest, tmp_path):
    out = tmp_path / "eval.json"
    model = str(cv_run / "fold1" / "model")
    r = CliRunner().invoke(main, ["evaluate", model, str(synth_manifest), "--json", str(out)])
    assert r.exit_code == 0, r.output
    assert "UA %" in r.output and json.loads(out.read_text())["classes"] == ["ang", "hap", "neu", "sad"]
    bad = tmp_path / "bad.yaml"
    bad.write_text("- not\n- a mapping\n")
    r = CliRunner().invoke(main, ["evaluate", model, str(synth_manifest), "--label-map", str(bad)])
    assert r.exit_code == 2 and "Traceback" not in r.output


@pytest.mark.integration
@pytest.mark.skipif(not EMODB_ROOT.is_dir(), reason="../shared/data/emodb is absent")
def test_cross_trains_on_emodb_and_tests_on_the_demo_corpus(synth_manifest, tmp_path):
    """metaser cross: EmoDB relabelled to neu / hap / ang / sad (boredom, disgust, fear dropped),
    a validation part held out, no test part of its own; a 1 x 1 matrix on the demo corpus."""
    runner = CliRunner()
    emodb = tmp_path / "emodb"
    assert runner.invoke(main, ["prepare", "emodb", str(EMODB_ROOT), "-o", str(emodb)]).exit_code == 0
    out = tmp_path / "cross.json"
    args = ["cross", str(TINY_PRESET), "--train", str(emodb), "--test", str(synth_manifest), "--json", str(out)]
    args += [f"output_dir={tmp_path / 'runs'}", *TEST_OVERRIDES, "trainer.limit_train_batches=2", "name=cross"]
    args += ["aux_tasks={gender: 1.0}"]
    r = runner.invoke(main, args)
    assert r.exit_code == 0, r.output
    doc = json.loads(out.read_text())
    assert list(doc["matrix"]) == ["emodb"] and list(doc["matrix"]["emodb"]) == ["manifest"]
    cell = doc["matrix"]["emodb"]["manifest"]
    assert set(cell) == {"ua", "wa", "macro_f1", "num_utterances"} and cell["num_utterances"] > 30
    assert set(doc["train"]["dropped"]) == {"boredom", "disgust", "fear"}
    assert "| emodb |" in r.output
    fold = Path(doc["model"]).parent
    info = json.loads((fold / "run_info.json").read_text())
    assert info["num_test"] == 0 and info["num_valid"] > 0
