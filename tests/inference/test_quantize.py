"""int8 (``--int8``): the accuracy guard, the ``onnx-int8`` backend and the static graph rewrite."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest

from metaser.errors import MetaserError
from metaser.inference.calibration import CalibrationSet, directory_set
from metaser.inference.quantize import INT8_NAME, Int8Refused, export_int8
from metaser.inference.recognizer import EmotionRecognizer, RecognizerConfig
from tests.inference.helpers import EMOTIONS, babble, silence, write

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")


def _calibration(n: int = 6) -> CalibrationSet:
    cal = CalibrationSet("directory", "test audio")
    for i in range(n):
        x = babble(0.7 + 0.4 * i, f0=120 + 15 * i, seed=70 + i)
        if i % 2:  # near-silent stretches, as real recordings have
            x = np.concatenate([silence(0.3) + 1e-4, x])
        cal.add(f"c{i}", x)
    return cal


@pytest.fixture()
def model_copy(onnx_model_dir, tmp_path):
    d = tmp_path / "m"
    shutil.copytree(onnx_model_dir, d)
    return d


@pytest.fixture(scope="module")
def int8_model_dir(onnx_model_dir, tmp_path_factory):
    d = tmp_path_factory.mktemp("int8") / "m"
    shutil.copytree(onnx_model_dir, d)
    export_int8(d, _calibration(), min_agreement=0.5)
    return d


def test_int8_export_records_the_guard_in_config_json(int8_model_dir):
    e = json.loads((int8_model_dir / "config.json").read_text())["int8"]
    assert e["file"] == INT8_NAME and (int8_model_dir / INT8_NAME).is_file()
    assert e["method"] == "static" and e["source"] == "model.onnx"
    assert e["calibration"]["set"] == "directory" and e["calibration"]["size"] == 6
    assert e["calibration"]["range_files"] == 6 and e["calibration"]["seconds"] > 0
    assert set(e["agreement"]) == {"emotion", "gender", "style"}  # every classification head, no CTC
    assert all(0.5 <= v <= 1.0 for v in e["agreement"].values())
    assert e["min_agreement"] == 0.5
    assert 0 < e["max_abs_diff"] < 0.05 and e["max_abs_diff"] == max(e["max_abs_diff_per_head"].values())
    # the tiny wavlm: 6 CNN convolutions as taps, every linear layer of the 12 layers (+ projection) in int8
    assert e["quantized"]["conv_taps"] == 6 and e["quantized"]["linear"] == 12 * 6 + 1
    ops = {n.op_type for n in onnx.load(str(int8_model_dir / INT8_NAME)).graph.node}
    assert {"MatMulIntegerToFloat", "QuantizeLinear"} <= ops


def test_a_threshold_above_one_always_refuses_and_leaves_nothing_behind(model_copy):
    export_int8(model_copy, _calibration(3), min_agreement=0.0)  # an earlier int8 graph ...
    assert (model_copy / INT8_NAME).is_file()
    with pytest.raises(Int8Refused) as e:
        export_int8(model_copy, _calibration(3), min_agreement=1.01)
    assert e.value.exit_code == 2
    msg = e.value.message
    assert "int8 refused" in msg and re.search(r"emotion [01]\.\d{3} \([0-3]/3\)", msg)
    assert "max |Δp|" in msg and "below --min-agreement 1.01" in msg and "earlier one was removed" in msg
    assert not (model_copy / INT8_NAME).exists() and not list(model_copy.glob(".*.tmp"))  # ... is gone too
    assert "int8" not in json.loads((model_copy / "config.json").read_text())


def test_onnx_int8_backend_gives_the_fp32_answers(int8_model_dir, onnx_recognizer):
    rec = EmotionRecognizer.from_pretrained(int8_model_dir, backend="onnx-int8")
    assert rec.backend_name == "onnx-int8"
    xs = [babble(0.6 + 0.5 * i, seed=90 + i) for i in range(4)]
    for a, b in zip(onnx_recognizer.predict_batch(xs), rec.predict_batch(xs)):
        np.testing.assert_allclose([a.probs[c] for c in EMOTIONS], [b.probs[c] for c in EMOTIONS], atol=0.02)
        assert a.duration == b.duration and b.transcript is not None


def test_int8_answers_do_not_depend_on_the_batch(int8_model_dir):
    """Fixed or per-frame ranges only: a file padded into a batch gets its one-at-a-time answer."""
    one = EmotionRecognizer.from_pretrained(int8_model_dir, backend="onnx-int8", batch_size=1)
    many = EmotionRecognizer.from_pretrained(
        int8_model_dir, backend="onnx-int8", config=RecognizerConfig(batch_size=3, max_padding=10.0)
    )
    xs = [babble(0.5, seed=1), babble(2.5, seed=2, level=0.6), babble(1.2, seed=3, level=0.05)]
    for a, b in zip(one.predict_batch(xs), many.predict_batch(xs)):
        np.testing.assert_allclose([a.probs[c] for c in EMOTIONS], [b.probs[c] for c in EMOTIONS], atol=1e-5)
        assert a.transcript == b.transcript


def test_onnx_int8_backend_without_the_file(model_copy):
    with pytest.raises(MetaserError, match="no model.int8.onnx") as e:
        EmotionRecognizer.from_pretrained(model_copy, backend="onnx-int8")
    assert "export-onnx" in e.value.hint and "--int8" in e.value.hint


def test_dynamic_method_and_bad_inputs(model_copy, tmp_path):
    e = export_int8(model_copy, _calibration(2), min_agreement=0.0, method="dynamic")
    assert e["method"] == "dynamic" and e["quantized"] == {"linear": 73} and e["calibration"]["range_files"] == 0
    with pytest.raises(MetaserError, match="--int8-method"):
        export_int8(model_copy, _calibration(2), method="int4")
    (model_copy / "model.onnx").unlink()
    with pytest.raises(MetaserError, match="no model.onnx"):
        export_int8(model_copy, _calibration(2))
    with pytest.raises(MetaserError, match="not found"):
        directory_set(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(MetaserError, match="no usable audio"):
        directory_set(tmp_path / "empty")
    write(tmp_path / "d" / "a.wav", babble(0.5))
    write(tmp_path / "d" / "short.wav", babble(0.01))  # shorter than the receptive field: skipped
    cal = directory_set(tmp_path / "d")
    assert len(cal) == 1 and cal.skipped == 1 and cal.summary()["size"] == 1


def test_cli_export_onnx_int8(model_dir, tmp_path):
    from click.testing import CliRunner

    from metaser.cli import main

    d = tmp_path / "m"
    shutil.copytree(model_dir, d)
    for i in range(3):
        write(tmp_path / "calib" / f"c{i}.wav", babble(0.8 + 0.3 * i, seed=100 + i))
    r = CliRunner().invoke(main, ["export-onnx", str(d), "--int8"])
    assert r.exit_code == 2 and "--calib" in r.output  # no export.json: no run to take validation files from
    r = CliRunner().invoke(
        main, ["export-onnx", str(d), "--int8", "--calib", str(tmp_path / "calib"), "--min-agreement", "0"]
    )
    assert r.exit_code == 0, r.output
    assert "model.int8.onnx" in r.output and "label agreement" in r.output and (d / INT8_NAME).is_file()
    out = tmp_path / "p.json"
    args = ["predict", str(d), str(tmp_path / "calib"), "--backend", "onnx-int8", "--format", "json", "-o", str(out)]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    assert [p["emotion"] in EMOTIONS for p in json.loads(out.read_text())] == [True] * 3
    r = CliRunner().invoke(
        main, ["export-onnx", str(d), "--int8", "--calib", str(tmp_path / "calib"), "--min-agreement", "1.01"]
    )
    assert r.exit_code == 2 and "int8 refused" in r.output and "Traceback" not in r.output
    assert not (d / INT8_NAME).exists()
