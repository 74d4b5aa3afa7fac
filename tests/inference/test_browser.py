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


@pytest.fixture
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which(CHROME)
    # the fake media flags give the page a microphone that plays a beep, with no permission prompt
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
    ):
        opts.add_argument(a)
    drv = webdriver.Chrome(service=Service(DRIVER), options=opts)
    drv.set_page_load_timeout(60)
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


def test_page_records_from_the_microphone(server, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    url, _ = server
    browser.get(url + "/")
    wait = WebDriverWait(browser, 60)
    button = browser.find_element(By.ID, "record-button")
    button.click()
    wait.until(EC.text_to_be_present_in_element((By.ID, "record-status"), "recording"))
    time.sleep(1.5)  # the fake microphone's beep, recorded as 16-bit WAV by the page
    button.click()
    wait.until(
        lambda d: (
            "recording.wav" in d.find_element(By.ID, "status").text
            and "predicting" not in d.find_element(By.ID, "status").text
        )
    )
    assert browser.find_element(By.ID, "status").text == "recording.wav: done"
    duration = float(browser.find_element(By.ID, "duration").text.split()[0])
    assert 0.5 < duration < 5.0
    assert len(browser.find_elements(By.CSS_SELECTOR, "#chart .bar")) == 4
