"""ONNX export (parity checked at export time) and the onnxruntime backend of the recognizer."""

from __future__ import annotations

import json

import numpy as np
import pytest

from metaser.errors import ConfigError, MetaserError
from metaser.inference.onnx_export import OnnxExportError, export_onnx
from metaser.inference.recognizer import EmotionRecognizer, RecognizerConfig
from metaser.inference.results import Prediction, PredictionError
from metaser.inference.segment import SegmentConfig
from tests.inference.helpers import EMOTIONS, babble, bad_files, silence, tone, write

onnx = pytest.importorskip("onnx")


def _probs(p: Prediction) -> np.ndarray:
    return np.array([p.probs[c] for c in EMOTIONS])


def _same(a: Prediction, b: Prediction, atol: float = 1e-4) -> None:
    np.testing.assert_allclose(_probs(a), _probs(b), atol=atol)
    assert a.emotion == b.emotion and a.gender == b.gender and a.style == b.style
    assert a.gender_prob == pytest.approx(b.gender_prob, abs=atol)
    assert a.style_prob == pytest.approx(b.style_prob, abs=atol)
    assert a.transcript == b.transcript
    assert [(s.start, s.end, s.emotion) for s in a.segments] == [(s.start, s.end, s.emotion) for s in b.segments]


def test_export_records_opset_dynamic_axes_and_parity(onnx_model_dir):
    meta = json.loads((onnx_model_dir / "config.json").read_text())
    e = meta["onnx"]
    assert e["file"] == "model.onnx" and e["opset"] == 17
    assert e["outputs"] == ["emotion_probs", "gender_probs", "style_probs", "ctc_log_probs", "ctc_lengths"]
    p = e["parity"]
    assert p["ok"] and [c["batch"] for c in p["cases"]] == [1, 1, 3]
    assert len({c["lengths"][0] for c in p["cases"][:2]}) == 2  # two different lengths
    assert all(v <= 1e-4 for k, v in p["max_abs_diff"].items() if k != "ctc_log_probs")
    g = onnx.load(str(onnx_model_dir / "model.onnx"))
    assert g.opset_import[0].version == 17
    dims = {i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in g.graph.input}
    assert dims == {"waveforms": ["batch", "samples"], "lengths": ["batch"]}
    out = {o.name: [d.dim_param or d.dim_value for d in o.type.tensor_type.shape.dim] for o in g.graph.output}
    assert out["emotion_probs"] == ["batch", len(EMOTIONS)]
    assert out["ctc_log_probs"][:2] == ["batch", "frames"]


def test_onnx_backend_matches_torch_on_single_and_batched_inputs(recognizer, onnx_recognizer, tmp_path):
    assert onnx_recognizer.backend_name == "onnx" and recognizer.backend_name == "torch"
    xs = [babble(0.6 + 0.45 * i, seed=30 + i) for i in range(6)]  # lengths unlike the export's probes
    for a, b in zip(recognizer.predict_batch(xs), onnx_recognizer.predict_batch(xs)):
        _same(a, b)
    f = write(tmp_path / "one.wav", babble(2.7, seed=40))
    _same(recognizer.predict(f), onnx_recognizer.predict(f))


def test_long_audio_and_per_file_errors_are_the_same_on_both_backends(model_dir, onnx_model_dir, tmp_path):
    cfg = RecognizerConfig(segment=SegmentConfig(max_seconds=5.0), batch_size=4)
    rt = EmotionRecognizer.from_pretrained(model_dir, device="cpu", config=cfg)
    ro = EmotionRecognizer.from_pretrained(onnx_model_dir, backend="onnx", config=cfg)
    speech = np.concatenate([silence(1.0), babble(3.0, seed=5), silence(2.0), babble(4.0, f0=210, seed=6)])
    tones = np.concatenate([tone(6.0, seed=1), silence(2.0), tone(6.0, freq=300, seed=2)])
    bad = bad_files(tmp_path / "bad")
    items = [speech, *bad.values(), tones]
    a, b = rt.predict_batch(items), ro.predict_batch(items)
    assert [type(r) for r in a] == [type(r) for r in b]
    assert a[0].segmentation == b[0].segmentation == "vad" and len(a[0].segments) == 2
    assert a[-1].segmentation == b[-1].segmentation == "windows"
    for x, y in zip(a, b):
        if isinstance(x, PredictionError):
            assert x.to_dict() == y.to_dict()
        else:
            _same(x, y)
            for s, t in zip(x.segments, y.segments):
                np.testing.assert_allclose(list(s.probs.values()), list(t.probs.values()), atol=1e-4)


def test_a_failing_parity_check_refuses_the_export(tiny_model, tmp_path):
    tiny_model.save_pretrained(tmp_path)
    before = (tmp_path / "config.json").read_text()
    with pytest.raises(OnnxExportError, match="disagrees with the torch model") as e:
        export_onnx(tmp_path, atol=1e-12)  # float32 kernels differ: nothing passes a 1e-12 check
    assert e.value.exit_code == 2
    assert not (tmp_path / "model.onnx").exists() and not list(tmp_path.glob(".*.tmp"))
    assert (tmp_path / "config.json").read_text() == before  # nothing recorded


def test_onnx_backend_errors(model_dir):
    with pytest.raises(MetaserError, match="no model.onnx") as e:
        EmotionRecognizer.from_pretrained(model_dir, backend="onnx")
    assert "metaser export-onnx" in e.value.hint
    with pytest.raises(ConfigError, match="--backend"):
        EmotionRecognizer.from_pretrained(model_dir, backend="tensorflow")


def test_onnx_device_selection(onnx_model_dir):
    from metaser.inference.backends import onnx_providers

    assert onnx_providers("cpu") == ["CPUExecutionProvider"]
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        with pytest.raises(ConfigError, match="no CUDA provider"):
            onnx_providers("cuda")
        assert onnx_providers("auto") == ["CPUExecutionProvider"]
    with pytest.raises(ConfigError, match="cpu or cuda"):
        onnx_providers("mps")


def test_cli_export_onnx_and_predict_backend_onnx(model_dir, tmp_path):
    import shutil

    from click.testing import CliRunner

    from metaser.cli import main

    d = tmp_path / "m"
    shutil.copytree(model_dir, d)
    r = CliRunner().invoke(main, ["export-onnx", str(d)])
    assert r.exit_code == 0, r.output
    assert "model.onnx" in r.output and (d / "model.onnx").is_file()
    files = [str(write(tmp_path / f"a{i}.wav", babble(0.8 + 0.5 * i, seed=50 + i))) for i in range(3)]
    out = {}
    for backend in ("torch", "onnx"):
        res = CliRunner().invoke(
            main,
            [
                "predict",
                str(d),
                *files,
                "--format",
                "json",
                "--backend",
                backend,
                "-o",
                str(tmp_path / f"{backend}.json"),
            ],
        )
        assert res.exit_code == 0, res.output
        out[backend] = json.loads((tmp_path / f"{backend}.json").read_text())
    for a, b in zip(out["torch"], out["onnx"]):
        assert a["emotion"] == b["emotion"] and a["transcript"] == b["transcript"]
        assert max(abs(a["probs"][k] - b["probs"][k]) for k in a["probs"]) <= 1e-4
    r = CliRunner().invoke(main, ["export-onnx", str(tmp_path / "nope")])
    assert r.exit_code == 2 and "not found" in r.output


def test_base_size_wavlm_exports_with_parity(tmp_path):
    """A base-size (95 M parameter) random WavLM: relative position bias, 12 layers of 768."""
    import torch

    from metaser.models.config import EncoderConfig, ModelConfig, TaskSpec
    from metaser.models.metaser import MetaSERModel

    torch.manual_seed(0)
    m = MetaSERModel.build(
        ModelConfig(encoder=EncoderConfig(name_or_path="base-random-wavlm")),
        EMOTIONS,
        [TaskSpec("gender", "classification", ["female", "male"]), TaskSpec("asr", "ctc", list("abc '"))],
    )
    assert m.encoder.hidden_size == 768 and m.encoder.num_layers == 12
    m.save_pretrained(tmp_path)
    del m
    e = export_onnx(tmp_path)
    assert e["parity"]["ok"] and e["parity"]["max_abs_diff"]["emotion_probs"] <= 1e-4
    rt = EmotionRecognizer.from_pretrained(tmp_path, device="cpu")
    ro = EmotionRecognizer.from_pretrained(tmp_path, backend="onnx")
    xs = [babble(1.3, seed=60), babble(0.7, seed=61)]
    for a, b in zip(rt.predict_batch(xs), ro.predict_batch(xs)):
        np.testing.assert_allclose(_probs(a), _probs(b), atol=1e-4)
        assert a.gender == b.gender and a.transcript == b.transcript


def test_files_apart_give_the_one_at_a_time_answers(onnx_model_dir):
    """OnnxBackend(files_at_once=2): a batch's utterances run alone, two threads at a time."""
    from metaser.inference.backends import OnnxBackend

    one = EmotionRecognizer.from_pretrained(onnx_model_dir, backend="onnx", batch_size=1)
    apart = EmotionRecognizer.from_pretrained(
        onnx_model_dir, backend="onnx", config=RecognizerConfig(batch_size=4, max_padding=10.0)
    )
    apart.backend = OnnxBackend(onnx_model_dir / "model.onnx", files_at_once=2)
    assert apart.backend.session.get_session_options().intra_op_num_threads == 1
    xs = [babble(0.5 + 0.6 * i, seed=80 + i) for i in range(5)]
    for a, b in zip(one.predict_batch(xs), apart.predict_batch(xs)):
        np.testing.assert_allclose(_probs(a), _probs(b), atol=1e-6)
        assert a.transcript == b.transcript and a.gender_prob == pytest.approx(b.gender_prob, abs=1e-6)
