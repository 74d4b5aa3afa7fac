"""``metaser export --int8``: calibration on the exported fold's validation part, as training split it."""

from __future__ import annotations

import json

import pytest
import yaml
from click.testing import CliRunner

from metaser.cli import main
from metaser.data.config import SplitConfig
from metaser.data.folds import make_folds
from metaser.data.manifest import load_manifest
from metaser.errors import MetaserError
from metaser.inference.calibration import validation_set
from tests.inference.helpers import fake_run

pytest.importorskip("onnxruntime")

SPLIT = {"group_by": "session", "valid_fraction": 0.2, "valid_by": "utterance", "seed": 3}


@pytest.fixture()
def run(tiny_model, synth_manifest, tmp_path):
    """A one-fold run whose fold1 has the config.yaml and run_info.json training writes."""
    run = fake_run(tmp_path / "run", [tiny_model], valid_ua=[0.5], test_ua=[0.5])
    fold = run / "fold1"
    (fold / "config.yaml").write_text(
        yaml.safe_dump({"name": "fake", "data": {"manifest": str(synth_manifest), "split": SPLIT}})
    )
    info = json.loads((fold / "run_info.json").read_text())
    info.update(manifest=str(synth_manifest), num_valid=len(_valid_ids(synth_manifest)))
    (fold / "run_info.json").write_text(json.dumps(info))
    return run


def _valid_ids(manifest) -> list[str]:
    return make_folds(load_manifest(manifest), SplitConfig(**SPLIT))[0].valid_ids


def test_validation_set_is_the_folds_validation_part(run, synth_manifest):
    cal = validation_set(run / "fold1")
    want = _valid_ids(synth_manifest)
    assert sorted(cal.ids) == sorted(want) and len(want) >= 3
    assert cal.source == "validation" and "fold 1" in cal.description
    assert all(x.ndim == 1 and x.shape[0] > 400 for x in cal.audio)


def test_a_changed_split_or_a_missing_manifest_is_refused(run, tmp_path):
    info = json.loads((run / "fold1" / "run_info.json").read_text())
    (run / "fold1" / "run_info.json").write_text(json.dumps({**info, "num_valid": info["num_valid"] + 1}))
    with pytest.raises(MetaserError, match="recomputed validation part has") as e:
        validation_set(run / "fold1")
    assert "--calib" in e.value.hint
    (run / "fold1" / "config.yaml").write_text(yaml.safe_dump({"data": {"manifest": str(tmp_path / "gone.jsonl.gz")}}))
    (run / "fold1" / "run_info.json").write_text(json.dumps({**info, "manifest": str(tmp_path / "gone.jsonl.gz")}))
    with pytest.raises(MetaserError, match="not found") as e:
        validation_set(run / "fold1")
    assert "--calib" in e.value.hint


def test_cli_export_int8_guard_passes_and_refuses(run, synth_manifest, tmp_path):
    out = tmp_path / "model"
    r = CliRunner().invoke(main, ["export", str(run), "-o", str(out), "--int8", "--min-agreement", "0.5"])
    assert r.exit_code == 0, r.output
    assert (out / "model.onnx").is_file() and (out / "model.int8.onnx").is_file()
    e = json.loads((out / "config.json").read_text())["int8"]
    assert e["calibration"]["set"] == "validation" and e["calibration"]["size"] == len(_valid_ids(synth_manifest))
    assert e["min_agreement"] == 0.5 and set(e["agreement"]) == {"emotion", "gender", "style"}
    r = CliRunner().invoke(main, ["export", str(run), "-o", str(out), "--int8", "--min-agreement", "1.01"])
    assert r.exit_code == 2 and "int8 refused" in r.output and "label agreement" in r.output
    assert "Traceback" not in r.output and (out / "model.onnx").is_file() and not (out / "model.int8.onnx").exists()
    assert "int8" not in json.loads((out / "config.json").read_text())
