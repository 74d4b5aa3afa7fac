"""What ``metaser serve`` logs: clients that go away, the access log, bugs.

The disconnect tests run the real ``metaser serve`` command (uvicorn, its logging config) and
talk to it over raw sockets, then read what the server wrote to stdout and stderr.
"""

from __future__ import annotations

import json
import logging
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

from fastapi.testclient import TestClient  # noqa: E402

from metaser.inference.serve.app import ServeConfig, create_app  # noqa: E402
from metaser.inference.serve.server import log_config  # noqa: E402
from tests.inference.helpers import babble, write  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served(model_dir, tmp_path_factory):
    """``metaser serve MODEL --port P`` in a subprocess; yields (base url, log path)."""
    logs = tmp_path_factory.mktemp("serve-logs") / "server.log"
    port = _free_port()
    with open(logs, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "metaser.cli", "serve", str(model_dir), "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, logs.read_text()
            try:
                with urllib.request.urlopen(base + "/health", timeout=2):
                    break
            except OSError:
                assert time.monotonic() < deadline, "the server did not start:\n" + logs.read_text()
                time.sleep(0.3)
        yield base, port, logs
        proc.terminate()
        proc.wait(20)


def _raw(port: int, data: bytes, *, wait_answer: bool = False) -> bytes:
    """Send raw bytes on a fresh connection, optionally read what comes back, then close."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(data)
        answer = s.recv(65536) if wait_answer else b""
    return answer


def _health(base: str) -> dict:
    with urllib.request.urlopen(base + "/health", timeout=10) as r:
        return json.loads(r.read())


def _wait_for(pred, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline
        time.sleep(0.1)


def test_dropped_upload_and_bad_chunk_are_one_info_line_each(served, tmp_path):
    base, port, logs = served
    before = _health(base)["stats"]
    # 1. a client that promises 100 kB, sends 1 kB and closes
    head = b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: audio/wav\r\nContent-Length: 100000\r\n\r\n"
    _raw(port, head + b"\0" * 1000)
    # 2. a chunked body whose chunk size is not hexadecimal (uvicorn answers 400 itself)
    bad = b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: audio/wav\r\nTransfer-Encoding: chunked\r\n\r\n"
    answer = _raw(port, bad + b"4\r\nRIFF\r\nzz\r\nxx\r\n", wait_answer=True)
    assert answer.startswith(b"HTTP/1.1 400")
    _wait_for(lambda: _health(base)["stats"]["disconnects"] >= before["disconnects"] + 2)
    stats = _health(base)["stats"]
    assert stats["errors"].get("invalid_http", 0) == before["errors"].get("invalid_http", 0) + 1
    assert stats["responses"].get("499", 0) == before["responses"].get("499", 0) + 2
    assert stats["errors"].get("internal", 0) == 0
    # a real upload still works
    f = write(tmp_path / "a.wav", babble(1.0, seed=1), subtype="PCM_16")
    req = urllib.request.Request(base + "/v1/predict", data=f.read_bytes(), headers={"Content-Type": "audio/wav"})
    with urllib.request.urlopen(req, timeout=60) as r:
        assert r.status == 200
    _wait_for(lambda: '"POST /v1/predict HTTP/1.1" 200' in logs.read_text())
    text = logs.read_text()
    assert "Traceback" not in text and "unexpected error" not in text and "ClientDisconnect" not in text
    assert "Invalid HTTP request received" not in text  # counted in /health instead
    lines = [ln for ln in text.splitlines() if "client disconnected" in ln]
    assert len(lines) == 2 and all(ln.startswith("INFO:") for ln in lines), lines
    assert sorted(ln.split(" after ")[1].split()[0] for ln in lines) == ["1000", "4"]
    assert len([ln for ln in text.splitlines() if '"POST /v1/predict HTTP/1.1" 499' in ln]) == 2


def test_access_log_lines(served):
    base, port, logs = served
    urllib.request.urlopen(urllib.request.Request(base + "/health?x=1", method="HEAD"), timeout=10).close()
    _wait_for(lambda: '"HEAD /health?x=1 HTTP/1.1" 200' in logs.read_text())
    line = next(ln for ln in logs.read_text().splitlines() if '"HEAD /health?x=1 HTTP/1.1"' in ln)
    # uvicorn's access format plus duration and bytes: INFO:  127.0.0.1:PORT - "HEAD ..." 200 1.2ms in=0B out=NB
    assert line.startswith("INFO:") and " - " in line
    assert line.split('" 200 ')[1].split()[0].endswith("ms") and "in=0B out=0B" in line  # HEAD: no body sent


def test_no_access_log_option(recognizer, caplog):
    caplog.set_level(logging.INFO, logger="metaser.serve.access")
    for on in (True, False):
        caplog.clear()
        with TestClient(create_app(recognizer, ServeConfig(access_log=on))) as c:
            assert c.get("/health").status_code == 200
        lines = [r.getMessage() for r in caplog.records if r.name == "metaser.serve.access"]
        assert (len(lines) == 1 and '"GET /health HTTP/1.1" 200' in lines[0]) if on else lines == []
    assert log_config(access_log=False)["loggers"]["metaser.serve.access"]["level"] == "WARNING"


def test_a_bug_is_one_traceback_and_a_500_json(recognizer, caplog, tmp_path):
    class Broken:
        """The real recognizer, whose combine step fails."""

        def __getattr__(self, name):
            return getattr(recognizer, name)

        def combine(self, *a):
            raise ZeroDivisionError("boom")

    caplog.set_level(logging.INFO, logger="metaser.serve")
    f = write(tmp_path / "a.wav", babble(1.0, seed=1), subtype="PCM_16")
    with TestClient(create_app(Broken(), model_name="broken"), raise_server_exceptions=False) as c:
        r = c.post("/v1/predict", content=f.read_bytes(), headers={"content-type": "audio/wav"})
        assert r.status_code == 500 and r.json() == {"error": "internal error", "reason": "internal"}
        assert c.get("/health").json()["stats"]["errors"] == {"internal": 1}
    tracebacks = [r for r in caplog.records if r.exc_info]
    assert len(tracebacks) == 1 and tracebacks[0].getMessage() == "unexpected error in POST /v1/predict"


def test_a_client_gone_while_waiting_leaves_the_rotation(model_dir, tmp_path, caplog):
    """A client that sent its whole upload and then closed: its remaining pieces are dropped."""
    import threading

    import uvicorn

    from metaser.inference.recognizer import EmotionRecognizer, RecognizerConfig
    from metaser.inference.segment import SegmentConfig
    from tests.inference.helpers import tone

    rec = EmotionRecognizer.from_pretrained(
        model_dir, device="cpu", config=RecognizerConfig(segment=SegmentConfig(max_seconds=1.0, method="windows"))
    )

    class Slow:
        def __getattr__(self, name):
            return getattr(rec, name)

        def run_pieces(self, chunks):
            time.sleep(0.1)
            return rec.run_pieces(chunks)

    caplog.set_level(logging.INFO, logger="metaser.serve")
    app = create_app(Slow(), ServeConfig(batch_size=1), model_name="slow")
    port = _free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    t = threading.Thread(target=srv.run, daemon=True)
    t.start()
    _wait_for(lambda: srv.started)
    try:
        body = write(tmp_path / "long.wav", tone(20.0), subtype="PCM_16").read_bytes()  # 39 windows of 1 s
        head = f"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: audio/wav\r\nContent-Length: {len(body)}\r\n\r\n"
        sched = app.state.scheduler
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(head.encode() + body)
            _wait_for(lambda: sched.stats()["pieces"] >= 2)  # it is being predicted
        _wait_for(lambda: sched.stats()["unfinished_requests"] == 0)
        done = sched.stats()["pieces"]
        time.sleep(0.5)
        assert sched.stats()["pieces"] == done < 39  # no more model time for it
        assert app.state.stats.snapshot()["disconnects"] == 1
        assert any(r.getMessage().startswith("client disconnected: POST /v1/predict") for r in caplog.records)
        assert not [r for r in caplog.records if r.exc_info]
    finally:
        srv.should_exit = True
        t.join(10)


def test_a_model_failure_is_a_500_model_error_without_traceback(recognizer, caplog, tmp_path):
    class Broken:
        """The real recognizer, whose forward fails."""

        def __getattr__(self, name):
            return getattr(recognizer, name)

        def run_pieces(self, chunks):
            raise RuntimeError("boom")

    caplog.set_level(logging.INFO, logger="metaser.serve")
    f = write(tmp_path / "a.wav", babble(1.0, seed=1), subtype="PCM_16")
    with TestClient(create_app(Broken(), model_name="broken"), raise_server_exceptions=False) as c:
        r = c.post("/v1/predict", content=f.read_bytes(), headers={"content-type": "audio/wav"})
        assert r.status_code == 500
        assert r.json() == {"error": "the model failed on this input (RuntimeError: boom)", "reason": "model_error"}
        assert c.get("/health").json()["stats"]["errors"] == {"model_error": 1}
        assert c.get("/health").status_code == 200  # still serving
    assert not [r for r in caplog.records if r.exc_info]
