"""``WS /v1/stream``: live microphone audio in, one prediction per window out.

The protocol (docs/serve.md has the full description and a client):

1. The client's first message is JSON text declaring the PCM it will send:
   ``{"format": "int16" | "float32", "sample_rate": 16000, "window_seconds": 3, "hop_seconds": 1}``
   (``sample_rate``, ``channels`` (1), ``window_seconds`` and ``hop_seconds`` are optional;
   16 kHz mono only). The server answers ``{"type": "ready", ...}`` with the settings it uses.
2. Then binary frames of little-endian PCM, any number of samples per frame.
3. Every ``hop_seconds`` of audio, once ``window_seconds`` have arrived, the window
   ``[start, start + window_seconds)`` goes through the model (the same fair scheduler as the
   uploads) and the server sends ``{"type": "window", "index", "start", "end", "emotion",
   "prob", "probs", "labels", "gender", "style", "transcript", "aux", ...}`` (times in seconds).
   A digitally silent window gets ``{"type": "window", ..., "silent": true, "emotion": null}``.
4. The client sends the text message ``{"type": "end"}``. The server predicts the last window
   (aligned to the end of the audio, as ``predict`` aligns its last fixed window), sends
   ``{"type": "summary", ...}``: the duration-weighted mean over the non-silent windows,
   computed by :meth:`EmotionRecognizer.combine` exactly as ``predict`` combines the fixed
   windows of a long file, with the windows as ``segments``; then closes (1000).

The windows are those of :func:`~metaser.inference.segment.fixed_windows` over the whole
stream (window ``window_seconds``, hop ``hop_seconds``); a stream shorter than one window is
one window of all of it. Anything wrong gets ``{"error", "reason"}`` and a close: reasons
``bad_message`` (not JSON, unknown type or field, bad value; 1003), ``bad_format`` (a format,
rate or channel count other than the above; 1003), ``bad_frame`` (a byte length that is not a
whole number of samples; 1003), ``nonfinite`` (NaN / inf samples; 1003), ``too_long`` (more
than ``max_stream_seconds``; 1009), ``empty`` / ``silent`` (nothing to summarise at the end;
1000), ``timeout`` (nothing received for ``idle_seconds``; 1008), ``busy`` (too many streams or
a full queue; 1013), ``model_error`` (the model's forward failed; 1011), ``internal`` (1011).
A client that closes without ``end`` gets nothing more.
"""

from __future__ import annotations

import asyncio
import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from metaser.constants import SAMPLE_RATE
from metaser.inference.inputs import Loaded
from metaser.inference.serve.middleware import ServeStats, log
from metaser.inference.serve.scheduler import Busy, ModelFailed

__all__ = ["StreamConfig", "StreamError", "StreamWindows", "parse_start", "run_stream"]

FORMATS = {"int16": np.dtype("<i2"), "float32": np.dtype("<f4")}
MAX_WINDOW_SECONDS = 30.0
MIN_HOP_SECONDS = 0.1
MAX_IN_FLIGHT = 4  # windows of one stream in the scheduler at a time (then reading waits: backpressure)
_START_KEYS = {"type", "format", "sample_rate", "channels", "window_seconds", "hop_seconds"}


class StreamError(Exception):
    """Ends a stream with ``{"error": message, "reason": reason}`` and close ``code``."""

    def __init__(self, message: str, reason: str, code: int = 1003):
        super().__init__(message)
        self.message, self.reason, self.code = message, reason, code


@dataclass
class StreamConfig:
    """What the client declared: PCM ``format`` (int16 / float32, 16 kHz mono) and the windows."""

    format: str = "int16"
    window_seconds: float = 3.0
    hop_seconds: float = 1.0

    @property
    def dtype(self) -> np.dtype:
        return FORMATS[self.format]

    def describe(self) -> dict[str, Any]:
        return {
            "type": "ready",
            "format": self.format,
            "sample_rate": SAMPLE_RATE,
            "channels": 1,
            "window_seconds": self.window_seconds,
            "hop_seconds": self.hop_seconds,
        }


def parse_start(text: str | None, min_seconds: float) -> StreamConfig:
    """The first message -> :class:`StreamConfig`, or :class:`StreamError` saying what is wrong.
    ``min_seconds``: the shortest window the model takes (its receptive field)."""
    if text is None:
        raise StreamError('the first message must be JSON text: {"format": "int16" | "float32", ...}', "bad_message")
    try:
        msg = json.loads(text)
    except ValueError:
        raise StreamError("the first message is not JSON", "bad_message") from None
    if not isinstance(msg, dict):
        raise StreamError("the first message must be a JSON object", "bad_message")
    unknown = sorted(set(msg) - _START_KEYS)
    if unknown:
        raise StreamError(f"unknown field(s) in the first message: {', '.join(unknown)}", "bad_message")
    if msg.get("type", "start") != "start":
        raise StreamError(f"the first message must declare the format, not {msg.get('type')!r}", "bad_message")
    fmt = msg.get("format")
    if fmt not in FORMATS:
        raise StreamError(f"format must be 'int16' or 'float32', got {fmt!r}", "bad_format")
    if msg.get("sample_rate", SAMPLE_RATE) != SAMPLE_RATE:
        raise StreamError(
            f"sample_rate must be {SAMPLE_RATE} (resample first), got {msg['sample_rate']!r}", "bad_format"
        )
    if msg.get("channels", 1) != 1:
        raise StreamError(f"channels must be 1 (mono; mix down first), got {msg['channels']!r}", "bad_format")
    window = _number(msg, "window_seconds", 3.0)
    hop = _number(msg, "hop_seconds", 1.0)
    if not min_seconds <= window <= MAX_WINDOW_SECONDS:
        raise StreamError(
            f"window_seconds must be in [{min_seconds:.3f}, {MAX_WINDOW_SECONDS:g}], got {window:g}", "bad_message"
        )
    if not MIN_HOP_SECONDS <= hop <= window:
        raise StreamError(
            f"hop_seconds must be in [{MIN_HOP_SECONDS:g}, window_seconds = {window:g}], got {hop:g}", "bad_message"
        )
    return StreamConfig(format=fmt, window_seconds=window, hop_seconds=hop)


def _number(msg: dict, key: str, default: float) -> float:
    v = msg.get(key, default)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise StreamError(f"{key} must be a number, got {v!r}", "bad_message")
    return float(v)


def decode_frame(data: bytes, dtype: np.dtype) -> np.ndarray:
    """A binary frame -> (S,) float32 in [-1, 1]; :class:`StreamError` for a partial sample or NaN."""
    if len(data) % dtype.itemsize:
        raise StreamError(
            f"a binary frame of {len(data)} bytes is not a whole number of {dtype.itemsize}-byte samples",
            "bad_frame",
        )
    x = np.frombuffer(data, dtype=dtype)  # (S,)
    if dtype.kind == "i":
        return x.astype(np.float32) / 32768.0
    if not np.isfinite(x).all():
        raise StreamError("a frame holds NaN or infinite samples", "nonfinite")
    return x.astype(np.float32)


class StreamWindows:
    """Cuts a stream into the windows of ``fixed_windows(0, n, window, hop)`` as samples arrive,
    keeping only the samples later windows still need."""

    def __init__(self, window: int, hop: int):
        self.window, self.hop = window, hop
        self.total = 0  # samples received
        self.next_start = 0
        self.emitted = 0
        self.last_end = 0
        self._buf = np.zeros(0, dtype=np.float32)  # samples [total - len(_buf), total)

    @property
    def buffered(self) -> int:
        """Samples held (at most a window plus the last frame)."""
        return int(self._buf.shape[0])

    def push(self, x: np.ndarray) -> list[tuple[int, np.ndarray]]:
        """Add samples; returns the windows they complete as ``(start_sample, (W,) samples)``."""
        self._buf = np.concatenate([self._buf, x])
        self.total += x.shape[0]
        out = []
        while self.next_start + self.window <= self.total:
            out.append((self.next_start, self._slice(self.next_start, self.next_start + self.window)))
            self.last_end = self.next_start + self.window
            self.next_start += self.hop
            self.emitted += 1
        keep_from = min(self.next_start, self.total - self.window)  # the tail window needs the last W
        drop = keep_from - (self.total - self._buf.shape[0])
        if drop > 0:
            self._buf = self._buf[drop:].copy()
        return out

    def finish(self) -> list[tuple[int, np.ndarray]]:
        """The window that covers the end: all of a stream shorter than a window, or the last
        ``window`` samples when the end is past the last window (as ``fixed_windows`` does)."""
        if self.total == 0:
            return []
        if self.emitted == 0:
            return [(0, self._slice(0, self.total))]
        if self.last_end < self.total:
            s = self.total - self.window
            return [(s, self._slice(s, self.total))]
        return []

    def _slice(self, s: int, e: int) -> np.ndarray:
        off = self.total - self._buf.shape[0]
        return self._buf[s - off : e - off].copy()


@dataclass
class _Window:
    index: int
    start: int  # samples
    end: int
    future: asyncio.Future | None  # None: silent, not predicted


def window_message(rec, w: _Window, out: dict[str, Any] | None) -> dict[str, Any]:
    """The ``window`` message of one window from its piece output (None: silent)."""
    head = {"type": "window", "index": w.index, "start": w.start / SAMPLE_RATE, "end": w.end / SAMPLE_RATE}
    if out is None:
        return {**head, "silent": True, "emotion": None}
    n = w.end - w.start
    pred = rec.combine(_placeholder(n, [(0, n)], "whole"), [(0, n)], [out])
    d = pred.to_dict()
    for k in ("path", "segments", "duration"):
        d.pop(k, None)
    return {**head, **d, "labels": pred.labels()}


def summary_message(rec, total: int, spans: list[tuple[int, int]], outs: list[dict[str, Any]], silent: int):
    """The ``summary``: the windows combined as ``predict`` combines a long file's windows."""
    pred = rec.combine(_placeholder(total, spans, "windows"), spans, outs)
    d = pred.to_dict()
    d.pop("path", None)
    return {"type": "summary", **d, "labels": pred.labels(), "windows": len(spans), "silent_windows": silent}


def _placeholder(n: int, spans, method: str) -> Loaded:
    """A :class:`Loaded` of ``n`` samples for ``combine``, which reads only the length: the
    stream's audio is not kept (a zero-stride view, no memory)."""
    return Loaded(path=None, x=np.broadcast_to(np.zeros(1, np.float32), (n,)), spans=spans, method=method)


@dataclass
class StreamContext:
    """What a stream needs from the app."""

    recognizer: Any
    scheduler: Any
    stats: ServeStats
    max_stream_seconds: float = 3600.0
    idle_seconds: float = 30.0
    max_streams: int = 16


async def run_stream(ws, ctx: StreamContext) -> None:
    """Serve one ``WS /v1/stream`` connection (see the module docstring)."""
    from starlette.websockets import WebSocketDisconnect

    await ws.accept()
    ctx.stats.count(streams_opened=1, streams_active=1)
    session = _Session(ws, ctx)
    try:
        if ctx.stats.streams_active > ctx.max_streams:
            raise StreamError(f"more than {ctx.max_streams} streams are open; retry later", "busy", 1013)
        await session.run()
    except StreamError as e:
        ctx.stats.error(e.reason)
        log.info("stream ended: %s (%s)", e.reason, e.message)
        await session.close(e.code, {"error": e.message, "reason": e.reason})
    except WebSocketDisconnect:
        ctx.stats.count(disconnects=1)
        log.info("client disconnected: stream after %.1f s of audio", session.seconds)
    finally:
        session.cancel()
        ctx.stats.count(streams_active=-1)


class _Session:
    def __init__(self, ws, ctx: StreamContext):
        self.ws, self.ctx = ws, ctx
        self.rec = ctx.recognizer
        self.windows: StreamWindows | None = None
        self.dtype = FORMATS["int16"]
        self.queue: asyncio.Queue[_Window | None] = asyncio.Queue(MAX_IN_FLIGHT)
        self.sender: asyncio.Task | None = None
        self.spans: list[tuple[int, int]] = []
        self.outs: list[dict[str, Any]] = []
        self.silent = 0
        self.index = 0
        self.closed = False
        self.failure: StreamError | None = None

    @property
    def seconds(self) -> float:
        return 0.0 if self.windows is None else self.windows.total / SAMPLE_RATE

    async def run(self) -> None:
        first = await self._receive()
        cfg = parse_start(first.get("text"), self.rec.min_samples / SAMPLE_RATE)
        self.dtype = cfg.dtype
        self.windows = StreamWindows(
            int(round(cfg.window_seconds * SAMPLE_RATE)), max(1, int(round(cfg.hop_seconds * SAMPLE_RATE)))
        )
        await self.ws.send_json(cfg.describe())
        self.sender = asyncio.create_task(self._send_windows())
        limit = int(self.ctx.max_stream_seconds * SAMPLE_RATE)
        while True:
            msg = await self._receive()
            if msg.get("bytes") is not None:
                x = decode_frame(msg["bytes"], self.dtype)
                if self.windows.total + x.shape[0] > limit:
                    raise StreamError(
                        f"the stream is longer than the limit of {self.ctx.max_stream_seconds:g} s", "too_long", 1009
                    )
                for start, w in self.windows.push(x):
                    await self._submit(start, w)
                continue
            text = msg.get("text")
            try:
                end = json.loads(text) == {"type": "end"}
            except (TypeError, ValueError):
                end = False
            if not end:
                raise StreamError('expected binary PCM frames or the text message {"type": "end"}', "bad_message")
            break
        for start, w in self.windows.finish():
            if w.shape[0] >= self.rec.min_samples:
                await self._submit(start, w)
        await self._put(None)
        await self.sender  # all windows sent (or a failure recorded)
        if self.failure is not None:
            raise self.failure
        if not self.spans:
            reason = "silent" if self.silent else "empty"
            raise StreamError(f"no audio to summarise ({self.silent} silent window(s))", reason, 1000)
        summary = summary_message(self.rec, self.windows.total, self.spans, self.outs, self.silent)
        await self.close(1000, summary)

    async def _receive(self) -> dict:
        from starlette.websockets import WebSocketDisconnect

        try:
            msg = await asyncio.wait_for(self.ws.receive(), self.ctx.idle_seconds)
        except asyncio.TimeoutError:
            raise StreamError(f"nothing received for {self.ctx.idle_seconds:g} s", "timeout", 1008) from None
        if self.failure is not None:  # the model failed on an earlier window (the sender closed)
            raise self.failure
        if msg["type"] == "websocket.disconnect":
            raise WebSocketDisconnect(msg.get("code", 1000))
        return msg

    async def _submit(self, start: int, w: np.ndarray) -> None:
        rms = float(np.sqrt(np.mean(np.square(w, dtype=np.float64))))
        fut = None
        if rms >= self.rec.config.silence_rms:
            try:
                fut = asyncio.wrap_future(self.ctx.scheduler.submit_pieces([w]))
            except Busy as e:
                raise StreamError(f"the server is busy ({e}); retry later", "busy", 1013) from None
        await self._put(_Window(self.index, start, start + w.shape[0], fut))
        self.index += 1

    async def _put(self, item: _Window | None) -> None:
        """Queue a window for the sender; waits while ``MAX_IN_FLIGHT`` are queued (backpressure:
        the client's frames wait in TCP), and gives up if the sender stopped."""
        put = asyncio.ensure_future(self.queue.put(item))
        done, _ = await asyncio.wait({put, self.sender}, return_when=asyncio.FIRST_COMPLETED)
        if put not in done:
            put.cancel()
            if isinstance(item, _Window) and item.future is not None:
                item.future.cancel()
            raise self.failure or StreamError("the stream's sender stopped", "internal", 1011)

    async def _send_windows(self) -> None:
        """Sends the windows' messages in order as their predictions finish."""
        while True:
            w = await self.queue.get()
            if w is None:
                return
            out = None
            if w.future is not None:
                try:
                    out = (await w.future)[0]
                except Exception as e:  # end the stream with the reason
                    reason = "model_error" if isinstance(e, ModelFailed) else "internal"
                    if reason == "internal":
                        log.exception("prediction failed in a stream")
                    msg = f"the model failed on this input ({e})" if reason == "model_error" else "internal error"
                    self.failure = StreamError(msg, reason, 1011)
                    await self.close(1011, {"error": self.failure.message, "reason": reason})
                    return
                self.spans.append((w.start, w.end))
                self.outs.append(out)
            else:
                self.silent += 1
            self.ctx.stats.count(windows=1)
            if not self.closed:
                await self.ws.send_json(window_message(self.rec, w, out))

    async def close(self, code: int, message: dict | None) -> None:
        """Send ``message`` (if the socket is still open) and close with ``code``, once."""
        if self.closed:
            return
        self.closed = True
        try:
            if message is not None:
                await self.ws.send_json(message)
            await self.ws.close(code)
        except Exception:  # the client is gone already: nothing to tell it
            pass

    def cancel(self) -> None:
        """Stop the sender and drop the windows still queued (their pieces leave the scheduler)."""
        if self.sender is not None:
            if not self.sender.done():
                self.sender.cancel()
            elif not self.sender.cancelled():
                self.sender.exception()  # retrieved: a send to a gone client is not an error here
        while not self.queue.empty():
            w = self.queue.get_nowait()
            if w is not None and w.future is not None:
                w.future.cancel()
