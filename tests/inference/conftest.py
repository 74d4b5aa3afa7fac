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
