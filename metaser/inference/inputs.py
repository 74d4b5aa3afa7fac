"""Inputs of the recognizer: decode files, bytes and arrays to 16 kHz mono float32, check them,
and split long ones into pieces.

Files are anything soundfile reads (see :func:`metaser.data.audio.load_audio`); arrays are numpy
or torch, float or integer PCM, shaped (S,), (C, S) or (S, C) (the smaller axis being the
channels, at most :data:`MAX_CHANNELS`), optionally with their sample rate.

Bad inputs raise :class:`~metaser.data.audio.AudioError` (reasons ``missing``, ``empty``,
``unreadable``, ``corrupt``, ``nonfinite``) or :class:`InputError` (reasons in
:data:`INPUT_ERROR_REASONS`).
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from metaser.constants import SAMPLE_RATE
from metaser.data.audio import check_finite, load_audio, resample
from metaser.errors import DataError
from metaser.inference.segment import SegmentConfig, fixed_windows, segment_audio

__all__ = [
    "InputError",
    "INPUT_ERROR_REASONS",
    "MAX_CHANNELS",
    "AudioInput",
    "Loaded",
    "InputChecks",
    "to_mono",
    "as_float_array",
    "array_to_mono",
    "load_input",
    "check_audio",
    "load_bytes",
]

MAX_CHANNELS = 64  # a 2-D array whose both axes exceed this is ambiguous

#: Reasons of :class:`InputError` (besides :data:`metaser.data.audio.AUDIO_ERROR_REASONS`).
INPUT_ERROR_REASONS = ("empty", "too_short", "too_long", "silent", "invalid", "no_audio")

#: A path, an array (numpy / torch, (S,), (C, S) or (S, C)) at 16 kHz, or (array, sample_rate).
AudioInput = Any


class InputError(DataError):
    """An input the model cannot take; ``reason`` is one of :data:`INPUT_ERROR_REASONS`."""

    def __init__(self, message: str, *, reason: str, path: str | None = None, hint: str | None = None):
        super().__init__(message, hint=hint)
        if reason not in INPUT_ERROR_REASONS:
            raise ValueError(f"unknown InputError reason {reason!r}")
        self.reason = reason
        self.path = path


@dataclass
class Loaded:
    """One usable input: (S,) float32 samples at 16 kHz and the pieces the model sees."""

    path: str | None
    x: np.ndarray  # (S,) float32, 16 kHz
    spans: list[tuple[int, int]]  # [start, end) sample offsets of the pieces
    method: str  # "whole", "vad" or "windows"


@dataclass
class InputChecks:
    """What makes an input usable: at least ``min_samples`` samples (the encoder's receptive
    field), RMS at least ``silence_rms``, at most ``max_samples`` (None: no limit); pieces by
    ``segment``, none longer than ``max_piece_samples`` (the encoder's memory bound: longer
    spans are cut into overlapping windows of that length, whatever ``segment.max_seconds``)."""

    min_samples: int
    silence_rms: float
    segment: SegmentConfig
    max_samples: int | None = None
    max_piece_samples: int | None = None


def to_mono(x: np.ndarray, name: str) -> np.ndarray:
    """(S,), (C, S) or (S, C) -> (S,) float32 by the mean over channels (smaller axis = channels)."""
    if x.ndim == 1:
        return x
    if x.ndim != 2:
        raise InputError(f"{name}: expected an array of shape (S,), (C, S) or (S, C), got {x.shape}", reason="invalid")
    a, b = x.shape
    if min(a, b) > MAX_CHANNELS:
        raise InputError(
            f"{name}: cannot tell channels from samples in an array of shape {x.shape} "
            f"(neither axis has <= {MAX_CHANNELS} entries)",
            reason="invalid",
            hint="pass a 1-D array, or (C, S) / (S, C) with few channels",
        )
    axis = 0 if a <= b else 1  # (C, S) when C <= S, else (S, C)
    return x.mean(axis=axis) if x.shape[axis] > 1 else x.reshape(-1)


def as_float_array(x: Any, name: str) -> np.ndarray:
    """numpy / torch / list -> float array; integer PCM is scaled to [-1, 1)."""
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # torch.Tensor without importing torch
        t = x.detach().cpu()
        try:
            x = t.numpy()  # keeps the dtype (integer PCM is scaled below)
        except TypeError:  # bfloat16 and other dtypes numpy lacks
            x = t.float().numpy()
    x = np.asarray(x)
    if x.dtype.kind in "iu":  # PCM: int16 / 32768, uint8 (offset binary) (x - 128) / 128, ...
        half = float(2 ** (8 * x.dtype.itemsize - 1))
        offset = half if x.dtype.kind == "u" else 0.0
        return ((x.astype(np.float64) - offset) / half).astype(np.float32)
    if x.dtype.kind != "f":
        raise InputError(f"{name}: audio must be a float or integer array, got dtype {x.dtype}", reason="invalid")
    return x


def array_to_mono(x: Any, sample_rate: int | None, name: str) -> np.ndarray:
    """An array at ``sample_rate`` (None: already 16 kHz) -> (S,) float32 at 16 kHz."""
    x = to_mono(as_float_array(x, name), name)  # (S,)
    if x.size == 0:
        raise InputError(f"{name}: the audio array is empty", reason="empty")
    sr = SAMPLE_RATE if sample_rate is None else sample_rate
    if not isinstance(sr, (int, np.integer)) or isinstance(sr, bool) or sr <= 0:
        raise InputError(f"{name}: sample_rate must be a positive integer, got {sample_rate!r}", reason="invalid")
    check_finite(x, name=name)  # before resampling spreads NaN around
    if sr != SAMPLE_RATE:
        x = resample(x, int(sr), SAMPLE_RATE)
    return np.ascontiguousarray(x, dtype=np.float32)


def check_audio(x: np.ndarray, name: str, path: str | None, checks: InputChecks) -> Loaded:
    """Reject unusable audio (empty, NaN / inf, too short, too long, silent), then split it."""
    if x.size == 0:
        raise InputError(f"{name}: no audio samples", reason="empty", path=path)
    check_finite(x, name=name)  # AudioError reason "nonfinite"
    sr = SAMPLE_RATE
    if x.size < checks.min_samples:
        raise InputError(
            f"{name}: audio too short ({x.size} samples = {1000 * x.size / sr:.1f} ms at "
            f"{sr} Hz); the model needs at least {checks.min_samples} samples "
            f"({1000 * checks.min_samples / sr:.0f} ms)",
            reason="too_short",
            path=path,
        )
    if checks.max_samples is not None and x.size > checks.max_samples:
        raise InputError(
            f"{name}: audio too long ({x.size / sr:.1f} s); the limit is {checks.max_samples / sr:.0f} s",
            reason="too_long",
            path=path,
        )
    rms = float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))
    if rms < checks.silence_rms:
        level = "all zeros" if rms == 0.0 else f"RMS {rms:.2e} < {checks.silence_rms:.0e}"
        raise InputError(f"{name}: audio is silent ({level})", reason="silent", path=path)
    seg = segment_audio(x, checks.segment, sr)
    spans = [(s, e) for s, e in seg.spans if e - s >= checks.min_samples]
    if not spans:  # every VAD region shorter than the receptive field: use the whole thing
        seg = segment_audio(x, replace(checks.segment, method="windows"), sr)
        spans = seg.spans
    if checks.max_piece_samples is not None:
        window = checks.max_piece_samples
        hop = max(1, int(round(window * (1.0 - checks.segment.overlap))))
        spans = [w for s, e in spans for w in (fixed_windows(s, e, window, hop) if e - s > window else [(s, e)])]
    return Loaded(path=path, x=x, spans=spans, method=seg.method)


def load_input(item: AudioInput, index: int, checks: InputChecks) -> Loaded:
    """Decode / convert one input (path, array or ``(array, sample_rate)``) and check it."""
    if isinstance(item, (str, Path)):
        name = str(item)
        x = load_audio(item, SAMPLE_RATE)  # AudioError: missing/empty/unreadable/corrupt
        path: str | None = name
    else:
        sr = None
        if isinstance(item, tuple):
            if len(item) != 2:
                raise InputError(f"input {index}: a tuple must be (array, sample_rate)", reason="invalid")
            item, sr = item
        name = f"input {index}"
        path = None
        x = array_to_mono(item, sr, name)
    return check_audio(x, name, path, checks)


def load_bytes(data: bytes, name: str, suffix: str = "", max_seconds: float | None = None) -> np.ndarray:
    """Decode an uploaded file's bytes to (S,) float32 at 16 kHz (through a temporary file, so
    the same header checks as for files on disk apply: truncated WAVs are ``corrupt``).

    A file whose header says it is longer than ``max_seconds`` is refused (reason ``too_long``)
    before it is decoded. Errors name ``name``, not the temporary path.
    """
    from metaser.data.audio import AudioError, probe_audio

    if not data:
        raise AudioError(f"{name}: the upload is empty (0 bytes)", reason="empty", path=name)
    fd, tmp = tempfile.mkstemp(suffix=suffix if suffix.startswith(".") and len(suffix) <= 8 else "")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        try:
            if max_seconds is not None:
                info = probe_audio(tmp)
                if info.duration > max_seconds:
                    raise InputError(
                        f"{name}: audio too long ({info.duration:.1f} s); the limit is {max_seconds:g} s",
                        reason="too_long",
                        path=name,
                    )
            return load_audio(tmp, SAMPLE_RATE)
        except AudioError as e:
            raise AudioError(e.message.replace(tmp, name), reason=e.reason, path=name, hint=e.hint) from None
    finally:
        os.unlink(tmp)
