"""metaser.inference: use a trained model.

* :class:`EmotionRecognizer` (the Python API), its results :class:`Prediction`,
  :class:`SegmentPrediction` and :class:`PredictionError`;
* :func:`export_model` (``metaser export``), :func:`export_onnx` (``metaser export-onnx``),
  :func:`run_predict` (``metaser predict``) and :func:`create_app` (``metaser serve``).

Modules: ``results`` (what a prediction is), ``inputs`` (decoding and checking audio),
``backends`` (torch / onnxruntime forward), ``recognizer`` (the API), ``segment`` (long audio),
``export`` / ``onnx_export`` (model directories), ``predict`` (the CLI command), ``serve``
(the HTTP service and its page).

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
    "export_onnx",
    "run_predict",
    "create_app",
]

_WHERE = {
    "EmotionRecognizer": "metaser.inference.recognizer",
    "RecognizerConfig": "metaser.inference.recognizer",
    "Prediction": "metaser.inference.results",
    "SegmentPrediction": "metaser.inference.results",
    "PredictionError": "metaser.inference.results",
    "SegmentConfig": "metaser.inference.segment",
    "export_model": "metaser.inference.export",
    "export_onnx": "metaser.inference.onnx_export",
    "run_predict": "metaser.inference.predict",
    "create_app": "metaser.inference.serve.app",
}


def __getattr__(name: str):
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'metaser.inference' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
