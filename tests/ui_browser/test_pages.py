"""Every page of the dashboard in a real browser: it loads with its stylesheet, nothing is
blocked by the Content-Security-Policy, and it shows what the store holds; a wrong URL is a
readable error page with its status."""

from __future__ import annotations

import pytest

from tests.ui.conftest import MODEL, Seeded, UiServer
from tests.ui_browser.conftest import Console, ReadmeShot, require_playwright

require_playwright()

from playwright.sync_api import Page, expect  # noqa: E402


def pages(seeded: Seeded) -> dict[str, tuple[str, str, str]]:
    """name -> (path, heading, a data-testid the page must show)."""
    runs = seeded.runs
    return {
        "tracker": ("/", "Model tracker", "tracker-table"),
        "run": (f"/runs/{runs['v3']}", "Run", "components-table"),
        "compare": (f"/compare?run={runs['v1']}&run={runs['v2']}", "Compare 2 runs", "param-row"),
        "models": ("/models", "Models", "models-board"),
        "model": (f"/models/{MODEL}", f"Model {MODEL}", "history-event"),
        "batch": ("/batch", "Batch scoring", "batch-runs-table"),
        "batch-run": (f"/batch/{seeded.batch_ok}", "Batch run", "batch-run-facts"),
        "batch-run-failed": (f"/batch/{seeded.batch_failed}", "Batch run", "batch-error"),
        "login": ("/login", "Sign in", "login-nobody"),
    }


# The README's pictures of these pages (docs/screenshots/NAME.png) and their heights, the
# run's down to its metric curve; test_actions.py takes the model page with its history and
# the gates shown before a promotion.
README_PICTURES = {"tracker": 800, "run": 1040, "compare": 800, "batch": 800}


@pytest.mark.parametrize(
    "name",
    [
        "tracker",
        "run",
        "compare",
        "models",
        "model",
        "batch",
        "batch-run",
        "batch-run-failed",
        "login",
    ],
)
def test_each_page_loads_styled_and_unblocked(
    name: str,
    page: Page,
    console: Console,
    seeded: Seeded,
    ui: UiServer,
    readme_shot: ReadmeShot,
) -> None:
    path, heading, test_id = pages(seeded)[name]
    response = page.goto(ui.origin + path)
    assert response is not None and response.status == 200
    expect(page.locator("h1")).to_contain_text(heading)
    expect(page.get_by_test_id(test_id).first).to_be_visible()
    assert page.title().endswith("· modelrail")
    # The stylesheet applied: the top bar is laid out by app.css, not the browser's default.
    assert page.locator("header.top").evaluate("e => getComputedStyle(e).display") == "flex"
    assert console.errors == [], console.errors
    if name in README_PICTURES:
        readme_shot(name, height=README_PICTURES[name])


def test_the_navigation_links_lead_to_each_section(page: Page, ui: UiServer) -> None:
    page.goto(ui.origin + "/")
    expect(page.get_by_test_id("nav-tracker")).to_have_class("current")
    page.get_by_test_id("nav-models").click()
    expect(page).to_have_url(ui.origin + "/models")
    expect(page.get_by_test_id("nav-models")).to_have_class("current")
    page.get_by_test_id("nav-batch").click()
    expect(page).to_have_url(ui.origin + "/batch")
    page.get_by_test_id("nav-tracker").click()
    expect(page.get_by_test_id("tracker-table")).to_be_visible()


def test_an_unknown_run_is_a_404_page_that_says_so(page: Page, ui: UiServer) -> None:
    response = page.goto(ui.origin + "/runs/" + "0" * 32)
    assert response is not None and response.status == 404
    expect(page).to_have_title("Not found · modelrail")
    error = page.get_by_test_id("error-message")
    expect(error).to_have_attribute("data-status", "404")
    expect(error).to_contain_text("404")
    expect(error).to_contain_text("0" * 8)  # it names the run that was asked for
    page.get_by_test_id("error-home-link").click()
    expect(page.get_by_test_id("tracker-table")).to_be_visible()


def test_an_unknown_page_and_a_bad_filter_are_error_pages(page: Page, ui: UiServer) -> None:
    response = page.goto(ui.origin + "/no/such/page")
    assert response is not None and response.status == 404
    expect(page.get_by_test_id("error-message")).to_contain_text("there is no such page")
    response = page.goto(ui.origin + "/?min:accuracy=lots")
    assert response is not None and response.status == 400
    expect(page.get_by_test_id("error-message")).to_contain_text("min:accuracy must be a number")


def test_the_batch_pages_show_the_runs_and_a_failure(
    page: Page, seeded: Seeded, ui: UiServer
) -> None:
    page.goto(ui.origin + "/batch")
    rows = page.get_by_test_id("batch-run-row")
    expect(rows).to_have_count(2)
    expect(page.get_by_test_id("schedule-row")).to_have_attribute("data-name", "nightly")
    ok = page.locator(f'[data-testid="batch-run-row"][data-run-id="{seeded.batch_ok}"]')
    expect(ok.get_by_test_id("batch-rows-written")).to_have_text("64")

    page.get_by_test_id("batch-filter-status").select_option("failed")
    page.get_by_role("button", name="Show").click()
    expect(page).to_have_url(ui.origin + "/batch?status=failed")
    expect(rows).to_have_count(1)
    rows.get_by_test_id("batch-run-link").click()
    expect(page).to_have_url(ui.origin + f"/batch/{seeded.batch_failed}")
    expect(page.get_by_test_id("status").first).to_have_text("failed")
    expect(page.get_by_test_id("batch-error")).to_contain_text("f3")
