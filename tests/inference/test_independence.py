"""A result never depends on the other inputs: a file alone and among 19 others gets the same
probabilities (<= 1e-5), for a group-norm encoder (wav2vec2-base's CNN), every head, in the
Python API, ``metaser predict``, the ONNX backend and ``metaser serve`` under concurrent requests."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from metaser.cli import main
from metaser.inference.recognizer import EmotionRecognizer
from tests.inference.helpers import EMOTIONS, babble, write

TOL = 1e-5


@pytest.fixture(scope="module")
def gn_model_dir(tmp_path_factory) -> Path:
    """A tiny group-norm (wav2vec2-class) model with gender, style and CTC heads, and its ONNX graph."""
    from metaser.inference.onnx_export import export_onnx
    from metaser.models.config import EncoderConfig, ModelConfig, TaskSpec
    from metaser.models.factory import build_ser_model

    model = build_ser_model(
        ModelConfig(encoder=EncoderConfig(name_or_path="tiny-wav2vec2")),
        EMOTIONS,
        [
            TaskSpec("gender", "classification", ["female", "male"]),
            TaskSpec("style", "classification", ["impro", "script"]),
            TaskSpec("asr", "ctc", list("abc '")),
        ],
    )
    d = tmp_path_factory.mktemp("gn-model")
    model.save_pretrained(d)
    export_onnx(d)
    return d


@pytest.fixture(scope="module")
def twenty(tmp_path_factory) -> list[Path]:
    """20 files of 0.6 to 4.4 s: batches pad them a lot."""
    root = tmp_path_factory.mktemp("twenty")
    return [write(root / f"f{i:02d}.wav", babble(0.6 + 0.2 * i, seed=i)) for i in range(20)]


def _heads(pred) -> dict[str, float]:
    """Every probability a prediction reports: emotion classes, gender, style, other heads."""
    out = {f"emotion:{k}": v for k, v in pred.probs.items()}
    if pred.gender_prob is not None:
        out[f"gender:{pred.gender}"] = pred.gender_prob
    if pred.style_prob is not None:
        out[f"style:{pred.style}"] = pred.style_prob
    return out


def _worst(alone, batched) -> float:
    worst = 0.0
    for a, b in zip(alone, batched):
        assert (a.emotion, a.gender, a.style, a.transcript) == (b.emotion, b.gender, b.style, b.transcript)
        ha, hb = _heads(a), _heads(b)
        assert ha.keys() == hb.keys()
        worst = max(worst, max(abs(ha[k] - hb[k]) for k in ha))
    return worst


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_a_file_alone_and_among_twenty_gets_the_same_answer(gn_model_dir, twenty, backend):
    rec = EmotionRecognizer.from_pretrained(gn_model_dir, device="cpu", backend=backend, batch_size=8)
    alone = [rec.predict(f) for f in twenty]
    batched = rec.predict_batch(twenty)
    assert all(p.ok for p in batched)
    assert _worst(alone, batched) <= TOL


def test_predict_command_gives_each_file_its_answer_alone(gn_model_dir, twenty):
    runner = CliRunner()
    one = runner.invoke(main, ["predict", str(gn_model_dir), str(twenty[7]), "--format", "json"])
    many = runner.invoke(main, ["predict", str(gn_model_dir), str(twenty[0].parent), "--format", "json"])
    assert one.exit_code == 0 and many.exit_code == 0, (one.output, many.output)
    a = json.loads(one.output)[0]
    b = next(r for r in json.loads(many.output) if r["path"].endswith("f07.wav"))
    assert a["emotion"] == b["emotion"] and a["gender"] == b["gender"] and a["style"] == b["style"]
    assert max(abs(a["probs"][k] - b["probs"][k]) for k in a["probs"]) <= TOL
    assert abs(a["gender_prob"] - b["gender_prob"]) <= TOL and abs(a["style_prob"] - b["style_prob"]) <= TOL


def test_serve_answers_a_file_the_same_whatever_arrives_with_it(gn_model_dir, twenty):
    pytest.importorskip("httpx")
    from fastapi.testclient import TestClient

    from metaser.inference.serve.app import ServeConfig, create_app

    rec = EmotionRecognizer.from_pretrained(gn_model_dir, device="cpu")
    bodies = [f.read_bytes() for f in twenty]

    def post(c, i):
        r = c.post("/v1/predict", content=bodies[i], headers={"content-type": "audio/wav"})
        assert r.status_code == 200, r.text
        return r.json()

    with TestClient(create_app(rec, ServeConfig(batch_size=8))) as c:
        alone = [post(c, i) for i in range(len(bodies))]
        bursts = []
        for _ in range(3):  # three concurrent bursts of all 20
            with ThreadPoolExecutor(8) as ex:
                bursts.append(list(ex.map(lambda i, c=c: post(c, i), range(len(bodies)))))
    for burst in bursts:
        for a, b in zip(alone, burst):
            assert (a["emotion"], a["gender"], a["style"]) == (b["emotion"], b["gender"], b["style"])
            assert max(abs(a["probs"][k] - b["probs"][k]) for k in a["probs"]) <= TOL
            assert abs(a["gender_prob"] - b["gender_prob"]) <= TOL


def test_the_onnx_graph_is_the_batch_independent_forward(gn_model_dir, twenty):
    """ONNX and torch agree on a padded batch of group-norm input (the masked group norm traced)."""
    torch_rec = EmotionRecognizer.from_pretrained(gn_model_dir, device="cpu", batch_size=8)
    onnx_rec = EmotionRecognizer.from_pretrained(gn_model_dir, backend="onnx", batch_size=8)
    a, b = torch_rec.predict_batch(twenty), onnx_rec.predict_batch(twenty)
    probs = np.array([[p.probs[c] for c in EMOTIONS] for p in a])
    probs_onnx = np.array([[p.probs[c] for c in EMOTIONS] for p in b])
    assert np.abs(probs - probs_onnx).max() <= 1e-4
