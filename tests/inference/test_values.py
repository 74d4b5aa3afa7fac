"""Regression heads at inference: ``values`` in predict's JSON (task -> value, every regression
head), ``values_<task>`` CSV columns, one ``<task>_values`` ONNX output each, duration-weighted
values for long files, and a regression main task (no emotion output)."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest
import torch
from rich.console import Console

from metaser.inference.recognizer import EmotionRecognizer, RecognizerConfig
from metaser.inference.segment import SegmentConfig
from tests.inference.helpers import EMOTIONS, babble, silence, tone, write


def _model(main_task: str = "emotion"):
    """A random tiny-wavlm model: gender, valence and arousal heads; emotion or ``main_task`` main."""
    from metaser.models.config import EncoderConfig, ModelConfig, TaskSpec
    from metaser.models.metaser import MetaSERModel

    torch.manual_seed(0)
    tasks = [TaskSpec("gender", "classification", ["female", "male"]), TaskSpec("valence", "regression")]
    tasks.append(TaskSpec("arousal", "regression"))
    labels = EMOTIONS if main_task == "emotion" else []
    return MetaSERModel.build(
        ModelConfig(encoder=EncoderConfig(name_or_path="tiny-wavlm")), labels, tasks, main_task=main_task
    ).eval()


@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
    """Model directories: ``emotion`` (emotion main, valence / arousal aux) and ``arousal``
    (arousal main and aux: the main head's value wins), each with model.onnx."""
    from metaser.inference.onnx_export import export_onnx

    out = {}
    for main in ("emotion", "arousal"):
        d = tmp_path_factory.mktemp(main)
        _model(main).save_pretrained(d)
        out[main] = (d, export_onnx(d))
    return out


def test_values_are_the_heads_outputs(dirs):
    x = babble(1.3, seed=3)
    for main, (d, _) in dirs.items():
        rec = EmotionRecognizer.from_pretrained(d, device="cpu")
        with torch.inference_mode():
            out = rec.model.infer(torch.from_numpy(x)[None], torch.tensor([x.size]))
        p = rec.predict(x)
        assert set(p.values) == {"valence", "arousal"}
        assert p.values["valence"] == pytest.approx(float(out.task_values["valence"][0]), abs=1e-6)
        arousal = out.main_value if main == "arousal" else out.task_values["arousal"]
        assert p.values["arousal"] == pytest.approx(float(arousal[0]), abs=1e-6)
        assert p.to_dict()["values"] == {k: round(v, 6) for k, v in p.values.items()}
    arousal = EmotionRecognizer.from_pretrained(dirs["arousal"][0], device="cpu").predict(x)
    assert arousal.emotion is None and arousal.prob is None and arousal.probs == {}
    d = arousal.to_dict()
    assert d["emotion"] is None and d["prob"] is None and d["probs"] == {} and d["gender"] in ("female", "male")


def test_long_files_combine_values_by_duration(dirs):
    x = np.concatenate([silence(1.0), babble(3.0, seed=5), silence(2.0), babble(4.0, f0=210, seed=6), silence(1.0)])
    cfg = RecognizerConfig(segment=SegmentConfig(max_seconds=5.0))
    p = EmotionRecognizer.from_pretrained(dirs["arousal"][0], device="cpu", config=cfg).predict(x)
    assert p.segmentation == "vad" and len(p.segments) == 2
    w = np.array([s.end - s.start for s in p.segments])
    for task in ("valence", "arousal"):
        seg = np.array([s.values[task] for s in p.segments])
        assert p.values[task] == pytest.approx(float((w * seg).sum() / w.sum()), abs=1e-5)
    assert p.segments[0].to_dict()["values"] == {k: round(v, 6) for k, v in p.segments[0].values.items()}
    assert p.segments[0].emotion is None and p.segments[0].probs == {}


def test_predict_json_and_csv_carry_the_values(dirs, tmp_path):
    from metaser.inference.predict import run_predict

    files = [write(tmp_path / "a.wav", babble(0.8, seed=1)), write(tmp_path / "b.wav", tone(0.9, seed=2))]
    for main, (d, _) in dirs.items():
        out, err = io.StringIO(), io.StringIO()
        con = Console(file=out, width=200, color_system=None)
        assert run_predict(d, files, fmt="json", console=con, err_console=Console(file=err)) == 0
        rows = json.loads(out.getvalue())
        assert all(set(r["values"]) == {"valence", "arousal"} for r in rows)
        assert all(r["emotion"] is None if main == "arousal" else r["emotion"] in EMOTIONS for r in rows)
        target = tmp_path / f"{main}.csv"
        run_predict(d, files, fmt="csv", output=target, console=con, err_console=Console(file=err))
        table = list(csv.DictReader(target.open()))
        for r, j in zip(table, rows):
            assert float(r["values_valence"]) == pytest.approx(j["values"]["valence"], abs=1e-6)
            assert float(r["values_arousal"]) == pytest.approx(j["values"]["arousal"], abs=1e-6)
            assert (r["emotion"] == "" and r["prob"] == "") if main == "arousal" else r["emotion"] in EMOTIONS
        out = io.StringIO()
        run_predict(d, files, fmt="table", console=Console(file=out, width=200, color_system=None))
        assert "valence" in out.getvalue() and "arousal" in out.getvalue()


def test_onnx_exports_one_values_output_per_regression_head(dirs, tmp_path):
    import onnx

    for main, (d, entry) in dirs.items():
        first = "arousal_values" if main == "arousal" else "emotion_probs"
        rest = ["valence_values"] if main == "arousal" else ["valence_values", "arousal_values"]
        assert entry["outputs"] == [first, "gender_probs", *rest]
        assert entry["parity"]["ok"] and {"valence_values", "arousal_values"} <= set(entry["parity"]["max_abs_diff"])
        g = onnx.load(str(d / "model.onnx"))
        shapes = {o.name: [x.dim_param or x.dim_value for x in o.type.tensor_type.shape.dim] for o in g.graph.output}
        assert shapes["valence_values"] == ["batch"] and shapes["arousal_values"] == ["batch"]
        xs = [babble(0.7 + 0.4 * i, seed=40 + i) for i in range(3)]
        torch_rec = EmotionRecognizer.from_pretrained(d, device="cpu")
        onnx_rec = EmotionRecognizer.from_pretrained(d, backend="onnx")
        for a, b in zip(torch_rec.predict_batch(xs), onnx_rec.predict_batch(xs)):
            assert a.emotion == b.emotion and a.values.keys() == b.values.keys()
            assert all(abs(a.values[k] - b.values[k]) <= 1e-4 for k in a.values)


def test_a_parity_check_covers_the_values(dirs, tmp_path):
    """check_parity compares the values output: a graph whose value differs fails it."""
    import onnx
    from onnx import helper

    from metaser.inference.onnx_export import check_parity
    from metaser.models.factory import load_ser_model

    d, _ = dirs["arousal"]
    g = onnx.load(str(d / "model.onnx"))
    out = next(o for o in g.graph.output if o.name == "valence_values")
    out.name = "valence_raw"
    g.graph.node.append(helper.make_node("Add", ["valence_raw", "one"], ["valence_values"]))  # value + 1
    g.graph.initializer.append(helper.make_tensor("one", onnx.TensorProto.FLOAT, [], [1.0]))
    g.graph.output.remove(out)
    g.graph.output.append(helper.make_tensor_value_info("valence_values", onnx.TensorProto.FLOAT, ["batch"]))
    for node in g.graph.node:
        node.output[:] = ["valence_raw" if o == "valence_values" and node.op_type != "Add" else o for o in node.output]
    onnx.save(g, str(tmp_path / "shifted.onnx"))
    p = check_parity(load_ser_model(d), tmp_path / "shifted.onnx")
    assert not p["ok"] and p["max_abs_diff"]["valence_values"] == pytest.approx(1.0, abs=1e-4)
