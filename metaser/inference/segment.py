"""Splitting long recordings into pieces the model can take.

A recording longer than :attr:`SegmentConfig.max_seconds` is cut into speech segments with
silero-vad (its pip package ships the model, no network or torchaudio needed); stretches of
speech still longer than ``max_seconds`` are cut again into fixed overlapping windows. When
silero-vad is unavailable, fails, or finds no speech in a recording that is not silent, the
whole recording is cut into fixed overlapping windows instead (``method="windows"``).

Everything here works on 16 kHz mono float32 arrays and sample offsets.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from metaser.constants import SAMPLE_RATE
from metaser.errors import ConfigError

__all__ = ["SegmentConfig", "Segmentation", "fixed_windows", "vad_spans", "segment_audio"]

log = logging.getLogger(__name__)


@dataclass
class SegmentConfig:
    """How long recordings are split.

    max_seconds: recordings (and VAD segments) longer than this are split.
    method: ``vad`` (silero-vad; fixed windows when it cannot run or finds no speech) or
        ``windows`` (fixed windows only).
    window_seconds / overlap: fixed windows of ``min(window_seconds, max_seconds)`` seconds,
        consecutive windows overlapping by this fraction (0.5 = 50 % hop). The last window
        is aligned to the end of the audio so nothing is left out.
    vad_threshold, min_speech_seconds, min_silence_seconds, speech_pad_seconds: silero-vad's
        ``threshold``, ``min_speech_duration_ms``, ``min_silence_duration_ms`` and
        ``speech_pad_ms`` (in seconds here).
    """

    max_seconds: float = 30.0
    method: Literal["vad", "windows"] = "vad"
    window_seconds: float = 10.0
    overlap: float = 0.5
    vad_threshold: float = 0.5
    min_speech_seconds: float = 0.25
    min_silence_seconds: float = 0.3
    speech_pad_seconds: float = 0.03

    def validate(self) -> SegmentConfig:
        """Raise :class:`ConfigError` naming the first invalid field."""
        if not self.max_seconds > 0:
            raise ConfigError(f"max_seconds must be > 0, got {self.max_seconds}")
        if self.method not in ("vad", "windows"):
            raise ConfigError(f"segment method must be 'vad' or 'windows', got {self.method!r}")
        if not self.window_seconds > 0:
            raise ConfigError(f"window_seconds must be > 0, got {self.window_seconds}")
        if not 0.0 <= self.overlap < 1.0:
            raise ConfigError(f"overlap must be in [0, 1), got {self.overlap}")
        return self


@dataclass
class Segmentation:
    """Pieces of one recording: ``spans`` are (start, end) sample offsets, end exclusive,
    sorted by start; ``method`` is ``"whole"`` (not split), ``"vad"`` or ``"windows"``; ``note`` says why a fallback
    was taken (None otherwise)."""

    spans: list[tuple[int, int]] = field(default_factory=list)
    method: str = "windows"
    note: str | None = None


def fixed_windows(start: int, end: int, window: int, hop: int) -> list[tuple[int, int]]:
    """Overlapping windows of ``window`` samples every ``hop`` samples covering [start, end).

    The last window ends exactly at ``end`` (it may overlap its predecessor more). A stretch
    no longer than ``window`` is one span.
    """
    if window <= 0 or hop <= 0:
        raise ValueError(f"window and hop must be positive, got {window}, {hop}")
    n = end - start
    if n <= window:
        return [(start, end)]
    spans = []
    s = start
    while s + window < end:
        spans.append((s, s + window))
        s += hop
    last = (end - window, end)
    if spans[-1] != last:
        spans.append(last)
    return spans


@functools.lru_cache(maxsize=1)
def _load_vad():
    """The silero-vad JIT model (cached). Raises whatever silero raises when it cannot load."""
    from silero_vad import load_silero_vad

    return load_silero_vad()


def vad_spans(x: np.ndarray, cfg: SegmentConfig, sample_rate: int = SAMPLE_RATE) -> list[tuple[int, int]]:
    """Speech regions of ``x`` (S,) by silero-vad, as (start, end) sample offsets."""
    import torch
    from silero_vad import get_speech_timestamps

    model = _load_vad()
    wav = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))  # (S,) float32 (silero needs it)
    with torch.inference_mode():
        ts = get_speech_timestamps(
            wav,
            model,
            threshold=cfg.vad_threshold,
            sampling_rate=sample_rate,
            min_speech_duration_ms=int(round(cfg.min_speech_seconds * 1000)),
            min_silence_duration_ms=int(round(cfg.min_silence_seconds * 1000)),
            speech_pad_ms=int(round(cfg.speech_pad_seconds * 1000)),
        )
    return [(int(t["start"]), int(t["end"])) for t in ts if int(t["end"]) > int(t["start"])]


def segment_audio(x: np.ndarray, cfg: SegmentConfig, sample_rate: int = SAMPLE_RATE) -> Segmentation:
    """Split ``x`` (S,) into pieces of at most ``cfg.max_seconds`` (see the module docstring).

    A recording no longer than ``max_seconds`` is returned whole as one span.
    """
    cfg.validate()
    n = int(x.shape[0])
    max_len = int(round(cfg.max_seconds * sample_rate))
    window = max(1, int(round(min(cfg.window_seconds, cfg.max_seconds) * sample_rate)))
    hop = max(1, int(round(window * (1.0 - cfg.overlap))))
    if n <= max_len:
        return Segmentation(spans=[(0, n)], method="whole")
    note = None
    if cfg.method == "vad":
        try:
            speech = vad_spans(x, cfg, sample_rate)
        except Exception as e:  # silero missing or broken here: windows still give an answer
            log.warning("silero-vad failed (%s); using fixed windows", e)
            speech, note = None, f"silero-vad unavailable ({type(e).__name__}: {e})"
        if speech:
            spans: list[tuple[int, int]] = []
            for s, e in speech:
                spans.extend(fixed_windows(s, e, window, hop) if e - s > max_len else [(s, e)])
            return Segmentation(spans=spans, method="vad")
        if speech is not None:
            note = "silero-vad found no speech"
    return Segmentation(spans=fixed_windows(0, n, window, hop), method="windows", note=note)
