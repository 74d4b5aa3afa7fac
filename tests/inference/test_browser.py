"""The page at ``/`` in a real browser: headless Chromium driven by selenium.

Needs the Debian packages ``chromium`` and ``chromium-driver`` (``.ci/run`` installs them);
skipped with the reason when they are missing. The screenshot is saved under the test's
tmp dir, and also into ``$METASER_SCREENSHOT_DIR`` when that is set (docs/img/serve.png was
made that way).
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from tests.inference.helpers import babble, silence, write

selenium = pytest.importorskip("selenium", reason="selenium is not installed (pip install metaser[test])")

CHROME = next((p for p in ("chromium", "chromium-browser", "google-chrome") if shutil.which(p)), None)
DRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    CHROME is None or DRIVER is None,
    reason="no headless browser: install the Debian packages chromium and chromium-driver "
    "(apt-get install -y chromium chromium-driver)",
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(model_dir, tmp_path):
    """uvicorn serving the tiny model (marked SYNTHETIC, like the demo's) in a thread."""
    import uvicorn

    from metaser.inference.recognizer import EmotionRecognizer, RecognizerConfig
    from metaser.inference.segment import SegmentConfig
    from metaser.inference.serve.app import create_app

    d = tmp_path / "demo-model"
    shutil.copytree(model_dir, d)
    (d / "SYNTHETIC").write_text("Trained on the synthetic demo corpus.\n")
    rec = EmotionRecognizer.from_pretrained(
        d, device="cpu", config=RecognizerConfig(segment=SegmentConfig(max_seconds=4.0))
    )
    port = _free_port()
    srv = uvicorn.Server(uvicorn.Config(create_app(rec), host="127.0.0.1", port=port, log_level="warning"))
    t = threading.Thread(target=srv.run, daemon=True)
    t.start()
    deadline = time.monotonic() + 30
    while not srv.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", rec
    srv.should_exit = True
    t.join(10)


def _chrome(*extra: str):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which(CHROME)
    # the fake media flags give the page a microphone (a beep, or --use-file-for-fake-audio-capture's
    # file) with no permission prompt
    for a in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1000,1250",
        "--force-device-scale-factor=1",
        "--use-fake-device-for-media-stream",
        "--use-fake-ui-for-media-stream",
        "--autoplay-policy=no-user-gesture-required",
        *extra,
    ):
        opts.add_argument(a)
    drv = webdriver.Chrome(service=Service(DRIVER), options=opts)
    drv.set_page_load_timeout(60)
    return drv


@pytest.fixture
def browser():
    drv = _chrome()
    yield drv
    drv.quit()


def test_page_uploads_a_wav_and_shows_emotion_chart_and_timeline(server, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    url, rec = server
    # two speech-like stretches and a pause: longer than max_seconds (4 s), so VAD splits it
    x = np.concatenate([silence(0.5), babble(3.0, seed=5), silence(1.5), babble(3.5, f0=210, seed=6), silence(0.5)])
    f = write(tmp_path / "speech.wav", x, subtype="PCM_16")
    expected = rec.predict(f)
    assert len(expected.segments) >= 2

    browser.get(url + "/")
    wait = WebDriverWait(browser, 60)
    wait.until(lambda d: d.find_element(By.ID, "model-name").text not in ("", "…"))
    assert browser.find_element(By.ID, "synthetic-warning").is_displayed()
    assert browser.find_element(By.ID, "backend").text == "torch"
    browser.find_element(By.ID, "file-input").send_keys(str(f))  # the change event uploads it
    wait.until(EC.text_to_be_present_in_element((By.ID, "status"), "done"))

    assert browser.find_element(By.ID, "emotion").text.lower() == expected.emotion
    bars = browser.find_elements(By.CSS_SELECTOR, "#chart .bar")
    shown = {b.get_attribute("data-label"): float(b.get_attribute("data-score")) for b in bars}
    assert list(shown) == [d["label"] for d in expected.labels()]  # sorted by score
    for label, score in shown.items():
        assert score == pytest.approx(expected.probs[label], abs=1e-5)
    track = bars[0].find_element(By.XPATH, "..").size["width"]
    for b in bars:  # drawn widths follow the probabilities
        want = float(b.get_attribute("data-score")) * track
        assert abs(b.size["width"] - want) <= 2, (b.get_attribute("data-label"), b.size["width"], want)
    assert browser.find_element(By.ID, "gender").text.startswith(expected.gender)
    assert browser.find_element(By.ID, "style").text.startswith(expected.style)
    segs = browser.find_elements(By.CSS_SELECTOR, "#timeline .seg")
    assert [s.get_attribute("data-emotion") for s in segs] == [s.emotion for s in expected.segments]
    assert browser.find_element(By.ID, "timeline-box").is_displayed()

    shot = tmp_path / "serve.png"
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
    if os.environ.get("METASER_SCREENSHOT_DIR"):
        out = Path(os.environ["METASER_SCREENSHOT_DIR"])
        out.mkdir(parents=True, exist_ok=True)
        shutil.copy2(shot, out / "serve.png")


def test_page_shows_the_error_of_a_bad_upload(server, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    url, _ = server
    bad = tmp_path / "notes.wav"
    bad.write_text("not audio\n" * 50)
    browser.get(url + "/")
    browser.find_element(By.ID, "file-input").send_keys(str(bad))
    WebDriverWait(browser, 60).until(EC.text_to_be_present_in_element((By.ID, "status"), "unreadable"))
    assert "error" in browser.find_element(By.ID, "status").get_attribute("class")
    assert not browser.find_element(By.ID, "result").is_displayed()


def _window_spread(rec, x: np.ndarray, window: int, step: int) -> np.ndarray:
    """max over the ``window``-sample windows of ``x`` played in a loop (every ``step`` samples)
    of |window probs - whole-file probs|, per emotion: how far one window's answer can be from
    the whole file's."""
    whole = np.array(list(rec.predict(x).probs.values()))
    looped = np.concatenate([x, x])
    probs = [list(rec.predict(looped[s : s + window]).probs.values()) for s in range(0, x.size, step)]  # (N, C)
    return np.abs(np.array(probs) - whole).max(axis=0)  # (C,)


def test_page_records_the_microphone_live_over_the_stream(server, tmp_path):
    """Chromium's fake microphone plays a known file (in a loop); the page streams it to
    WS /v1/stream. Windows must show up while it records, and the summary must match
    POST /v1/predict of the same file within the window effects.

    The bound: the summary is a duration-weighted mean of 3 s windows of what the microphone
    played, the file in a loop from wherever the capture started. A mean of windows is never
    further from the whole file's answer than its furthest window, so per emotion
    |summary - predict| <= max over every 3 s window of the looped file (each 0.1 s) of
    |window - predict| (sampled every 0.25 s), plus 0.005 for the capture path: the browser
    resamples the file to its device rate and back to 16 kHz, and the capture may start with a
    little silence (the excess over the window spread was at most 0.0015 in the runs here).
    """
    import json
    import urllib.request

    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    url, rec = server
    x = np.concatenate([babble(2.5, seed=21), babble(2.5, f0=220, seed=22)])  # 5 s, played in a loop
    f = write(tmp_path / "mic.wav", x, subtype="PCM_16")
    req = urllib.request.Request(url + "/v1/predict", data=f.read_bytes(), headers={"Content-Type": "audio/wav"})
    with urllib.request.urlopen(req, timeout=60) as r:
        whole = json.loads(r.read())
    heard = np.frombuffer(f.read_bytes()[44:], dtype="<i2").astype(np.float32) / 32768  # what the file holds
    bound = _window_spread(rec, heard, 3 * 16000, 4000) + 0.005

    browser = _chrome(f"--use-file-for-fake-audio-capture={f}")
    try:
        browser.get(url + "/")
        wait = WebDriverWait(browser, 30)
        wait.until(lambda d: d.find_element(By.ID, "model-name").text not in ("", "…"))
        button = browser.find_element(By.ID, "record-button")
        button.click()
        segs = lambda d: d.find_elements(By.CSS_SELECTOR, "#live-timeline .seg")  # noqa: E731
        wait.until(lambda d: len(segs(d)) >= 3)  # 3 windows = 5 s of audio, still recording
        assert "■" in button.text and "window(s)" in browser.find_element(By.ID, "record-status").text
        assert browser.find_element(By.ID, "live").is_displayed()
        shown = [(float(s.get_attribute("data-start")), float(s.get_attribute("data-end"))) for s in segs(browser)]
        assert shown[:3] == [(0.0, 3.0), (1.0, 4.0), (2.0, 5.0)]
        assert all(s.get_attribute("data-emotion") in rec.emotion_labels for s in segs(browser))
        button.click()
        wait.until(lambda d: "recording: done" in d.find_element(By.ID, "status").text)
        summary = json.loads(browser.find_element(By.ID, "json").get_attribute("textContent"))
        n_live = len(segs(browser))
    finally:
        browser.quit()
    assert summary["type"] == "summary" and summary["windows"] == n_live >= 3
    assert summary["duration"] >= 5.0
    got = np.array([summary["probs"][k] for k in whole["probs"]])
    want = np.array(list(whole["probs"].values()))
    assert (np.abs(got - want) <= bound).all(), (got, want, bound)
    assert summary["emotion"] in rec.emotion_labels
