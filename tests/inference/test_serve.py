"""The HTTP service: FastAPI's TestClient against the app of ``metaser serve``."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

from fastapi.testclient import TestClient  # noqa: E402

from metaser.inference.recognizer import EmotionRecognizer, RecognizerConfig  # noqa: E402
from metaser.inference.segment import SegmentConfig  # noqa: E402
from metaser.inference.serve.app import STATIC_DIR, ServeConfig, create_app  # noqa: E402
from tests.inference.helpers import babble, bad_files, tone, write  # noqa: E402


@pytest.fixture(scope="module")
def client(recognizer):
    with TestClient(create_app(recognizer, ServeConfig(max_upload_mb=1.0, max_seconds=20.0))) as c:
        yield c


def _wav(tmp_path: Path, x: np.ndarray, name: str = "a.wav", subtype: str = "PCM_16") -> Path:
    return write(tmp_path / name, x, subtype=subtype)


def _post_file(c, path: Path, ctype: str = "audio/wav"):
    return c.post("/v1/predict", files={"file": (path.name, path.read_bytes(), ctype)})


def test_health(client, recognizer):
    r = client.get("/health")
    assert r.status_code == 200
    body = r.json()
    assert {k: body[k] for k in ("status", "model", "backend")} == {
        "status": "ok",
        "model": recognizer.path.name,
        "backend": "torch",
    }
    stats = body["stats"]
    assert set(stats) >= {"requests", "responses", "errors", "disconnects", "predictions", "streams", "scheduler"}
    assert stats["rss_mb"] is None or stats["rss_mb"] > 0


def test_health_counts_requests_errors_and_predictions(recognizer, tmp_path):
    f = _wav(tmp_path, babble(1.0, seed=4))
    with TestClient(create_app(recognizer)) as c:
        assert _post_file(c, f).status_code == 200
        assert c.post("/v1/predict", content=b"x", headers={"content-type": "text/plain"}).status_code == 415
        assert c.post("/v1/predict", content=b"not audio", headers={"content-type": "audio/wav"}).status_code == 422
        stats = c.get("/health").json()["stats"]
    assert stats["requests"] == 3 and stats["predictions"] == 1
    assert stats["responses"] == {"200": 1, "415": 1, "422": 1}
    assert stats["errors"] == {"unsupported_media_type": 1, "unreadable": 1}
    assert stats["scheduler"]["forwards"] == 1 and stats["scheduler"]["unfinished_requests"] == 0


def test_head_on_get_routes(client):
    for path in ("/health", "/v1/model", "/", "/static/app.js", "/docs", "/openapi.json"):
        get, head = client.get(path), client.head(path)
        assert head.status_code == 200 == get.status_code, path
        assert head.content == b"" and head.headers["content-type"] == get.headers["content-type"], path
    assert client.head("/v1/predict").status_code == 405
    assert client.head("/nothing").status_code == 404


def test_predict_multipart_and_raw_body_give_predicts_json_plus_labels(client, recognizer, tmp_path):
    f = _wav(tmp_path, babble(1.4, seed=3))
    expected = recognizer.predict(f).to_dict()
    r = _post_file(client, f)
    assert r.status_code == 200, r.text
    got = r.json()
    labels = got.pop("labels")
    assert got == {**expected, "path": "a.wav"}
    assert [x["label"] for x in labels] == sorted(expected["probs"], key=lambda k: -expected["probs"][k])
    assert [x["score"] for x in labels] == sorted((v for v in expected["probs"].values()), reverse=True)
    assert labels[0]["label"] == expected["emotion"]
    raw = client.post("/v1/predict", content=f.read_bytes(), headers={"content-type": "audio/x-wav"})
    assert raw.status_code == 200
    assert raw.json()["probs"] == expected["probs"] and raw.json()["path"] is None
    octets = client.post(
        "/v1/predict",
        content=f.read_bytes(),
        headers={"content-type": "application/octet-stream", "x-filename": "b.wav"},
    )
    assert octets.status_code == 200 and octets.json()["probs"] == expected["probs"]
    assert octets.json()["path"] == "b.wav"


def _bad_uploads(tmp_path: Path) -> dict[str, tuple[bytes, str]]:
    files = bad_files(tmp_path / "bad")
    out = {
        reason: (files[reason].read_bytes(), "audio/wav")
        for reason in ("empty", "unreadable", "corrupt", "too_short", "silent", "nonfinite")
    }
    out["too_long"] = (_wav(tmp_path, tone(21.0), "long.wav").read_bytes(), "audio/wav")  # limit 20 s
    return out


@pytest.mark.parametrize("reason", ["empty", "unreadable", "corrupt", "too_short", "too_long", "silent", "nonfinite"])
@pytest.mark.parametrize("how", ["multipart", "raw"])
def test_bad_audio_gets_a_422_json_error(client, tmp_path, reason, how):
    data, ctype = _bad_uploads(tmp_path)[reason]
    if how == "multipart":
        r = client.post("/v1/predict", files={"file": (f"{reason}.wav", data, ctype)})
    else:
        r = client.post("/v1/predict", content=data, headers={"content-type": ctype})
    assert r.status_code == 422, r.text
    body = r.json()
    assert set(body) == {"error", "reason"} and body["reason"] == reason
    assert "Traceback" not in body["error"] and "/tmp" not in body["error"]  # no temporary paths leak
    assert client.get("/health").json()["status"] == "ok"  # still serving


def test_too_large_upload_gets_413(client, tmp_path):
    big = _wav(tmp_path, babble(40.0, seed=1), subtype="FLOAT")  # 2.5 MB > the 1 MB limit
    for r in (
        _post_file(client, big),
        client.post("/v1/predict", content=big.read_bytes(), headers={"content-type": "audio/wav"}),
    ):
        assert r.status_code == 413 and r.json()["reason"] == "too_large"
    ok = _wav(tmp_path, babble(10.0, seed=1))  # 320 kB: under the limit
    assert _post_file(client, ok).status_code == 200


def test_request_errors(client, tmp_path):
    f = _wav(tmp_path, babble(1.0, seed=2))
    r = client.post("/v1/predict", content=f.read_bytes(), headers={"content-type": "text/plain"})
    assert r.status_code == 415 and r.json()["reason"] == "unsupported_media_type"
    r = client.post("/v1/predict", files={"other": ("a.wav", f.read_bytes(), "audio/wav")})
    assert r.status_code == 400 and r.json()["reason"] == "no_file"
    r = client.post(
        "/v1/predict", content=b"--x\r\nbroken", headers={"content-type": "multipart/form-data; boundary=x"}
    )
    assert 400 <= r.status_code < 500 and set(r.json()) == {"error", "reason"}
    r = client.get("/v1/nothing")
    assert r.status_code == 404 and r.json()["reason"] == "not_found"
    r = client.get("/v1/predict")
    assert r.status_code == 405 and r.json()["reason"] == "method_not_allowed"


def test_eight_concurrent_clients_get_the_single_client_answers(recognizer, tmp_path):
    files = [_wav(tmp_path, babble(0.6 + 0.25 * i, seed=70 + i), f"c{i}.wav") for i in range(8)]
    expected = [recognizer.predict(f).probs for f in files]
    app = create_app(recognizer, ServeConfig(batch_size=8, max_wait_ms=50))
    with TestClient(app) as c:

        def call(i: int):
            r = _post_file(c, files[i % 8])
            return i % 8, r.status_code, r.json()

        with ThreadPoolExecutor(8) as ex:
            res = list(ex.map(call, range(32)))
    assert [s for _, s, _ in res] == [200] * 32
    for i, _, body in res:
        for k, v in expected[i].items():
            assert body["probs"][k] == pytest.approx(v, abs=1e-4)  # batched with others: same answer
    s = app.state.scheduler
    assert s.requests_done == 32 and 1 <= s.forwards <= 32


def test_long_recording_returns_a_timeline(model_dir, tmp_path):
    rec = EmotionRecognizer.from_pretrained(
        model_dir, device="cpu", config=RecognizerConfig(segment=SegmentConfig(max_seconds=5.0, method="windows"))
    )
    f = _wav(tmp_path, np.concatenate([tone(6.0, seed=1), tone(6.0, freq=300, seed=2)]), "long.wav")
    with TestClient(create_app(rec)) as c:
        body = _post_file(c, f).json()
    assert body["segmentation"] == "windows" and body["duration"] == pytest.approx(12.0)
    assert [s["start"] for s in body["segments"]] == [0.0, 2.5, 5.0, 7.0]
    expected = {**rec.predict(f).to_dict(), "path": "long.wav", "labels": body["labels"]}
    assert_same_answer(body, expected)  # pieces batched differently: float rounding only


def assert_same_answer(a, b, tol: float = 1e-5, where: str = "") -> None:
    """Equal labels, lists and keys; numbers within ``tol`` (the batch-independence bound)."""
    if isinstance(a, dict) and isinstance(b, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            assert_same_answer(a[k], b[k], tol, f"{where}.{k}")
    elif isinstance(a, list) and isinstance(b, list):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same_answer(x, y, tol, f"{where}[{i}]")
    elif isinstance(a, float) or isinstance(b, float):
        assert a == pytest.approx(b, abs=tol), where
    else:
        assert a == b, where


def test_model_info_and_synthetic_flag(model_dir, tmp_path, client):
    import shutil

    info = client.get("/v1/model").json()
    assert info["emotions"] == ["ang", "hap", "neu", "sad"] and info["synthetic"] is False
    assert info["max_upload_mb"] == 1.0 and info["max_seconds"] == 20.0
    d = tmp_path / "demo-model"
    shutil.copytree(model_dir, d)
    (d / "SYNTHETIC").write_text("synthetic\n")
    with TestClient(create_app(EmotionRecognizer.from_pretrained(d, device="cpu"))) as c:
        assert c.get("/v1/model").json()["synthetic"] is True
        assert c.get("/health").json()["model"] == "demo-model"


def test_page_docs_and_no_cdn(client):
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert 'id="synthetic-warning"' in page.text and 'id="chart"' in page.text
    for f in STATIC_DIR.iterdir():
        text = f.read_text()
        assert not re.search(r"""(src|href)=["']?(https?:)?//""", text), f"{f.name} loads something remote"
        assert client.get(f"/static/{f.name}").status_code == 200
    docs = client.get("/docs")
    assert docs.status_code == 200
    for asset in re.findall(r'(?:src|href)="(/[^"]+)"', docs.text):  # Swagger UI served locally
        assert client.get(asset).status_code == 200, asset
    spec = client.get("/openapi.json").json()
    body = spec["paths"]["/v1/predict"]["post"]["requestBody"]["content"]
    assert set(body) == {"multipart/form-data", "audio/*", "application/octet-stream"}


def test_onnx_backend_app(onnx_recognizer, recognizer, tmp_path):
    f = _wav(tmp_path, babble(1.1, seed=8))
    with TestClient(create_app(onnx_recognizer)) as c:
        assert c.get("/health").json()["backend"] == "onnx"
        body = _post_file(c, f).json()
    ref = recognizer.predict(f)
    assert body["emotion"] == ref.emotion
    assert max(abs(body["probs"][k] - v) for k, v in ref.probs.items()) <= 1e-4


def test_cli_serve_refuses_bad_options(tmp_path, model_dir):
    from click.testing import CliRunner

    from metaser.cli import main

    r = CliRunner().invoke(main, ["serve", str(tmp_path / "nope")])
    assert r.exit_code == 2 and "model directory not found" in r.output
    r = CliRunner().invoke(main, ["serve", str(model_dir), "--max-upload-mb", "0"])
    assert r.exit_code == 2 and "--max-upload-mb" in r.output
    r = CliRunner().invoke(main, ["serve", str(model_dir), "--batch-seconds", "0"])
    assert r.exit_code == 2 and "--batch-seconds" in r.output
