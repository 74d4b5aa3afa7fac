"""metaser.inference: use a trained model.

* :class:`EmotionRecognizer` (the Python API), its results :class:`Prediction`,
  :class:`SegmentPrediction` and :class:`PredictionError`;
* :func:`export_model` (``metaser export``) and :func:`run_predict` (``metaser predict``).

Imports are lazy so that ``import metaser.inference`` stays light.
"""

from __future__ import annotations

__all__ = [
    "EmotionRecognizer",
    "RecognizerConfig",
    "Prediction",
    "SegmentPrediction",
    "PredictionError",
    "SegmentConfig",
    "export_model",
    "run_predict",
]

_WHERE = {
    "EmotionRecognizer": "metaser.inference.recognizer",
    "RecognizerConfig": "metaser.inference.recognizer",
    "Prediction": "metaser.inference.recognizer",
    "SegmentPrediction": "metaser.inference.recognizer",
    "PredictionError": "metaser.inference.recognizer",
    "SegmentConfig": "metaser.inference.segment",
    "export_model": "metaser.inference.export",
    "run_predict": "metaser.inference.predict",
}


def __getattr__(name: str):
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'metaser.inference' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
