"""Audio file probing and loading: any format soundfile reads, any rate, mixed down to mono.

Two entry points:

* :func:`probe_audio` reads only the header (plus a few frames at the very end to catch
  truncated files) and is what corpus recipes call for every file: it is cheap enough for
  tens of thousands of files.
* :func:`load_audio` decodes a whole file into a 1-D float32 array at the requested rate,
  averaging all channels. Inference uses it for arbitrary user files.

Both raise :class:`AudioError` (a :class:`~metaser.errors.DataError`) whose ``reason`` is
one of :data:`AUDIO_ERROR_REASONS`, so callers can count problems by kind.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from math import gcd
from pathlib import Path

import numpy as np
import soundfile as sf

from metaser.constants import SAMPLE_RATE
from metaser.errors import DataError

__all__ = [
    "AUDIO_ERROR_REASONS",
    "AudioError",
    "AudioInfo",
    "probe_audio",
    "load_audio",
    "resample",
    "check_finite",
]

# missing: no such file; empty: 0 bytes or 0 frames; unreadable: not an audio file soundfile
# can open (or no permission); corrupt: the header promises more audio than the file holds;
# nonfinite: decoded samples contain NaN or inf (only from check_finite).
AUDIO_ERROR_REASONS = ("missing", "empty", "unreadable", "corrupt", "nonfinite")

_TAIL_FRAMES = 64  # frames read at the end of a file to prove it is not truncated


class AudioError(DataError):
    """An audio file that cannot be used; ``reason`` is one of :data:`AUDIO_ERROR_REASONS`."""

    def __init__(self, message: str, *, reason: str, path: str | Path | None = None, hint: str | None = None):
        super().__init__(message, hint=hint)
        if reason not in AUDIO_ERROR_REASONS:
            raise ValueError(f"unknown AudioError reason {reason!r}")
        self.reason = reason
        self.path = None if path is None else str(path)


@dataclass(frozen=True)
class AudioInfo:
    """Header facts of an audio file (the attributes of ``soundfile.info`` that we use)."""

    path: str
    samplerate: int
    channels: int
    frames: int
    format: str = ""
    subtype: str = ""

    @property
    def duration(self) -> float:
        """Seconds of audio."""
        return self.frames / self.samplerate


def _wav_declared_frames(path: Path, file_size: int) -> int | None:
    """Frames a RIFF/WAVE header declares in its ``data`` chunk, or None if not knowable.

    libsndfile silently shortens a truncated WAV to what is on disk, so the header has to be
    read by hand to notice the truncation. Streaming writers put 0 or 0xFFFFFFFF in the size
    fields; those (and RF64 / W64 / anything non-RIFF) give None.
    """
    try:
        with open(path, "rb") as f:
            head = f.read(12)
            if len(head) < 12 or head[:4] not in (b"RIFF", b"RIFX") or head[8:12] != b"WAVE":
                return None
            endian = "<" if head[:4] == b"RIFF" else ">"
            block_align = None
            pos = 12
            while pos + 8 <= file_size:
                f.seek(pos)
                chunk = f.read(8)
                if len(chunk) < 8:
                    return None
                cid, size = chunk[:4], struct.unpack(endian + "I", chunk[4:])[0]
                if cid == b"fmt ":
                    fmt = f.read(min(size, 16))
                    if len(fmt) < 14:
                        return None
                    block_align = struct.unpack(endian + "H", fmt[12:14])[0]
                elif cid == b"data":
                    if size in (0, 0xFFFFFFFF) or not block_align:
                        return None
                    return size // block_align
                pos += 8 + size + (size & 1)  # chunks are word aligned
    except OSError:
        return None
    return None


def probe_audio(path: str | Path) -> AudioInfo:
    """Read the header of ``path`` and check the file is complete, without decoding it.

    Raises :class:`AudioError` with reason ``missing``, ``empty``, ``unreadable`` or
    ``corrupt`` (truncated: fewer frames on disk than the header declares, or the last
    frames cannot be read).
    """
    p = Path(path)
    if not p.exists():
        raise AudioError(f"audio file not found: {p}", reason="missing", path=p)
    if not p.is_file():
        raise AudioError(f"not a regular file: {p}", reason="unreadable", path=p)
    try:
        size = p.stat().st_size
    except OSError as e:
        raise AudioError(f"cannot stat audio file {p}: {e}", reason="unreadable", path=p) from None
    if size == 0:
        raise AudioError(f"audio file is empty (0 bytes): {p}", reason="empty", path=p)
    if not os.access(p, os.R_OK):  # libsndfile would only say "System error."
        raise AudioError(f"permission denied: {p}", reason="unreadable", path=p)
    try:
        f = sf.SoundFile(str(p))
    except PermissionError:
        raise AudioError(f"permission denied: {p}", reason="unreadable", path=p) from None
    except (sf.LibsndfileError, RuntimeError, OSError, TypeError) as e:
        raise AudioError(f"cannot read audio file {p}: {e}", reason="unreadable", path=p) from None
    with f:
        info = AudioInfo(
            path=os.path.abspath(p),
            samplerate=int(f.samplerate),
            channels=int(f.channels),
            frames=int(f.frames),
            format=str(f.format),
            subtype=str(f.subtype),
        )
        if info.samplerate <= 0 or info.channels <= 0:
            raise AudioError(
                f"audio file has an invalid header ({info.samplerate} Hz, {info.channels} channels): {p}",
                reason="unreadable",
                path=p,
            )
        if info.frames <= 0:
            raise AudioError(f"audio file holds no samples: {p}", reason="empty", path=p)
        declared = _wav_declared_frames(p, size) if info.format in ("WAV", "WAVEX") else None
        if declared is not None and declared > info.frames:
            raise AudioError(
                f"audio file is truncated: header declares {declared} frames, only {info.frames} are on disk: {p}",
                reason="corrupt",
                path=p,
            )
        # Cheap proof that the end of the data is decodable (catches truncated FLAC/OGG...).
        want = min(_TAIL_FRAMES, info.frames)
        try:
            f.seek(info.frames - want)
            tail = f.read(want, dtype="float32", always_2d=True)
        except (sf.LibsndfileError, RuntimeError, OSError, ValueError) as e:
            raise AudioError(
                f"audio file is corrupt (cannot read its last frames: {e}): {p}", reason="corrupt", path=p
            ) from None
        if tail.shape[0] != want:
            raise AudioError(
                f"audio file is truncated: header declares {info.frames} frames, "
                f"the last {want - tail.shape[0]} cannot be read: {p}",
                reason="corrupt",
                path=p,
            )
    return info


def resample(x: np.ndarray, orig_sr: int, new_sr: int) -> np.ndarray:
    """Polyphase resampling along the last axis (``scipy.signal.resample_poly``).

    x: (..., S) float -> (..., S * new_sr / orig_sr) float32
    """
    if orig_sr <= 0 or new_sr <= 0:
        raise ValueError(f"sample rates must be positive, got {orig_sr} -> {new_sr}")
    if orig_sr == new_sr:
        return np.asarray(x, dtype=np.float32)
    from scipy.signal import resample_poly

    g = gcd(int(orig_sr), int(new_sr))
    y = resample_poly(x, int(new_sr) // g, int(orig_sr) // g, axis=-1)
    return np.asarray(y, dtype=np.float32)


def load_audio(path: str | Path, sample_rate: int | None = SAMPLE_RATE) -> np.ndarray:
    """Decode ``path`` into mono float32 samples at ``sample_rate`` (None keeps the file's rate).

    Multi-channel audio is mixed down by the mean over channels. Returns (S,) float32.
    NaN / inf samples are returned as they are: call :func:`check_finite` to reject them.
    """
    info = probe_audio(path)
    try:
        data, sr = sf.read(info.path, dtype="float32", always_2d=True)  # (S, C)
    except (sf.LibsndfileError, RuntimeError, OSError, ValueError) as e:
        raise AudioError(f"cannot decode audio file {path}: {e}", reason="corrupt", path=path) from None
    if data.shape[0] != info.frames:
        raise AudioError(
            f"audio file is truncated: header declares {info.frames} frames, decoded {data.shape[0]}: {path}",
            reason="corrupt",
            path=path,
        )
    x = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]  # (S,)
    if sample_rate is not None and sample_rate != sr:
        x = resample(x, sr, sample_rate)
    return np.ascontiguousarray(x, dtype=np.float32)


def check_finite(x: np.ndarray, *, name: str | Path | None = None) -> np.ndarray:
    """Return ``x`` unchanged, or raise :class:`AudioError` (reason ``nonfinite``) if any
    sample is NaN or +-inf. ``name`` (a path or utterance id) goes into the message."""
    bad = ~np.isfinite(x)
    if bad.any():
        n = int(bad.sum())
        where = f" in {name}" if name is not None else ""
        raise AudioError(f"{n} of {x.size} audio samples are NaN or inf{where}", reason="nonfinite", path=name)
    return x
