"""A failing browser test saves a screenshot of its page and names the file in its report:
checked by running a test that fails, with these fixtures, in a pytest of its own."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.ui_browser.conftest import ROOT, require_playwright

require_playwright()

from playwright.sync_api import Browser  # noqa: E402

FAILING_TEST = """
from playwright.sync_api import Page


def test_the_page_is_not_what_was_expected(page: Page) -> None:
    page.set_content("<h1>Something else</h1>")
    assert page.inner_text("h1") == "Model tracker"


def test_no_page_no_screenshot() -> None:
    assert 1 == 2
"""


def test_a_failing_browser_test_saves_a_screenshot_and_reports_it(
    tmp_path: Path, browser: Browser
) -> None:
    (tmp_path / "test_fails.py").write_text(FAILING_TEST, encoding="utf-8")
    (tmp_path / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
    shots = tmp_path / "shots"
    env = {**os.environ, "MODELRAIL_TEST_SCREENSHOTS": str(shots), "PYTHONPATH": str(ROOT)}
    env.pop("MODELRAIL_UPDATE_SCREENSHOTS", None)
    plugins = ["-p", "tests.ui_browser.conftest", "-p", "no:cacheprovider"]
    config = ["-c", str(tmp_path / "pytest.ini"), "--rootdir", str(tmp_path)]
    done = subprocess.run(
        [sys.executable, "-m", "pytest", *plugins, *config, str(tmp_path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "2 failed" in done.stdout, done.stdout
    saved = sorted(shots.iterdir())
    assert [p.name for p in saved] == ["test_fails.py-test_the_page_is_not_what_was_expected.png"]
    assert saved[0].read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert saved[0].stat().st_size > 1000
    assert "browser screenshot" in done.stdout
    assert f"saved to {saved[0]}" in done.stdout
