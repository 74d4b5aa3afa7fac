"""metaser: metadata-enhanced speech emotion recognition.

ARI layer fusion, auxiliary metadata tasks and co-attention in two-stage fine-tuning
(after Wan, Qiu, Liu, Zhang, arXiv 2412.20707).
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "EmotionRecognizer"]


def __getattr__(name: str):
    # Lazy: `import metaser` stays light (no torch / transformers) for the CLI's --help.
    if name == "EmotionRecognizer":
        from metaser.inference.recognizer import EmotionRecognizer

        return EmotionRecognizer
    raise AttributeError(f"module 'metaser' has no attribute {name!r}")
