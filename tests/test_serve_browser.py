"""cnnlab serve's page in a real browser: headless Chromium driven by Selenium (chromedriver).

A real server (``python -m cnnlab serve``) listens on 127.0.0.1 at a free port for the module
and is always stopped. The browser uploads through the page's file input, like a person would.
"""

from __future__ import annotations

import io
import json
import shutil

import numpy as np
import pytest
from _utils import HEADLESS_CHROMIUM_FLAGS, write_digit_pngs
from PIL import Image

from cnnlab.cli import main

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="Chromium or chromedriver is not installed (apt-get install chromium chromium-driver; "
    ".ci/run installs them)",
)
pytest.importorskip("selenium", reason="selenium is not installed (the test extra has it)")
pytest.importorskip("starlette", reason="the serve extra is not installed")

CHROMIUM_FLAGS = (*HEADLESS_CHROMIUM_FLAGS, "--window-size=1100,900")


@pytest.fixture(scope="module")
def server(tiny_run):
    from cnnlab.serve.process import serve_in_subprocess

    with serve_in_subprocess(tiny_run, ["--top-k", "3"]) as url:
        yield url


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        opts.add_argument(flag)
    opts.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def _upload(driver, url: str, path) -> None:
    from selenium.webdriver.common.by import By

    driver.get(url + "/")
    driver.find_element(By.ID, "file-input").send_keys(str(path))


def _wait_for(driver, css: str, timeout: float = 60):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(
        ec.presence_of_element_located((By.CSS_SELECTOR, css))
    )


def _console_errors(driver) -> list[str]:
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def test_page_shows_the_top_class_that_cnnlab_predict_gives(
    server, browser, tmp_path, capsys, tiny_run
):
    from selenium.webdriver.common.by import By

    (path, _), *_ = write_digit_pngs(tmp_path / "img", n=1)
    big = tmp_path / "digit.png"  # enlarged so that a person could see it too
    Image.open(path).resize((96, 96), Image.NEAREST).save(big)
    assert main(["predict", str(tiny_run), str(big), "--format", "json"]) == 0
    expected = json.loads(capsys.readouterr().out)[0]["top_k"][0]["class"]

    _upload(browser, server, big)
    top1 = _wait_for(browser, ".result .top1")
    assert top1.text == expected
    bars = browser.find_elements(By.CSS_SELECTOR, ".result .bar")
    assert len(bars) == 3 and bars[0].find_element(By.CSS_SELECTOR, ".label").text == expected
    cam = _wait_for(browser, ".cam img")  # Grad-CAM overlay of the top class (PyTorch run)
    assert cam.get_attribute("alt") == f"Grad-CAM of {expected}"
    assert browser.execute_script("return arguments[0].naturalWidth", cam) == 224
    card = browser.find_element(By.ID, "model-card").text
    assert "zero, one, two" in card and "1 x 32 x 32" in card
    shot = np.asarray(Image.open(io.BytesIO(browser.get_screenshot_as_png())).convert("L"), float)
    assert shot.std() > 20, "the screenshot is (nearly) blank"
    assert _console_errors(browser) == []  # no script error, no CSP violation, no failed load


def test_page_says_a_text_file_is_not_an_image(server, browser, tmp_path):
    from selenium.webdriver.common.by import By

    text = tmp_path / "notes.txt"
    text.write_text("this is not a picture of a digit\n")
    _upload(browser, server, text)
    error = _wait_for(browser, ".result .error")
    assert "notes.txt: not an image" in error.text
    assert browser.find_elements(By.CSS_SELECTOR, ".result .top1") == []
    # the 422 itself is logged by Chromium as a failed resource load; nothing else may be
    errors = [e for e in _console_errors(browser) if "status of 422" not in e]
    assert errors == []
