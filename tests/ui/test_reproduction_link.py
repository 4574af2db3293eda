"""A run made by ``modelrail reproduce`` links, on its dashboard page, to the run it
reproduces, and shows the command line it ran and where; the tracker marks it."""

from __future__ import annotations

from pathlib import Path

from modelrail.client import Client
from modelrail.config import init_project, load_settings
from modelrail.portability.reproduce_plan import REPRODUCTION_TAG
from modelrail.ui import create_app
from tests.ui.conftest import running_ui


def test_a_reproduction_links_to_its_original(tmp_path: Path) -> None:
    init_project(tmp_path)
    settings = load_settings(cwd=tmp_path, environ={}, create=False)
    with Client(settings=settings) as client:
        with client.start_run("churn") as original:
            original.log_metric("accuracy", 0.9)
        with client.start_run("churn") as again:
            again.log_metric("accuracy", 0.9)
        client.runs.set_tags(again.id, {REPRODUCTION_TAG: original.id})
    with running_ui(create_app(settings)) as ui:
        page = ui.get(f"/runs/{again.id}").text
        tracker = ui.get("/").text
        plain = ui.get(f"/runs/{original.id}").text
    assert f'href="/runs/{original.id}" data-testid="reproduction-of">run {original.id[:8]}' in page
    assert 'data-testid="reproduction-of"' not in plain
    assert f"{again.id[:8]} (reproduces {original.id[:8]})" in tracker
