"""Browser test (tier `browser`): headless Chromium opens report.html, moves the slider, and the
drawing must change with no console error. A screenshot goes to test-artifacts/report.png.

Needs Debian's `chromium` and `chromium-driver` packages and the `selenium` Python package; the
test skips (with the reason) when any of them is missing.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest
from fixtures_run import write_synthetic_run

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--window-size=1280,1400")


def _browser():
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if chromium is None or driver is None:
        pytest.skip("headless Chromium not installed (apt-get install chromium chromium-driver)")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.skip("selenium not installed (pip install selenium)")
    profile = tempfile.mkdtemp(prefix="rnnautomata-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    try:
        return webdriver.Chrome(service=Service(executable_path=driver), options=options), profile
    except Exception as error:  # a broken install should say why, not fail the suite
        shutil.rmtree(profile, ignore_errors=True)
        pytest.skip(f"cannot start headless Chromium: {str(error).splitlines()[0]}")


@pytest.mark.browser
def test_report_slider_changes_drawing_without_console_errors(tmp_path):
    run = write_synthetic_run(tmp_path / "run", n_checkpoints=30, depth=5)
    from rnnautomata.report import write_report

    report = write_report(run, progress=False)
    browser, profile = _browser()
    try:
        from selenium.webdriver.common.by import By
        from selenium.webdriver.common.keys import Keys
        from selenium.webdriver.support.ui import WebDriverWait

        browser.get(report.resolve().as_uri())
        WebDriverWait(browser, 20).until(
            lambda b: b.find_element(By.TAG_NAME, "body").get_attribute("data-drawings-ready"))
        body = browser.find_element(By.TAG_NAME, "body")
        assert body.get_attribute("data-drawings-ready") == "1"
        view = browser.find_element(By.ID, "machine-view")
        before = (view.get_attribute("data-drawing"), view.get_attribute("innerHTML"))
        assert "<svg" in before[1]

        slider = browser.find_element(By.ID, "ckpt-slider")
        slider.click()
        slider.send_keys(Keys.HOME)
        first = view.get_attribute("innerHTML")
        for _ in range(10):  # into the tree phase
            slider.send_keys(Keys.ARROW_RIGHT)
        assert slider.get_attribute("value") == "10"
        after = (view.get_attribute("data-drawing"), view.get_attribute("innerHTML"))
        assert after[0] != before[0] or after[1] != first
        assert after[1] != first, "the drawing did not change when the slider moved"
        assert "step 250" in browser.find_element(By.ID, "ckpt-info").text

        browser.find_element(By.ID, "next").click()
        assert slider.get_attribute("value") == "11"

        errors = [e for e in browser.get_log("browser") if e.get("level") == "SEVERE"]
        assert errors == [], errors

        browser.execute_script("document.getElementById('slider-section').scrollIntoView()")
        ARTIFACTS.mkdir(exist_ok=True)
        assert browser.save_screenshot(str(ARTIFACTS / "report.png"))
    finally:
        browser.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.mark.browser
def test_seeds_report_sorts_by_a_column_without_console_errors(tmp_path):
    """The many-seed report: clicking "peak states" sorts the rows by it, both ways."""
    from rnnautomata.aggregate import aggregate_seeds
    from rnnautomata.batched import train_seeds
    from rnnautomata.config import study_from_dict
    from rnnautomata.seeds_report import write_seeds_report

    from conftest import tiny_raw

    out = tmp_path / "seeds"
    train_seeds(study_from_dict(tiny_raw(seeds=[0, 1, 2, 3], task={"test_lengths": [20]})), out, progress=False)
    aggregate_seeds(out, progress=False, jobs=1)
    report = write_seeds_report(out)
    browser, profile = _browser()
    try:
        from selenium.webdriver.common.by import By

        browser.get(report.resolve().as_uri())
        header = [th for th in browser.find_elements(By.TAG_NAME, "th") if th.text == "peak states"][0]

        def column():
            return [float(r.find_elements(By.TAG_NAME, "td")[1].get_attribute("data-v"))
                    for r in browser.find_elements(By.CSS_SELECTOR, "tbody tr")]

        assert len(column()) == 4
        header.click()
        assert column() == sorted(column())
        header.click()
        assert column() == sorted(column(), reverse=True)
        assert "<svg" in browser.page_source
        errors = [e for e in browser.get_log("browser") if e.get("level") == "SEVERE"]
        assert errors == [], errors
    finally:
        browser.quit()
        shutil.rmtree(profile, ignore_errors=True)
