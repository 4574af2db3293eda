"""The tracker in a real browser: sorting by clicking a column header, filtering through the
form, paging, opening a run and comparing two; what the rows show is checked against the
store."""

from __future__ import annotations

import re

from tests.ui.conftest import MODEL, Seeded, UiServer
from tests.ui.test_tracker import Grid
from tests.ui_browser.conftest import require_playwright

require_playwright()

from playwright.sync_api import Locator, Page, expect  # noqa: E402

PAGE_SIZE = 50
DIFFERS_BACKGROUND = "rgb(255, 244, 214)"  # --differs in app.css


def row_ids(page: Page) -> list[str]:
    rows = page.get_by_test_id("tracker-row")
    return [str(i) for i in rows.evaluate_all("rows => rows.map(r => r.dataset.runId)")]


def column(page: Page, name: str) -> list[str]:
    """The text of one column (``data-column``), top to bottom."""
    cells = page.locator(f'[data-testid="tracker-row"] > td[data-column="{name}"]')
    return [text.strip() for text in cells.all_inner_texts()]


def shown_value(text: str) -> float | None:
    """A metric as the tracker shows it: ``97.0%``, ``0.225`` or ``-`` (no value)."""
    if text == "-":
        return None
    return float(text[:-1]) / 100 if text.endswith("%") else float(text)


def row_count(page: Page) -> int:
    return int(page.get_by_test_id("row-count").get_attribute("data-total") or "-1")


def store_metric(seeded: Seeded, key: str) -> dict[str, float | None]:
    """run id -> latest value of ``key`` in the store, for every tracked run."""
    with seeded.client() as client:
        return {i: client.get_run(i).metrics.get(key) for i in seeded.runs.values()}


def expected_order(values: dict[str, float | None], *, descending: bool) -> list[str]:
    """Runs with the metric best-first or worst-first; runs without it go last."""
    present = sorted(
        (i for i, v in values.items() if v is not None),
        key=lambda i: values[i] or 0.0,
        reverse=descending,
    )
    return present + [i for i, v in values.items() if v is None]


def click_to(page: Page, target: Locator, url: str | re.Pattern[str]) -> None:
    """Click, and wait until the page it leads to has loaded."""
    target.click()
    page.wait_for_url(url)


def test_clicking_a_metric_header_sorts_the_rows_and_again_reverses_them(
    page: Page, seeded: Seeded, ui: UiServer
) -> None:
    accuracy = store_metric(seeded, "accuracy")
    page.goto(ui.origin + "/")
    assert row_count(page) == len(seeded.runs) == 6

    header = page.get_by_test_id("sort-metric-accuracy")
    click_to(page, header, re.compile(r"sort=accuracy&order=desc"))  # best (highest) first
    ids = row_ids(page)
    assert ids[:-1] == expected_order(accuracy, descending=True)[:-1]
    assert ids[-1] == seeded.runs["failed"]  # no accuracy: last either way
    shown = [shown_value(t) for t in column(page, "metric-accuracy")]
    values = [v for v in shown if v is not None]
    assert values == sorted(values, reverse=True) and shown[-1] is None
    expect(header).to_contain_text("▼")
    expect(page.locator("th[aria-sort]")).to_have_attribute("aria-sort", "descending")

    click_to(page, header, re.compile(r"sort=accuracy&order=asc"))
    assert row_ids(page) == expected_order(accuracy, descending=False)
    shown = [shown_value(t) for t in column(page, "metric-accuracy")]
    values = [v for v in shown if v is not None]
    assert values == sorted(values) and shown[-1] is None
    expect(page.locator("th[aria-sort]")).to_have_attribute("aria-sort", "ascending")
    # The best value of the column is marked, whichever way the rows are sorted.
    best = page.locator('td[data-testid="metric-accuracy"][data-best="true"]')
    expect(best).to_have_text("97.0%")


def test_a_smaller_is_better_metric_sorts_smallest_first(
    page: Page, seeded: Seeded, ui: UiServer
) -> None:
    loss = store_metric(seeded, "loss")
    page.goto(ui.origin + "/")
    click_to(page, page.get_by_test_id("sort-metric-loss"), re.compile(r"sort=loss&order=asc"))
    ids = row_ids(page)
    with_loss = [i for i in expected_order(loss, descending=False) if loss[i] is not None]
    assert ids[: len(with_loss)] == with_loss
    assert set(ids[len(with_loss) :]) == {i for i, v in loss.items() if v is None}


def test_filtering_by_experiment_and_model_through_the_form(
    page: Page, seeded: Seeded, ui: UiServer
) -> None:
    page.goto(ui.origin + "/")
    page.get_by_test_id("filter-experiment").select_option("wine")
    click_to(page, page.get_by_test_id("filter-apply"), re.compile(r"experiment=wine"))
    wine = {seeded.runs[k] for k in ("wine0", "wine1", "failed")}
    assert row_count(page) == 3 and set(row_ids(page)) == wine
    with seeded.client() as client:
        assert {client.get_run(i).experiment for i in row_ids(page)} == {"wine"}
    expect(page.get_by_test_id("filter-experiment")).to_have_value("wine")  # the form remembers

    click_to(page, page.get_by_test_id("filter-reset"), ui.origin + "/")
    assert row_count(page) == 6
    page.get_by_test_id("filter-model").select_option(MODEL)
    click_to(page, page.get_by_test_id("filter-apply"), re.compile(rf"model={MODEL}"))
    assert row_count(page) == 3
    assert set(row_ids(page)) == {seeded.runs[k] for k in ("v1", "v2", "v3")}
    assert column(page, "model") == [MODEL] * 3
    assert sorted(column(page, "version")) == ["1", "2", "3"]


def test_filtering_by_a_metric_range_through_the_form(
    page: Page, seeded: Seeded, ui: UiServer
) -> None:
    accuracy = store_metric(seeded, "accuracy")
    page.goto(ui.origin + "/")
    page.get_by_test_id("filter-min-accuracy").fill("0.85")
    page.get_by_test_id("filter-max-accuracy").fill("0.96")
    click_to(page, page.get_by_test_id("filter-apply"), re.compile(r"max%3Aaccuracy=0.96"))
    inside = {i for i, v in accuracy.items() if v is not None and 0.85 <= v <= 0.96}
    assert inside == {seeded.runs["v1"], seeded.runs["wine1"]}
    assert row_count(page) == len(inside) and set(row_ids(page)) == inside
    for text in column(page, "metric-accuracy"):
        value = shown_value(text)
        assert value is not None and 0.85 <= value <= 0.96, text
    expect(page.get_by_test_id("filter-min-accuracy")).to_have_value("0.85")

    page.get_by_test_id("filter-min-accuracy").fill("0.99")
    click_to(page, page.get_by_test_id("filter-apply"), re.compile(r"min%3Aaccuracy=0.99"))
    assert row_count(page) == 0
    expect(page.get_by_test_id("row-count")).to_contain_text("no rows match")
    expect(page.get_by_test_id("tracker-row")).to_have_count(0)


def test_filters_and_sorting_combine_on_many_runs(
    page: Page, grid: Grid, grid_ui: UiServer
) -> None:
    page.goto(grid_ui.origin + "/")
    page.get_by_test_id("filter-experiment").select_option("grid")
    page.get_by_test_id("filter-min-accuracy").fill("0.6")
    page.get_by_test_id("filter-max-accuracy").fill("0.7")
    click_to(page, page.get_by_test_id("filter-apply"), re.compile(r"experiment=grid"))
    inside = {
        i for i in grid.ids if grid.experiment[i] == "grid" and 0.6 <= grid.accuracy[i] <= 0.7
    }
    assert 0 < len(inside) < PAGE_SIZE
    assert row_count(page) == len(inside) and set(row_ids(page)) == inside

    click_to(page, page.get_by_test_id("sort-metric-loss"), re.compile(r"sort=loss"))
    ids = row_ids(page)
    assert set(ids) == inside  # the filter is kept
    shown = [grid.loss[i] for i in ids]
    assert shown == sorted(shown)
    expect(page.get_by_test_id("filter-min-accuracy")).to_have_value("0.6")


def test_paging_through_many_runs_keeps_the_sort(page: Page, grid: Grid, grid_ui: UiServer) -> None:
    page.goto(grid_ui.origin + "/")
    assert row_count(page) == len(grid.ids) == 120
    expect(page.get_by_test_id("row-count")).to_contain_text("rows 1\N{EN DASH}50 of 120")
    click_to(page, page.get_by_test_id("sort-metric-accuracy"), re.compile(r"sort=accuracy"))
    best_first = sorted(grid.ids, key=lambda i: (-grid.accuracy[i], i))
    seen: list[str] = []
    seen += row_ids(page)
    expect(page.get_by_test_id("page-current")).to_have_attribute("data-page", "1")

    click_to(page, page.get_by_test_id("page-next"), re.compile(r"page=2"))
    expect(page.get_by_test_id("page-current")).to_have_attribute("data-page", "2")
    seen += row_ids(page)
    click_to(page, page.locator('[data-testid="page-link"][data-page="3"]'), re.compile(r"page=3"))
    expect(page.get_by_test_id("row-count")).to_contain_text("rows 101\N{EN DASH}120 of 120")
    expect(page.get_by_test_id("page-next")).to_have_count(0)
    seen += row_ids(page)

    assert len(seen) == len(set(seen)) == 120  # every run once, none twice
    shown = [grid.accuracy[i] for i in seen]
    assert shown == sorted(shown, reverse=True)
    assert [grid.accuracy[i] for i in best_first] == shown
    click_to(page, page.get_by_test_id("page-prev"), re.compile(r"page=2"))
    assert row_ids(page) == seen[PAGE_SIZE : 2 * PAGE_SIZE]


def test_opening_a_run_from_the_tracker(page: Page, seeded: Seeded, ui: UiServer) -> None:
    run_id = seeded.runs["v3"]
    page.goto(ui.origin + "/")
    row = page.locator(f'[data-testid="tracker-row"][data-run-id="{run_id}"]')
    click_to(page, row.locator('td[data-column="run"] a'), ui.origin + f"/runs/{run_id}")

    expect(page.get_by_test_id("run-id")).to_have_text(run_id[:8])
    expect(page.get_by_test_id("run-facts")).to_contain_text("iris")
    params = page.get_by_test_id("param-row")
    expect(params).to_have_count(2)
    expect(params.filter(has_text="C")).to_contain_text("10.0")
    expect(params.filter(has_text="max_iter")).to_contain_text("200")
    metrics = page.get_by_test_id("metric-row")
    expect(metrics).to_have_count(3)
    expect(page.locator('[data-testid="metric-row"][data-key="accuracy"]')).to_contain_text("97.0%")
    expect(page.locator('[data-testid="metric-row"][data-key="loss"] td').last).to_have_text("8")

    chart = page.locator('svg[data-testid="metric-chart"][data-metric="loss"]')
    expect(chart).to_be_visible()
    box = chart.bounding_box()
    assert box is not None and box["width"] > 300 and box["height"] > 150
    line = chart.locator("polyline, path").first
    line_box = line.bounding_box()
    assert line_box is not None and line_box["width"] > 100  # a curve over the 8 steps

    roles = page.get_by_test_id("component-row").evaluate_all("rs => rs.map(r => r.dataset.role)")
    assert {"code", "params", "data:train", "data:test", "environment"} <= set(roles)
    with seeded.client() as client:
        stored = client.get_run(run_id)
    code = page.locator('[data-testid="component-row"][data-role="code"]')
    expect(code.get_by_test_id("component-fingerprint")).to_have_attribute(
        "title", stored.components["code"].fingerprint
    )
    expect(page.get_by_test_id("model-version-link")).to_have_text(f"{MODEL}:3")
    expect(page.get_by_test_id("deployed-env")).to_have_attribute("data-env", "dev")
    image = page.get_by_test_id("artifact-image")
    expect(image).to_be_visible()
    assert image.evaluate("img => img.complete && img.naturalWidth") == 2  # the PNG was served


def test_comparing_two_runs_ticked_in_the_tracker_highlights_the_differences(
    page: Page, seeded: Seeded, ui: UiServer
) -> None:
    first, second = seeded.runs["v1"], seeded.runs["v2"]
    page.goto(ui.origin + f"/?model={MODEL}&sort=version&order=asc")
    for run_id in (first, second):
        row = page.locator(f'[data-testid="tracker-row"][data-run-id="{run_id}"]')
        row.get_by_test_id("compare-checkbox").check()
    click_to(page, page.get_by_test_id("compare-button"), re.compile(r"/compare\?run="))
    assert page.url.endswith(f"/compare?run={first}&run={second}")

    headers = page.get_by_test_id("compare-run-header")
    assert headers.evaluate_all("hs => hs.map(h => h.dataset.runId)") == [first, second]
    c = page.locator('[data-testid="param-row"][data-key="C"]')
    expect(c).to_have_attribute("data-differs", "true")
    expect(c.locator("td")).to_have_text(["1.0", "0.1"])
    same = page.locator('[data-testid="param-row"][data-key="max_iter"]')
    expect(same).to_have_attribute("data-differs", "false")
    accuracy = page.locator('[data-testid="metric-row"][data-key="accuracy"]')
    expect(accuracy).to_have_attribute("data-differs", "true")
    expect(accuracy.locator('td[data-best="true"]')).to_have_text("95.0%")
    # What differs is highlighted on the screen, not only marked in the markup.
    background = "e => getComputedStyle(e).backgroundColor"
    assert c.locator("th").evaluate(background) == DIFFERS_BACKGROUND
    assert same.locator("th").evaluate(background) != DIFFERS_BACKGROUND
    differing = page.locator('[data-differs="true"]')
    assert differing.count() >= 3
    loss = page.locator('svg[data-testid="metric-chart"][data-metric="loss"]')
    expect(loss.get_by_test_id("chart-legend-item")).to_have_count(2)  # one curve per run


def test_comparing_needs_two_ticked_runs(page: Page, seeded: Seeded, ui: UiServer) -> None:
    page.goto(ui.origin + "/")
    page.get_by_test_id("compare-checkbox").first.check()
    click_to(page, page.get_by_test_id("compare-button"), re.compile(r"/compare"))
    expect(page.get_by_test_id("error-message")).to_have_attribute("data-status", "400")
    expect(page.get_by_test_id("error-message")).to_contain_text("pick at least two runs")
