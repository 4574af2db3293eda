"""Fixtures of the browser tests: Playwright driving Debian's Chromium (``/usr/bin/chromium``,
installed by ``.ci/run``; never a browser downloaded by ``playwright install``) against the
real dashboard, served by the helpers of ``tests/ui`` on 127.0.0.1.

One browser is launched for these tests; every test gets a context of its own (no cookies
shared) and a page whose waits are bounded by ``TIMEOUT_MS``. Without Playwright or the
browser the tests are skipped, and fail instead when ``MODELRAIL_TEST_REQUIRE_BROWSER=1``
(CI sets it).

A failed test saves a full-page screenshot of its page to ``.pytest-screenshots/`` at the
root of the repository (or the folder in ``MODELRAIL_TEST_SCREENSHOTS``) and names the file
in its report. With ``MODELRAIL_UPDATE_SCREENSHOTS=1`` the tests also write the README's
pictures to ``docs/screenshots/``.
"""

from __future__ import annotations

import importlib.util
import os
import re
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn, Protocol

import pytest

from modelrail.ui import create_app
from tests.ui.conftest import (  # noqa: F401  (fixtures re-used by import)
    Seeded,
    UiServer,
    fresh,
    running_ui,
    seeded,
    ui,
)
from tests.ui.test_tracker import Grid, make_grid

if TYPE_CHECKING:
    from playwright.sync_api import (
        Browser,
        ConsoleMessage,
        Page,
        Playwright,
        Response,
        ViewportSize,
    )

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("MODELRAIL_TEST_CHROMIUM", "/usr/bin/chromium")
REQUIRE_BROWSER = os.environ.get("MODELRAIL_TEST_REQUIRE_BROWSER") == "1"
UPDATE_SCREENSHOTS = os.environ.get("MODELRAIL_UPDATE_SCREENSHOTS") == "1"
FAILURE_SHOTS = Path(os.environ.get("MODELRAIL_TEST_SCREENSHOTS") or ROOT / ".pytest-screenshots")
README_SHOTS = ROOT / "docs" / "screenshots"
VIEWPORT: ViewportSize = {"width": 1280, "height": 800}
TIMEOUT_MS = 10_000
EVIL_HOST = "evil.example"


def unavailable(reason: str) -> NoReturn:
    """Skip, or fail when CI says the browser tests must run."""
    if REQUIRE_BROWSER:
        pytest.fail(f"{reason} (MODELRAIL_TEST_REQUIRE_BROWSER=1)", pytrace=False)
    pytest.skip(f"{reason}; set MODELRAIL_TEST_REQUIRE_BROWSER=1 to make this a failure")


def require_playwright() -> None:
    """Called by each test module before it imports Playwright: skips (or fails) the module
    when the package is missing."""
    if importlib.util.find_spec("playwright") is None:
        if REQUIRE_BROWSER:
            pytest.fail("playwright is not installed (pip install -e '.[dev]')", pytrace=False)
        pytest.skip("playwright is not installed", allow_module_level=True)


def pytest_report_header(config: pytest.Config) -> str:
    found = "found" if os.access(CHROMIUM, os.X_OK) else "MISSING"
    return f"modelrail: browser tests use {CHROMIUM} ({found})"


# -- the browser -------------------------------------------------------------------------------


# Package scope: launched once for these tests, and stopped before any other test runs, since
# while Playwright's synchronous API is open asyncio.run() fails in this thread.
@pytest.fixture(scope="package")
def playwright() -> Iterator[Playwright]:
    if importlib.util.find_spec("playwright") is None:
        unavailable("playwright is not installed")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="package")
def browser(playwright: Playwright) -> Iterator[Browser]:
    if not os.access(CHROMIUM, os.X_OK):
        unavailable(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    launched = playwright.chromium.launch(
        executable_path=CHROMIUM,
        headless=True,
        # EVIL_HOST stands for a site whose name its owner pointed at this machine (DNS
        # rebinding): see test_guard.py.
        args=["--no-sandbox", f"--host-resolver-rules=MAP {EVIL_HOST} 127.0.0.1"],
        timeout=30_000,
    )
    try:
        yield launched
    finally:
        launched.close()


@dataclass
class Console:
    """What the page reported that a person would not see: console errors, script errors,
    and requests the browser could not complete."""

    errors: list[str] = field(default_factory=list)


@pytest.fixture
def console() -> Console:
    return Console()


@pytest.fixture
def page(browser: Browser, console: Console) -> Iterator[Page]:
    context = browser.new_context(viewport=VIEWPORT, locale="en-GB", timezone_id="UTC")
    context.set_default_timeout(TIMEOUT_MS)
    context.set_default_navigation_timeout(TIMEOUT_MS)
    opened = context.new_page()

    def on_console(message: ConsoleMessage) -> None:
        # A failed load is reported with its address by on_response below (except the
        # favicon the browser asks for on its own, which the dashboard does not have).
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            console.errors.append(message.text)

    def on_response(response: Response) -> None:
        request = response.request
        if response.status >= 400 and request.resource_type != "document":
            console.errors.append(f"{response.status} for {request.url}")

    opened.on("console", on_console)
    opened.on("response", on_response)
    opened.on("pageerror", lambda error: console.errors.append(f"script error: {error}"))
    opened.on(
        "requestfailed", lambda request: console.errors.append(f"request failed: {request.url}")
    )
    try:
        yield opened
    finally:
        context.close()


# -- the dashboards ----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def grid(tmp_path_factory: pytest.TempPathFactory) -> Grid:
    """120 tracked runs (see ``make_grid``): enough for three pages of the tracker."""
    return make_grid(tmp_path_factory.mktemp("browser-grid"))


@pytest.fixture(scope="session")
def grid_ui(grid: Grid) -> Iterator[UiServer]:
    with running_ui(create_app(grid.settings)) as server:
        yield server


# -- screenshots -------------------------------------------------------------------------------


def failure_shot_path(nodeid: str) -> Path:
    """Where the screenshot of the failed test ``nodeid`` goes."""
    name = nodeid.removeprefix("tests/ui_browser/").removesuffix("]")
    return FAILURE_SHOTS / (re.sub(r"[^A-Za-z0-9_.-]+", "-", name)[:150] + ".png")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    opened = getattr(item, "funcargs", {}).get("page")
    if report.failed and report.when == "call" and opened is not None:
        target = failure_shot_path(item.nodeid)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            opened.screenshot(path=str(target), full_page=True, timeout=TIMEOUT_MS)
            note = f"saved to {target} (page {opened.url})"
        except Exception as error:  # a crashed browser must not hide the test's own failure
            note = f"could not be saved to {target}: {error}"
        report.sections.append(("browser screenshot", note))
    return report


class ReadmeShot(Protocol):
    def __call__(self, name: str, *, height: int = ...) -> None: ...


@pytest.fixture
def readme_shot(page: Page) -> ReadmeShot:
    """``readme_shot(name)`` writes what the page shows now (1280 pixels wide, the top
    ``height`` pixels, 800 unless told) to ``docs/screenshots/NAME.png`` when
    ``MODELRAIL_UPDATE_SCREENSHOTS=1``; otherwise it does nothing."""

    def take(name: str, *, height: int = VIEWPORT["height"]) -> None:
        if not UPDATE_SCREENSHOTS:
            return
        README_SHOTS.mkdir(parents=True, exist_ok=True)
        page.set_viewport_size({"width": VIEWPORT["width"], "height": height})
        try:
            page.screenshot(path=str(README_SHOTS / f"{name}.png"), animations="disabled")
        finally:
            page.set_viewport_size(VIEWPORT)

    return take
