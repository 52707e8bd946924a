"""The HTML report in a real browser (headless Chromium at 1280x800): the verdict and
the first failing check are in the first screen, and the page loads no network
resource. The screenshot is saved into the run folder."""

from __future__ import annotations

import dataclasses
import re
import shutil
from pathlib import Path

import pytest

from phasegate import report
from phasegate.gates.result import CheckResult
from tests.test_report import sample_summary

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    not (CHROMIUM and DRIVER),
    reason="Chromium and ChromeDriver are not installed (Debian: apt-get install chromium "
    "chromium-driver; .ci/run installs them where it can)",
)


def failing_summary() -> report.Summary:
    """The sample run with a load table and a burst above the fold's content."""
    load = tuple(
        CheckResult(
            "C",
            name,
            "load-p95",
            "fail" if p95 > 200 else "pass",
            f"{name}: p95 {p95} ms",
            metrics={
                "requests": 900,
                "failures": 0,
                "p50_ms": 20,
                "p95_ms": p95,
                "p99_ms": p95 + 40,
            },
            thresholds={"p95_ms": 200},
        )
        for name, p95 in (
            ("messages:inbox", 48),
            ("messages:thread", 260),
            ("board:board_feed", 31),
        )
    )
    base = sample_summary()
    return dataclasses.replace(base, results=base.results + load)


def test_the_page_shows_the_verdict_and_first_failure_in_the_first_screen(tmp_path: Path) -> None:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    folder = report.write(failing_summary(), tmp_path)
    page = folder / "index.html"
    html = page.read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)  # nothing remote
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,800"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=str(DRIVER)), options=options)
    try:
        driver.set_window_size(1280, 800)
        driver.get(page.as_uri())
        height = driver.execute_script("return window.innerHeight")
        for element_id, text in (("verdict", "FAIL"), ("first-failure", "messages / sample")):
            element = driver.find_element(By.ID, element_id)
            assert element.is_displayed()
            assert text in element.text
            rect = element.rect
            assert rect["y"] + rect["height"] <= height, f"{element_id} is below the first screen"
        resources = driver.execute_script("return performance.getEntriesByType('resource').length")
        assert resources == 0
        driver.save_screenshot(str(folder / "screenshot.png"))
    finally:
        driver.quit()
    assert (folder / "screenshot.png").stat().st_size > 10_000
