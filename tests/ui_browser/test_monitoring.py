"""The monitoring page in a real browser: reached from the model page, it shows the drift
chart and the shifted feature in alert, loads nothing the Content-Security-Policy blocks,
and its range form leads to other windows, or to a 400 page naming a bad value."""

from __future__ import annotations

from tests.ui.conftest import MODEL
from tests.ui.test_monitoring_page import Watched, watched
from tests.ui_browser.conftest import Console, require_playwright

require_playwright()

from playwright.sync_api import Page, expect  # noqa: E402

__all__ = ["watched"]


def test_the_monitoring_page_from_the_model_page_and_its_range_form(
    page: Page, console: Console, watched: Watched
) -> None:
    origin = watched.server.origin
    page.goto(f"{origin}/models/{MODEL}")
    page.get_by_test_id("monitoring-link-dev").click()
    expect(page).to_have_url(f"{origin}/models/{MODEL}/monitoring/dev")
    expect(page.locator("h1")).to_have_text(f"Monitoring {MODEL}@dev")
    chart = page.get_by_test_id("drift-chart")
    expect(chart).to_be_visible()
    assert chart.bounding_box() is not None and chart.bounding_box()["width"] > 300  # type: ignore[index]
    shifted = page.locator('[data-testid="drift-row"][data-feature="f0"]')
    expect(shifted.get_by_test_id("status")).to_have_text("alert")
    # The stylesheet applied: an alert is drawn in bold.
    weight = shifted.get_by_test_id("status").evaluate("e => getComputedStyle(e).fontWeight")
    assert weight == "700"
    expect(page.get_by_test_id("live-row").first).to_be_visible()
    assert console.errors == [], console.errors

    page.get_by_test_id("monitoring-since").fill("3d")
    page.get_by_test_id("monitoring-window").fill("12h")
    page.get_by_test_id("monitoring-apply").click()
    expect(page).to_have_url(f"{origin}/models/{MODEL}/monitoring/dev?since=3d&window=12h")
    expect(page.get_by_test_id("window-row")).to_have_count(3)
    page.get_by_text("PSI per window").click()
    expect(page.get_by_test_id("window-row").first).to_be_visible()

    page.get_by_test_id("monitoring-window").fill("soon")
    page.get_by_test_id("monitoring-apply").click()
    error = page.get_by_test_id("error-message")
    expect(error).to_have_attribute("data-status", "400")
    expect(error).to_contain_text("window must be a duration")
