"""Headless Chromium for the end-to-end tests: Playwright for Python driving Debian's
``/usr/bin/chromium`` (package ``chromium``) through ``executable_path``. Playwright's own browser
download (``playwright install``) is never used.

Fixture ``browser_page`` (function scope): a page in a fresh browser with its own user-data
directory, closed after the test. Without Chromium (or Playwright) the tests fail when ``CI`` is
set (CI must run them) and are skipped otherwise.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import ConsoleMessage, Page, Playwright, Response

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
ARTIFACTS = Path(__file__).parent / "artifacts"


def _unavailable(why: str) -> NoReturn:
    if os.environ.get("CI"):
        pytest.fail(f"{why} (CI must run the browser tests)", pytrace=False)
    pytest.skip(why)


@pytest.fixture(scope="session")
def playwright_driver() -> Iterator[Playwright]:
    """One Playwright driver per session (it is a Node process of its own)."""
    if not CHROMIUM.exists():
        _unavailable(f"{CHROMIUM} is missing: apt-get install -y chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright is not installed: pip install -e '.[test]'")
    with sync_playwright() as driver:
        yield driver


@pytest.fixture
def browser_page(playwright_driver: Playwright) -> Iterator[Page]:
    """A page in a fresh headless Chromium (new user-data directory: no cookies carried over)."""
    with tempfile.TemporaryDirectory(prefix="e2e-chromium-") as profile:
        context = playwright_driver.chromium.launch_persistent_context(
            profile,
            executable_path=str(CHROMIUM),
            headless=True,
            args=list(CHROMIUM_ARGS),
            viewport={"width": 1280, "height": 1000},
        )
        try:
            page = context.pages[0] if context.pages else context.new_page()
            yield page
        finally:
            context.close()


@pytest.fixture
def page_errors(browser_page: Page) -> list[str]:
    """Console errors of the page (a CSP violation is one: no inline script or style) and
    failed sub-resource loads, by URL. The browser's own favicon probe is not the page's."""
    errors: list[str] = []

    def console(message: ConsoleMessage) -> None:
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            errors.append(message.text)

    def response(answer: Response) -> None:
        if answer.status >= 400 and not answer.url.endswith("/favicon.ico"):
            errors.append(f"{answer.status} {answer.url}")

    browser_page.on("console", console)
    browser_page.on("response", response)
    return errors


def screenshot(page: Page, name: str) -> Path:
    """Save a full-page screenshot as tests/artifacts/<name>.png (gitignored) and return it."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
