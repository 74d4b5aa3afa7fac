"""``WS /v1/stream``: live PCM in, one prediction per window, a summary at the end."""

from __future__ import annotations

import json
import logging
import math

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

from fastapi.testclient import TestClient  # noqa: E402
from starlette.websockets import WebSocketDisconnect  # noqa: E402

from metaser.inference.recognizer import EmotionRecognizer, RecognizerConfig  # noqa: E402
from metaser.inference.segment import SegmentConfig, fixed_windows  # noqa: E402
from metaser.inference.serve.app import ServeConfig, create_app  # noqa: E402
from metaser.inference.serve.stream import StreamError, StreamWindows, parse_start  # noqa: E402
from tests.inference.helpers import babble, silence, tone  # noqa: E402

SR = 16000


@pytest.fixture(scope="module")
def app(recognizer):
    return create_app(recognizer, ServeConfig(idle_seconds=5.0))


def _pcm(x: np.ndarray, fmt: str) -> bytes:
    if fmt == "int16":
        return np.clip(np.round(x * 32768), -32768, 32767).astype("<i2").tobytes()
    return x.astype("<f4").tobytes()


def _as_received(x: np.ndarray, fmt: str) -> np.ndarray:
    """The samples the server decodes from ``_pcm(x, fmt)``."""
    return np.frombuffer(_pcm(x, fmt), dtype="<i2").astype(np.float32) / 32768 if fmt == "int16" else x


def _stream(c, x: np.ndarray, start: dict, frame: int = 4096, end: bool = True) -> list[dict]:
    """Stream ``x`` in frames of ``frame`` samples; all messages until the server closes."""
    msgs = []
    with c.websocket_connect("/v1/stream") as ws:
        ws.send_text(json.dumps(start))
        ready = ws.receive_json()
        assert ready["type"] == "ready", ready
        data = _pcm(x, start["format"])
        step = frame * np.dtype("<i2" if start["format"] == "int16" else "<f4").itemsize
        for i in range(0, len(data), step):
            ws.send_bytes(data[i : i + step])
        if end:
            ws.send_text(json.dumps({"type": "end"}))
        try:
            while True:
                msgs.append(ws.receive_json())
        except WebSocketDisconnect as e:
            msgs.append({"closed": e.code})
    return msgs


@pytest.mark.parametrize("fmt", ["int16", "float32"])
def test_windows_and_summary_are_predicts_answers(app, recognizer, fmt):
    x = np.concatenate([babble(3.5, seed=11), tone(2.2, seed=12)])  # 5.7 s
    with TestClient(app) as c:
        msgs = _stream(c, x, {"format": fmt, "window_seconds": 2.0, "hop_seconds": 1.0}, frame=3000)
    *windows, summary, closed = msgs
    assert closed == {"closed": 1000} and summary["type"] == "summary"
    spans = fixed_windows(0, x.size, 2 * SR, SR)  # [0,2) [1,3) [2,4) [3,5) and the tail [3.7,5.7)
    assert [(w["start"], w["end"]) for w in windows] == [(s / SR, e / SR) for s, e in spans]
    assert [w["index"] for w in windows] == list(range(len(spans)))
    heard = _as_received(x, fmt)
    for w, (s, e) in zip(windows, spans):
        ref = recognizer.predict(heard[s:e]).to_dict()
        assert w["type"] == "window" and w["emotion"] == ref["emotion"]
        assert w["gender"] == ref["gender"] and w["style"] == ref["style"] and w["transcript"] == ref["transcript"]
        for k, v in ref["probs"].items():
            assert w["probs"][k] == pytest.approx(v, abs=1e-5)
        assert [d["label"] for d in w["labels"]][0] == ref["emotion"]
    # the summary is predict's answer for the whole stream cut into the same fixed windows
    windowed = EmotionRecognizer(
        recognizer.backend,
        recognizer.saved,
        config=RecognizerConfig(segment=SegmentConfig(max_seconds=2.0, window_seconds=2.0, method="windows")),
    )
    ref = windowed.predict(heard).to_dict()
    assert summary["windows"] == len(spans) and summary["silent_windows"] == 0
    assert summary["duration"] == pytest.approx(x.size / SR)
    assert summary["segmentation"] == "windows" and summary["emotion"] == ref["emotion"]
    assert summary["transcript"] == ref["transcript"] and summary["gender"] == ref["gender"]
    assert [(s["start"], s["end"]) for s in summary["segments"]] == [(s["start"], s["end"]) for s in ref["segments"]]
    for k, v in ref["probs"].items():
        assert summary["probs"][k] == pytest.approx(v, abs=1e-5)
    weights = np.array([w["end"] - w["start"] for w in windows])  # duration-weighted mean of the windows
    for k in ref["probs"]:
        mean = float(np.dot(weights, [w["probs"][k] for w in windows]) / weights.sum())
        assert summary["probs"][k] == pytest.approx(mean, abs=1e-5)


def test_a_stream_shorter_than_a_window_is_one_window(app):
    x = babble(1.3, seed=2)
    with TestClient(app) as c:
        *windows, summary, closed = _stream(c, x, {"format": "float32"})  # 3 s windows by default
    assert [(w["start"], w["end"]) for w in windows] == [(0.0, 1.3)]
    assert summary["probs"] == pytest.approx(windows[0]["probs"], abs=1e-6) and closed == {"closed": 1000}


def test_silent_windows_are_marked_and_left_out_of_the_summary(app):
    x = np.concatenate([silence(2.0), babble(2.0, seed=3)])
    with TestClient(app) as c:
        *windows, summary, _ = _stream(c, x, {"format": "int16", "window_seconds": 1.0, "hop_seconds": 1.0})
    assert [w.get("silent", False) for w in windows] == [True, True, False, False]
    assert windows[0]["emotion"] is None and summary["windows"] == 2 and summary["silent_windows"] == 2
    with TestClient(app) as c:
        *_, last, closed = _stream(c, silence(2.0), {"format": "int16", "window_seconds": 1.0})
    assert last["reason"] == "silent" and closed == {"closed": 1000}


def test_windows_arrive_while_the_audio_is_still_coming(app):
    x = babble(4.0, seed=4)
    data = _pcm(x, "int16")
    with TestClient(app) as c, c.websocket_connect("/v1/stream") as ws:
        ws.send_text(json.dumps({"format": "int16", "window_seconds": 1.0, "hop_seconds": 0.5}))
        assert ws.receive_json()["type"] == "ready"
        ws.send_bytes(data[: 2 * SR * 2])  # 2 s: windows [0,1) [0.5,1.5) [1,2)
        got = [ws.receive_json() for _ in range(3)]
        assert [(m["start"], m["end"]) for m in got] == [(0.0, 1.0), (0.5, 1.5), (1.0, 2.0)]
        ws.send_bytes(data[2 * SR * 2 :])
        ws.send_text(json.dumps({"type": "end"}))
        rest = [ws.receive_json() for _ in range(5)]
    assert [m["type"] for m in rest] == ["window"] * 4 + ["summary"] and rest[-1]["windows"] == 7


@pytest.mark.parametrize(
    "first, reason",
    [
        ("not json", "bad_message"),
        ("[1, 2]", "bad_message"),
        ('{"format": "int16", "colour": "red"}', "bad_message"),
        ('{"type": "end"}', "bad_message"),
        ('{"format": "mp3"}', "bad_format"),
        ('{"format": "int16", "sample_rate": 44100}', "bad_format"),
        ('{"format": "int16", "channels": 2}', "bad_format"),
        ('{"format": "int16", "window_seconds": 0.001}', "bad_message"),
        ('{"format": "int16", "window_seconds": 2, "hop_seconds": 3}', "bad_message"),
        ('{"format": "int16", "hop_seconds": "1"}', "bad_message"),
        (b"\x00\x01", "bad_message"),
    ],
)
def test_bad_first_messages_get_an_error_and_a_clean_close(app, first, reason, caplog):
    caplog.set_level(logging.INFO, logger="metaser.serve")
    with TestClient(app) as c, c.websocket_connect("/v1/stream") as ws:
        ws.send_bytes(first) if isinstance(first, bytes) else ws.send_text(first)
        msg = ws.receive_json()
        assert set(msg) == {"error", "reason"} and msg["reason"] == reason, msg
        with pytest.raises(WebSocketDisconnect) as e:
            ws.receive_json()
        assert e.value.code == 1003
    assert not [r for r in caplog.records if r.exc_info]  # no traceback


@pytest.mark.parametrize(
    "fmt, frame, reason",
    [
        ("int16", b"\x00\x01\x02", "bad_frame"),  # 1.5 samples
        ("float32", b"\x00" * 6, "bad_frame"),
        ("float32", np.array([0.1, math.nan, 0.2], dtype="<f4").tobytes(), "nonfinite"),
        ("float32", np.array([0.1, math.inf], dtype="<f4").tobytes(), "nonfinite"),
        ("int16", "hello", "bad_message"),
        ("int16", '{"type": "stop"}', "bad_message"),
    ],
)
def test_bad_frames_get_an_error_and_a_clean_close(app, fmt, frame, reason, caplog):
    caplog.set_level(logging.INFO, logger="metaser.serve")
    with TestClient(app) as c, c.websocket_connect("/v1/stream") as ws:
        ws.send_text(json.dumps({"format": fmt}))
        assert ws.receive_json()["type"] == "ready"
        ws.send_bytes(_pcm(babble(0.5, seed=1), fmt))
        ws.send_bytes(frame) if isinstance(frame, bytes) else ws.send_text(frame)
        msg = ws.receive_json()
        assert msg == {"error": msg["error"], "reason": reason}
        with pytest.raises(WebSocketDisconnect) as e:
            ws.receive_json()
        assert e.value.code == 1003
        assert c.get("/health").json()["stats"]["errors"][reason] >= 1
    assert not [r for r in caplog.records if r.exc_info]


def test_limits_and_idle_timeout(recognizer):
    app = create_app(recognizer, ServeConfig(max_stream_seconds=2.0, idle_seconds=0.5, max_streams=1))
    with TestClient(app) as c:
        msgs = _stream(c, babble(3.0, seed=1), {"format": "int16"}, end=False)
        assert msgs[-2]["reason"] == "too_long" and msgs[-1] == {"closed": 1009}
        with c.websocket_connect("/v1/stream") as ws:
            ws.send_text(json.dumps({"format": "int16"}))
            assert ws.receive_json()["type"] == "ready"
            assert ws.receive_json()["reason"] == "timeout"  # nothing sent for 0.5 s
        with c.websocket_connect("/v1/stream") as one, c.websocket_connect("/v1/stream") as two:
            assert two.receive_json()["reason"] == "busy"
            one.send_text(json.dumps({"format": "int16"}))
            assert one.receive_json()["type"] == "ready"


def test_a_client_that_leaves_is_one_info_line(app, caplog):
    caplog.set_level(logging.INFO, logger="metaser.serve")
    with TestClient(app) as c:
        before = c.get("/health").json()["stats"]
        with c.websocket_connect("/v1/stream") as ws:
            ws.send_text(json.dumps({"format": "int16", "window_seconds": 1.0}))
            assert ws.receive_json()["type"] == "ready"
            ws.send_bytes(_pcm(babble(2.5, seed=5), "int16"))
            assert ws.receive_json()["type"] == "window"
            ws.close()
        stats = c.get("/health").json()["stats"]
    assert stats["disconnects"] == before["disconnects"] + 1
    assert stats["streams"]["opened"] == before["streams"]["opened"] + 1 and stats["streams"]["active"] == 0
    assert stats["streams"]["windows"] >= before["streams"]["windows"] + 1
    assert [r.getMessage() for r in caplog.records if "disconnected" in r.getMessage()][0].startswith(
        "client disconnected: stream"
    )
    assert not [r for r in caplog.records if r.exc_info]


@pytest.mark.parametrize(
    "n, frame",
    [
        (n, f)
        for n in (1, 399, 16000, 47999, 48000, 48001, 64000, 100_003)
        for f in (7, 1000, 16000, 70000)
        if f > 7 or n < 20000
    ],
)
def test_stream_windows_are_predicts_fixed_windows(n, frame):
    x = np.arange(n, dtype=np.float32)
    w = StreamWindows(window=3 * SR, hop=SR)
    got = []
    for i in range(0, n, frame):
        got += w.push(x[i : i + frame])
    got += w.finish()
    assert [(s, s + len(a)) for s, a in got] == fixed_windows(0, n, 3 * SR, SR)
    for s, a in got:
        assert np.array_equal(a, x[s : s + len(a)])
    assert w.buffered <= 3 * SR + frame  # keeps only what later windows need


def test_parse_start_defaults():
    cfg = parse_start('{"format": "float32"}', 0.025)
    assert (cfg.format, cfg.window_seconds, cfg.hop_seconds) == ("float32", 3.0, 1.0)
    with pytest.raises(StreamError, match="sample_rate"):
        parse_start('{"format": "float32", "sample_rate": 8000}', 0.025)


def test_a_model_failure_ends_the_stream_with_model_error(recognizer, caplog):
    class Broken:
        """The real recognizer, whose forward fails."""

        def __getattr__(self, name):
            return getattr(recognizer, name)

        def run_pieces(self, chunks):
            raise RuntimeError("boom")

    caplog.set_level(logging.INFO, logger="metaser.serve")
    with TestClient(create_app(Broken(), model_name="broken")) as c:
        msgs = _stream(c, babble(3.5, seed=6), {"format": "int16", "window_seconds": 1.0}, end=False)
        assert c.get("/health").json()["stats"]["errors"] == {"model_error": 1}
    assert msgs[-2] == {"error": "the model failed on this input (RuntimeError: boom)", "reason": "model_error"}
    assert msgs[-1] == {"closed": 1011}
    # the model's failure is one warning line, not a traceback (a traceback means a bug of metaser)
    assert not [r for r in caplog.records if r.exc_info]
    assert any("RuntimeError: boom" in r.getMessage() for r in caplog.records if r.levelname == "WARNING")
