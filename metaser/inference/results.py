"""What :class:`~metaser.inference.recognizer.EmotionRecognizer` returns: one
:class:`Prediction` (with its :class:`SegmentPrediction` timeline) or one
:class:`PredictionError` per input. ``to_dict`` gives the JSON of ``metaser predict --format json``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["SegmentPrediction", "Prediction", "PredictionError"]


def _r(p: float) -> float:
    return round(float(p), 6)


@dataclass
class SegmentPrediction:
    """One piece of a split recording: [start, end) in seconds, its emotion and probabilities
    (None and {} for a model whose main task is a regression), its regression values."""

    start: float
    end: float
    emotion: str | None
    probs: dict[str, float]
    transcript: str | None = None
    values: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "start": round(self.start, 3),
            "end": round(self.end, 3),
            "emotion": self.emotion,
            "probs": {k: _r(v) for k, v in self.probs.items()},
        }
        if self.transcript is not None:
            d["transcript"] = self.transcript
        if self.values:
            d["values"] = {k: _r(v) for k, v in self.values.items()}
        return d


@dataclass
class Prediction:
    """The result for one input.

    probs: emotion class -> probability. A model whose main task is a regression (``main_task:
    arousal``, ...) has no emotion output: ``emotion`` and ``prob`` are then None and ``probs``
    is empty. gender / style (+ their probabilities) are None when the model has no such task;
    ``aux`` holds every other classification task as ``name -> (label, prob)``; ``values`` holds
    every regression head as ``task -> value`` (the aux heads and a regression main task;
    duration-weighted over the pieces of a long file); ``transcript`` comes from the CTC (ASR)
    head, if any (greedy decoding; overlapping windows are stitched so overlapped speech appears
    once). duration: seconds of audio. segments: the timeline of a split recording (else empty);
    ``segmentation`` is then ``"vad"`` or ``"windows"``.
    """

    path: str | None
    emotion: str | None
    probs: dict[str, float]
    gender: str | None = None
    gender_prob: float | None = None
    style: str | None = None
    style_prob: float | None = None
    transcript: str | None = None
    aux: dict[str, tuple[str, float]] = field(default_factory=dict)
    duration: float = 0.0
    segments: list[SegmentPrediction] = field(default_factory=list)
    segmentation: str | None = None
    values: dict[str, float] = field(default_factory=dict)

    ok = True  # class attribute: ``r.ok`` tells results from errors

    @property
    def prob(self) -> float | None:
        """Probability of the predicted emotion (None without an emotion output)."""
        return None if self.emotion is None else self.probs[self.emotion]

    def labels(self) -> list[dict[str, Any]]:
        """``[{"label", "score"}, ...]`` sorted by score, highest first (as transformers'
        audio-classification pipeline returns them)."""
        return [{"label": k, "score": _r(v)} for k, v in sorted(self.probs.items(), key=lambda kv: -kv[1])]

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "path": self.path,
            "emotion": self.emotion,
            "prob": None if self.prob is None else _r(self.prob),
            "probs": {k: _r(v) for k, v in self.probs.items()},
            "gender": self.gender,
            "gender_prob": None if self.gender_prob is None else _r(self.gender_prob),
            "style": self.style,
            "style_prob": None if self.style_prob is None else _r(self.style_prob),
            "transcript": self.transcript,
            "aux": {k: {"label": lab, "prob": _r(p)} for k, (lab, p) in self.aux.items()},
            "values": {k: _r(v) for k, v in self.values.items()},
            "duration": round(self.duration, 3),
            "segments": [s.to_dict() for s in self.segments],
        }
        if self.segmentation is not None:
            d["segmentation"] = self.segmentation
        return d


@dataclass
class PredictionError:
    """An input that got no prediction: ``error`` is the message, ``reason`` a short code
    (``missing``, ``empty``, ``unreadable``, ``corrupt``, ``nonfinite``, ``too_short``,
    ``silent``, ``invalid``, ``no_audio``)."""

    path: str | None
    error: str
    reason: str = "error"

    ok = False

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "error": self.error, "reason": self.reason}
