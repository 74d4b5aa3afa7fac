from __future__ import annotations

import pytest

from tests.inference.helpers import build_tiny_model


@pytest.fixture(scope="session")
def tiny_model():
    return build_tiny_model().eval()


@pytest.fixture(scope="session")
def model_dir(tiny_model, tmp_path_factory):
    d = tmp_path_factory.mktemp("model")
    tiny_model.save_pretrained(d)
    return d


@pytest.fixture(scope="session")
def recognizer(model_dir):
    from metaser.inference.recognizer import EmotionRecognizer

    return EmotionRecognizer.from_pretrained(model_dir, device="cpu")


@pytest.fixture(scope="session")
def onnx_model_dir(tiny_model, tmp_path_factory):
    """The tiny model's directory with model.onnx (``export_onnx``)."""
    from metaser.inference.onnx_export import export_onnx

    d = tmp_path_factory.mktemp("onnx_model")
    tiny_model.save_pretrained(d)
    export_onnx(d)
    return d


@pytest.fixture(scope="session")
def onnx_recognizer(onnx_model_dir):
    from metaser.inference.recognizer import EmotionRecognizer

    return EmotionRecognizer.from_pretrained(onnx_model_dir, backend="onnx")
