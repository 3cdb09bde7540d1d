"""A headless Debian Chromium driven by selenium through the system chromedriver, for the
dashboard's tests: exact viewports (CDP), screenshots under the artefacts folder, and the
browser console checked for errors after every step.

Without chromium, chromedriver or selenium the tests skip locally and FAIL when the CI
environment variable is set (CI installs them)."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import ROOT

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
PHONE = (390, 844)
DESKTOP = (1920, 1080)
WAIT = 15.0  # a loaded machine is slow; a missing element stays missing


def artifacts_dir() -> Path:
    """Where screenshots go: $VIETER_ARTIFACTS, else artifacts/ at the project root."""
    return Path(os.environ.get("VIETER_ARTIFACTS") or ROOT / "artifacts")


def missing_reason() -> str | None:
    for path in (CHROMIUM, CHROMEDRIVER):
        if not path.exists():
            return f"{path} is not installed (apt-get install chromium chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install selenium)"
    return None


def require_browser() -> None:
    reason = missing_reason()
    if reason is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"the browser tests need a browser in CI: {reason}", pytrace=False)
    pytest.skip(reason)


class Browser:
    """One Chromium for a test module, with the helpers its tests share."""

    def __init__(self, driver: Any, shots: Path, tolerated: Callable[[str], bool]):
        self.driver = driver
        self.shots = shots
        self.tolerated = tolerated
        self.console: list[dict[str, Any]] = []
        self.overflow: dict[int, int] = {}

    # -- viewport and screenshots ---------------------------------------------------------
    def viewport(self, width: int, height: int) -> None:
        self.driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
            "width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})

    def screenshots(self, name: str) -> list[Path]:
        """The page at the phone's and at the monitor's size; back to the monitor's."""
        paths = []
        self.overflow = {}
        for width, height in (PHONE, DESKTOP):
            self.viewport(width, height)
            time.sleep(0.2)  # a relayout; the screenshot is not asserted on
            path = self.shots / f"{name}-{width}x{height}.png"
            self.driver.save_screenshot(str(path))
            paths.append(path)
            # how much wider than the viewport the page is (0: no sideways scrolling)
            self.overflow[width] = self.driver.execute_script(
                "const e = document.documentElement; return e.scrollWidth - e.clientWidth;")
        self.viewport(*DESKTOP)
        return paths

    # -- waiting for what the page shows -------------------------------------------------
    def wait(self, condition: Callable[[Any], Any], what: str, timeout: float = WAIT) -> Any:
        from selenium.common.exceptions import (
            NoSuchElementException,
            StaleElementReferenceException,
        )
        from selenium.webdriver.support.ui import WebDriverWait

        def safe(driver: Any) -> Any:
            try:
                return condition(driver)
            except (StaleElementReferenceException, NoSuchElementException):
                return False  # not there yet, or the page redrew it meanwhile

        try:
            return WebDriverWait(self.driver, timeout, poll_frequency=0.1).until(safe)
        except Exception as exc:
            body = self.driver.find_element("tag name", "body").text
            raise AssertionError(f"the page never showed {what}; it shows:\n{body[:3000]}"
                                 ) from exc

    def css(self, selector: str) -> Any:
        return self.wait(lambda d: d.find_element("css selector", selector), selector)

    def click(self, selector: str) -> None:
        """Click what the selector finds, found again if the page redrew it meanwhile."""
        from selenium.common.exceptions import StaleElementReferenceException

        def clicked(driver: Any) -> bool:
            try:
                driver.find_element("css selector", selector).click()
                return True
            except StaleElementReferenceException:
                return False

        self.wait(clicked, f"{selector} to click")

    def all(self, selector: str) -> list[Any]:
        return self.driver.find_elements("css selector", selector)

    def text_of(self, selector: str) -> str:
        return self.css(selector).text

    def go(self, path: str) -> None:
        self.driver.get(path)

    # -- the console ------------------------------------------------------------------
    def errors(self) -> list[dict[str, Any]]:
        """The SEVERE console entries since the last call, less the tolerated ones."""
        entries = self.driver.get_log("browser")
        self.console.extend(entries)
        return [e for e in entries if e["level"] == "SEVERE" and not self.tolerated(e["message"])]

    def assert_no_console_errors(self) -> None:
        errors = self.errors()
        assert not errors, "console errors:\n" + "\n".join(e["message"] for e in errors)


def start_driver(profile: str) -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--disable-extensions", "--no-first-run",
                f"--user-data-dir={profile}"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=opts)


def browser_for(tolerated: Callable[[str], bool]) -> Iterator[Browser]:
    """A started Browser (for a module-scoped fixture); quit afterwards."""
    require_browser()
    shots = artifacts_dir() / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    profile = tempfile.mkdtemp(prefix="vieter-ui-chromium-")
    driver = start_driver(profile)
    try:
        browser = Browser(driver, shots, tolerated)
        browser.viewport(*DESKTOP)
        yield browser
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
