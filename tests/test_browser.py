"""The web page in a real browser: headless Debian chromium driven by selenium against uvicorn.

Skipped when /usr/bin/chromium or /usr/bin/chromedriver is missing
(``apt-get install chromium chromium-driver``).
"""

from __future__ import annotations

import contextlib
import os
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from infer_assets import CLASSES, Assets, write_video
from mmfer.inference.predictor import Predictor

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")

pytestmark = pytest.mark.browser

if not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()):
    pytest.skip(
        f"needs {CHROMIUM} and {CHROMEDRIVER} (apt-get install chromium chromium-driver)",
        allow_module_level=True,
    )
webdriver = pytest.importorskip("selenium.webdriver")


@contextlib.contextmanager
def _serve(model: object) -> Iterator[str]:
    """The real app under uvicorn in a background thread, on a free localhost port."""
    import uvicorn

    from mmfer.inference.serve import create_app

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))  # bound here and handed over: no race for the port
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(create_app(model, max_upload_mb=5), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@pytest.fixture(scope="module")
def server_url(predictor: Predictor) -> Iterator[str]:
    """The app serving the tiny test model."""
    with _serve(predictor) as url:
        yield url


@pytest.fixture(scope="module")
def driver() -> Iterator[object]:
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.TemporaryDirectory(prefix="mmfer-chromium-")
    opts = Options()
    opts.binary_location = str(CHROMIUM)
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={profile.name}",
    ):
        opts.add_argument(flag)
    opts.add_argument("--window-size=1100,1500")
    drv = webdriver.Chrome(options=opts, service=Service(executable_path=str(CHROMEDRIVER)))
    try:
        yield drv
    finally:
        drv.quit()
        profile.cleanup()


def _submit_and_wait(drv: object, url: str, *, file: Path | None = None, transcript: str = "") -> str:
    """Load the page, fill the form, click Predict; return the final page state (done/error)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    drv.get(url)  # type: ignore[attr-defined]
    wait = WebDriverWait(drv, 30)
    wait.until(lambda d: "Model" in d.find_element(By.ID, "model-info").text)
    if file is not None:
        drv.find_element(By.ID, "file").send_keys(str(file))  # type: ignore[attr-defined]
    if transcript:
        drv.find_element(By.ID, "transcript").send_keys(transcript)  # type: ignore[attr-defined]
    drv.find_element(By.ID, "submit").click()  # type: ignore[attr-defined]
    wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-state") in ("done", "error"))
    return drv.find_element(By.TAG_NAME, "body").get_attribute("data-state")  # type: ignore[attr-defined]


def test_upload_wav_shows_the_api_prediction(
    driver: object, server_url: str, predictor: Predictor, assets: Assets
) -> None:
    from selenium.webdriver.common.by import By

    wav = assets.wavs["angry"]
    assert _submit_and_wait(driver, server_url, file=wav) == "done"
    (expected,) = predictor.predict(wav)
    assert driver.find_element(By.ID, "result-label").text == expected.label  # type: ignore[attr-defined]
    rows = driver.find_elements(By.CSS_SELECTOR, "#bars .bar-row")  # type: ignore[attr-defined]
    assert [r.get_attribute("data-label") for r in rows] == assets.labels
    shown = {r.get_attribute("data-label"): r.find_element(By.CLASS_NAME, "bar-value").text for r in rows}
    assert shown == {k: f"{100 * v:.1f}%" for k, v in expected.probabilities.items()}
    assert "text missing" in driver.find_element(By.ID, "result-notes").text  # type: ignore[attr-defined]


def test_transcript_only_and_error_display(
    driver: object, server_url: str, predictor: Predictor, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    assert _submit_and_wait(driver, server_url, transcript="lonely grey tears") == "done"
    expected = predictor.predict_text("lonely grey tears")
    assert driver.find_element(By.ID, "result-label").text == expected.label  # type: ignore[attr-defined]
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00not a video" * 100)
    assert _submit_and_wait(driver, server_url, file=bad) == "error"
    message = driver.find_element(By.ID, "error").text  # type: ignore[attr-defined]
    assert "422" in message and "broken.mp4" in message
    assert not driver.find_element(By.ID, "result").is_displayed()  # type: ignore[attr-defined]


def _wait_timeline(drv: object, timeout: float) -> str:
    """Wait until the page's timeline request is over; its final state (done/error)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    body = (By.TAG_NAME, "body")
    WebDriverWait(drv, timeout).until(
        lambda d: d.find_element(*body).get_attribute("data-timeline") in ("done", "error")
    )
    return drv.find_element(*body).get_attribute("data-timeline")  # type: ignore[attr-defined]


def test_video_upload_shows_the_timeline(driver: object, server_url: str, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    vid = write_video(tmp_path / "clip.mp4", freq=CLASSES["happy"][0], seconds=2.0)
    assert _submit_and_wait(driver, server_url, file=vid) == "done"
    assert _wait_timeline(driver, 60) == "done"
    img = driver.find_element(By.ID, "timeline-img")  # type: ignore[attr-defined]
    assert img.is_displayed() and img.get_attribute("src").startswith("data:image/png;base64,")
    assert driver.execute_script("return arguments[0].naturalWidth", img) > 500  # type: ignore[attr-defined]
    assert "series: fused, voice, words" in driver.find_element(By.ID, "timeline-notes").text  # type: ignore[attr-defined]


ACTOR05_CLIP = (
    Path(__file__).resolve().parents[1].parent / "shared/data/ravdess-av-actor05/01-01-03-01-01-02-05.mp4"
)


@pytest.mark.realdata
@pytest.mark.skipif(not ACTOR05_CLIP.is_file(), reason="RAVDESS actor-05 videos not available")
def test_shipped_model_timeline_of_a_real_clip(driver: object, tmp_path: Path) -> None:
    """Shipped model, real RAVDESS clip; the screenshot is kept at $MMFER_DOCS_SCREENSHOT if set."""
    import mmfer

    with _serve(mmfer.load(None)) as url:
        assert _submit_and_wait(driver, url, file=ACTOR05_CLIP) == "done"
        assert _wait_timeline(driver, 120) == "done"
        shot = Path(os.environ.get("MMFER_DOCS_SCREENSHOT") or tmp_path / "serve_timeline.png")
        height = driver.execute_script("return document.documentElement.scrollHeight")  # type: ignore[attr-defined]
        metrics = {"width": 1100, "height": int(height), "deviceScaleFactor": 1, "mobile": False}
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)  # type: ignore[attr-defined]
        try:
            assert driver.save_screenshot(str(shot))  # type: ignore[attr-defined]
        finally:
            driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})  # type: ignore[attr-defined]
        assert shot.stat().st_size > 10_000
