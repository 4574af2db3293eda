"""The tracker page sorts, filters and pages on the server, and stays fast at 10,000 runs."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from html import unescape
from pathlib import Path

import pytest

from modelrail.client import Client
from modelrail.config import Settings
from modelrail.ui import create_app
from tests.ui.conftest import UiServer, project_settings, running_ui

PAGE_SIZE = 50


@dataclass(frozen=True)
class Grid:
    """120 runs: 100 in experiment ``grid``, 20 in ``other``; newest last in ``ids``."""

    settings: Settings
    ids: list[str]
    accuracy: dict[str, float]
    loss: dict[str, float]
    experiment: dict[str, str]
    parity: dict[str, str]


def make_grid(root: Path, count: int = 120) -> Grid:
    settings = project_settings(root)
    ids: list[str] = []
    accuracy: dict[str, float] = {}
    loss: dict[str, float] = {}
    experiment: dict[str, str] = {}
    parity: dict[str, str] = {}
    with Client(settings=settings) as client:
        for i in range(count):
            name = "grid" if i < 100 else "other"
            tag = "even" if i % 2 == 0 else "odd"
            with client.start_run(name, tags={"parity": tag}) as run:
                run.log_params({"i": i})
                run.log_metrics(
                    {"accuracy": 0.5 + (i * 37 % 100) / 250, "loss": (i * 53 % 97) / 97}
                )
                ids.append(run.id)
                accuracy[run.id] = 0.5 + (i * 37 % 100) / 250
                loss[run.id] = (i * 53 % 97) / 97
                experiment[run.id] = name
                parity[run.id] = tag
    return Grid(settings, ids, accuracy, loss, experiment, parity)


@pytest.fixture(scope="module")
def grid(tmp_path_factory: pytest.TempPathFactory) -> Grid:
    return make_grid(tmp_path_factory.mktemp("ui-grid"))


@pytest.fixture(scope="module")
def grid_ui(grid: Grid) -> Iterator[UiServer]:
    with running_ui(create_app(grid.settings)) as server:
        yield server


def row_ids(text: str) -> list[str]:
    return re.findall(r'data-testid="tracker-row" data-run-id="([0-9a-f]{32})"', text)


def total(text: str) -> int:
    found = re.search(r'data-testid="row-count" data-total="(\d+)"', text)
    assert found is not None
    return int(found.group(1))


def sort_link(text: str, test_id: str) -> str:
    found = re.search(rf'href="([^"]+)" data-testid="{re.escape(test_id)}"', text)
    assert found is not None, test_id
    return unescape(found.group(1))


def test_default_order_is_newest_first_fifty_a_page(grid_ui: UiServer, grid: Grid) -> None:
    reply = grid_ui.get("/")
    assert reply.status == 200
    assert row_ids(reply.text) == list(reversed(grid.ids))[:PAGE_SIZE]
    assert total(reply.text) == 120


def test_clicking_a_metric_header_sorts_on_the_server_and_toggles(
    grid_ui: UiServer, grid: Grid
) -> None:
    first = grid_ui.get("/")
    link = sort_link(first.text, "sort-metric-accuracy")
    assert "sort=accuracy" in link and "order=desc" in link  # larger is better: largest first
    descending = grid_ui.get(link)
    ids = row_ids(descending.text)
    values = [grid.accuracy[i] for i in ids]
    assert values == sorted(grid.accuracy.values(), reverse=True)[:PAGE_SIZE]
    assert 'aria-sort="descending"' in descending.text
    toggled = sort_link(descending.text, "sort-metric-accuracy")
    assert "order=asc" in toggled
    ascending = grid_ui.get(toggled)
    values = [grid.accuracy[i] for i in row_ids(ascending.text)]
    assert values == sorted(grid.accuracy.values())[:PAGE_SIZE]


def test_a_lower_is_better_metric_sorts_smallest_first_on_the_first_click(
    grid_ui: UiServer, grid: Grid
) -> None:
    link = sort_link(grid_ui.get("/").text, "sort-metric-loss")
    assert "order=asc" in link
    values = [grid.loss[i] for i in row_ids(grid_ui.get(link).text)]
    assert values == sorted(grid.loss.values())[:PAGE_SIZE]


def best_cells(text: str) -> dict[str, str]:
    return dict(re.findall(r'data-testid="metric-(\w+)" data-best="true">\s*([^<]+?)\s*<', text))


def test_best_value_is_marked_over_every_matching_row(grid_ui: UiServer, grid: Grid) -> None:
    grid_runs = [i for i in grid.ids if grid.experiment[i] == "grid"]
    by_accuracy = grid_ui.get("/?experiment=grid&sort=accuracy&order=desc").text
    top = max(grid.accuracy[i] for i in grid_runs)
    assert best_cells(by_accuracy)["accuracy"] == f"{top * 100:.1f}%"
    assert grid.accuracy[row_ids(by_accuracy)[0]] == top
    # The best is over all 100 rows, not per page: page 2 has no best accuracy.
    second = grid_ui.get("/?experiment=grid&sort=accuracy&order=desc&page=2").text
    assert "accuracy" not in best_cells(second)
    by_loss = grid_ui.get("/?experiment=grid&sort=loss&order=asc").text
    assert best_cells(by_loss)["loss"] == f"{min(grid.loss[i] for i in grid_runs):.4g}"


def test_filters_by_experiment_metric_range_and_tag(grid_ui: UiServer, grid: Grid) -> None:
    other = grid_ui.get("/?experiment=other")
    assert total(other.text) == 20
    assert {grid.experiment[i] for i in row_ids(other.text)} == {"other"}

    ranged = grid_ui.get("/?min%3Aaccuracy=0.6&max%3Aaccuracy=0.7&experiment=grid")
    expected = [
        i for i in grid.ids if grid.experiment[i] == "grid" and 0.6 <= grid.accuracy[i] <= 0.7
    ]
    assert total(ranged.text) == len(expected) > 0
    assert set(row_ids(ranged.text)) == set(expected)
    assert 'name="min:accuracy" value="0.6"' in ranged.text  # the form keeps what was typed

    tagged = grid_ui.get("/?tag=parity%3Deven&metric=loss")
    assert total(tagged.text) == 60
    assert {grid.parity[i] for i in row_ids(tagged.text)} == {"even"}
    assert 'data-testid="sort-metric-loss"' in tagged.text
    assert 'data-testid="sort-metric-accuracy"' not in tagged.text  # only the chosen column

    nothing = grid_ui.get("/?min%3Aaccuracy=5")
    assert nothing.status == 200 and total(nothing.text) == 0


def test_pages_hold_different_rows_and_link_to_each_other(grid_ui: UiServer, grid: Grid) -> None:
    first = grid_ui.get("/?sort=accuracy&order=desc")
    assert 'data-testid="page-next"' in first.text
    assert 'data-testid="page-prev"' not in first.text
    second = grid_ui.get(sort_link(first.text, "page-next"))
    third = grid_ui.get("/?sort=accuracy&order=desc&page=3")
    pages = [row_ids(first.text), row_ids(second.text), row_ids(third.text)]
    assert [len(p) for p in pages] == [50, 50, 20]
    assert len({i for p in pages for i in p}) == 120
    assert 'data-testid="page-current" data-page="2"' in second.text
    assert "sort=accuracy" in sort_link(second.text, "page-prev")
    assert grid_ui.get("/?page=4").status == 404


def test_component_columns_sort_by_their_label(grid_ui: UiServer) -> None:
    text = grid_ui.get("/").text
    link = sort_link(text, "sort-params")
    assert "sort=component%3Aparams" in link
    assert grid_ui.get(link).status == 200


@pytest.mark.slow
def test_tracker_page_renders_in_under_half_a_second_with_10000_runs(tmp_path: Path) -> None:
    start = time.perf_counter()
    grid = make_grid(tmp_path, count=10_000)
    created = time.perf_counter() - start
    paths = [
        "/",
        "/?sort=accuracy&order=desc",
        "/?sort=loss&order=asc&page=150",
        "/?min%3Aaccuracy=0.6&max%3Aaccuracy=0.8&tag=parity%3Dodd",
        "/?experiment=grid&sort=component%3Aparams",
        "/?sort=version&page=200",
    ]
    with running_ui(create_app(grid.settings)) as server:
        assert server.get("/").status == 200  # opens the store
        timings = {}
        for path in paths:
            # The best of three: one request can meet a stall of the shared machine (one in CI
            # took 0.52 s where the page takes 0.03-0.07 s); a page that is slow stays slow.
            tries = []
            for _ in range(3):
                began = time.perf_counter()
                reply = server.get(path)
                tries.append(time.perf_counter() - began)
                assert reply.status == 200, path
                assert total(reply.text) > 0, path
            timings[path] = min(tries)
    slow = {path: round(seconds, 3) for path, seconds in timings.items() if seconds >= 0.5}
    assert not slow, f"pages slower than 0.5 s with 10,000 runs: {slow} (made in {created:.1f} s)"
