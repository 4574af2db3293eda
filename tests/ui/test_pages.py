"""Every page of the dashboard renders the seeded project, and loads nothing from elsewhere."""

from __future__ import annotations

import re
import sys
from html import unescape
from pathlib import Path

import numpy as np
import pytest

from modelrail.ui import create_app
from tests.conftest import POSTGRES_URL, REQUIRE_POSTGRES, postgres_schema_url
from tests.flavors.test_python_code import linear
from tests.test_pickle_policy import Halves
from tests.ui.conftest import (
    FEATURES,
    MODEL,
    Reply,
    Seeded,
    UiServer,
    frame,
    project_settings,
    running_ui,
    seed_everything,
    seed_models,
    tiny_png,
)

_REFERENCE = re.compile(r'\b(?:src|href|action|srcset|xlink:href)="([^"]*)"')


def rows(reply: Reply, test_id: str, attribute: str) -> list[str]:
    """The ``attribute`` of every element with ``test_id``, in page order."""
    pattern = rf'data-testid="{re.escape(test_id)}"[^>]*?\b{attribute}="([^"]*)"'
    return [unescape(value) for value in re.findall(pattern, reply.text)]


def pairs(reply: Reply, test_id: str, key: str, value: str) -> dict[str, str]:
    """``key`` to ``value`` of every element with ``test_id``."""
    return dict(zip(rows(reply, test_id, key), rows(reply, test_id, value), strict=True))


def page_paths(seeded: Seeded) -> list[str]:
    runs = seeded.runs
    return [
        "/",
        f"/runs/{runs['v1']}",
        f"/runs/{runs['failed'][:8]}",
        f"/compare?run={runs['v1']}&run={runs['v3']}",
        "/models",
        f"/models/{MODEL}",
        f"/models/{MODEL}/promote?version=3&to=staging",
        f"/models/{MODEL}/rollback?env=dev",
        "/batch",
        f"/batch/{seeded.batch_ok}",
        f"/batch/{seeded.batch_failed}",
        "/login",
    ]


def test_every_page_renders_the_seeded_project(ui: UiServer, seeded: Seeded) -> None:
    for path in page_paths(seeded):
        reply = ui.get(path)
        assert reply.status == 200, (path, reply.text[-800:])
        assert reply.headers["content-type"].startswith("text/html"), path
        assert 'data-testid="error-message"' not in reply.text, path
        assert "acting as <strong>alice</strong>" in reply.text, path


def test_an_empty_project_renders_every_list(tmp_path: Path) -> None:
    with running_ui(create_app(project_settings(tmp_path))) as server:
        tracker = server.get("/")
        assert tracker.status == 200 and "no rows match" in tracker.text
        assert "No model registered yet" in server.get("/models").text
        batch = server.get("/batch")
        assert "No schedules" in batch.text and "No batch run" in batch.text


def test_pages_reference_nothing_outside_the_app(ui: UiServer, seeded: Seeded) -> None:
    for path in page_paths(seeded):
        reply = ui.get(path)
        for target in _REFERENCE.findall(reply.text):
            assert not re.match(r"^(?:[a-z][a-z0-9+.-]*:|//)", target, re.IGNORECASE), (
                f"{path} references {target!r}"
            )
        assert "<script" not in reply.text, path
        csp = reply.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "style-src 'self'" in csp
    css = ui.get("/static/app.css")
    assert css.status == 200
    assert css.headers["content-type"].startswith("text/css")
    assert "url(" not in css.text and "@import" not in css.text


def test_tracker_shows_versions_components_and_the_best_metric(
    ui: UiServer, seeded: Seeded
) -> None:
    reply = ui.get("/?experiment=iris")
    assert rows(reply, "tracker-row", "data-run-id") == [
        seeded.runs["v3"],
        seeded.runs["v2"],
        seeded.runs["v1"],
    ]
    assert 'data-testid="row-count" data-total="3"' in reply.text
    assert reply.count("compare-checkbox") == 3 and reply.count("compare-button") == 1
    best = re.findall(r'data-testid="metric-([\w-]+)" data-best="true">\s*([^<]+?)\s*<', reply.text)
    # Larger accuracy, smaller false positive rate (capped by prod's gate) and loss (by name).
    assert ("accuracy", "97.0%") in best
    assert ("false_positive_rate", "2.0%") in best
    assert ("loss", "0.126") in best
    for test_id in ("sort-model", "sort-version", "sort-train", "sort-metric-accuracy"):
        assert reply.count(test_id) == 1, test_id


def test_run_page_shows_everything_about_the_run(ui: UiServer, seeded: Seeded) -> None:
    run_id = seeded.runs["v1"]
    reply = ui.get(f"/runs/{run_id}")
    text = reply.text
    assert rows(reply, "param-row", "data-key") == ["C", "max_iter"]
    assert rows(reply, "metric-row", "data-key") == ["accuracy", "false_positive_rate", "loss"]
    assert rows(reply, "component-row", "data-role") == [
        "code",
        "data:train",
        "data:test",
        "params",
        "environment",
    ]
    assert reply.count("component-fingerprint") == 5
    assert 'data-testid="metric-chart" data-metric="loss"' in text
    assert "<polyline" in text and "step" in text
    assert reply.count("package-row") > 10
    assert 'data-package="scikit-learn"' in text
    assert rows(reply, "artifact-row", "data-path") == [
        "confusion.png",
        "modelrail/profiles/test.json",  # the logged datasets' profiles
        "modelrail/profiles/train.json",
        "notes.txt",
    ]
    assert f'src="/runs/{run_id}/artifacts/confusion.png?inline=1"' in text
    assert reply.count("git-commit") == 1
    assert f'href="/models/{MODEL}#version-1" data-testid="model-version-link"' in text
    assert rows(reply, "deployed-env", "data-env") == ["staging"]


def test_artifacts_download_verified_and_images_show_inline(ui: UiServer, seeded: Seeded) -> None:
    base = f"/runs/{seeded.runs['v1']}/artifacts"
    notes = ui.get(f"{base}/notes.txt")
    assert notes.status == 200 and notes.body == b"C=1.0\n"
    assert notes.headers["content-disposition"].startswith("attachment")
    image = ui.get(f"{base}/confusion.png?inline=1")
    assert image.status == 200 and image.body == tiny_png()
    assert image.headers["content-type"] == "image/png"
    assert image.headers["content-disposition"].startswith("inline")
    assert "sandbox" in image.headers["content-security-policy"]
    missing = ui.get(f"{base}/nothing.txt")
    assert missing.status == 404 and 'data-testid="error-message"' in missing.text


def test_failed_run_shows_its_error(ui: UiServer, seeded: Seeded) -> None:
    reply = ui.get(f"/runs/{seeded.runs['failed']}")
    assert 'data-testid="run-error"' in reply.text
    assert "the data ran out" in reply.text


def test_compare_highlights_what_differs_and_overlays_the_curves(
    ui: UiServer, seeded: Seeded
) -> None:
    reply = ui.get(f"/compare?run={seeded.runs['v1']}&run={seeded.runs['v3']}")
    differs = pairs(reply, "component-row", "data-key", "data-differs")
    assert differs == {
        "code": "false",
        "data:train": "true",
        "data:test": "false",
        "params": "true",
        "environment": "false",
    }
    params = pairs(reply, "param-row", "data-key", "data-differs")
    assert params == {"C": "true", "max_iter": "false"}
    assert "same schema, rows 120 -&gt; 150" in reply.text
    assert reply.count("compare-run-header") == 2
    assert 'data-testid="metric-chart" data-metric="loss"' in reply.text
    assert reply.count("chart-legend-item") == 2
    assert reply.text.count("<polyline") == 2
    assert 'data-testid="same-packages"' in reply.text


def test_compare_takes_three_runs(ui: UiServer, seeded: Seeded) -> None:
    runs = seeded.runs
    reply = ui.get(f"/compare?run={runs['v1']}&run={runs['v2'][:8]}&run={runs['v3']}")
    assert reply.status == 200
    assert reply.count("compare-run-header") == 3
    assert reply.count("chart-legend-item") == 3


def test_models_board_shows_each_environment_and_waiting_requests(ui: UiServer) -> None:
    reply = ui.get("/models")
    cells = pairs(reply, "board-cell", "data-env", "data-version")
    assert cells == {"dev": "3", "staging": "1", "prod": ""}


def test_model_page_shows_board_versions_and_the_timeline(ui: UiServer) -> None:
    reply = ui.get(f"/models/{MODEL}")
    assert rows(reply, "env-column", "data-env") == ["dev", "staging", "prod"]
    assert rows(reply, "version-row", "data-version") == ["3", "2", "1"]
    assert rows(reply, "history-event", "data-action") == ["promote", "auto", "auto", "auto"]
    assert reply.count("promote-suggestion-staging") == 1  # dev's 3 could go to staging
    assert reply.count("promote-suggestion-prod") == 1
    assert reply.count("rollback-button-dev") == 1
    assert reply.count("rollback-button-prod") == 0  # prod holds nothing
    assert reply.count("promote-button") == 1
    # Which predictor serves one row and batches, verified on how many rows (issue 16).
    assert reply.count("version-predictor") == 3
    assert reply.text.count("verified on ") == 3 and "one row: " in reply.text


def test_batch_page_lists_runs_and_schedules(ui: UiServer, seeded: Seeded) -> None:
    reply = ui.get("/batch")
    statuses = pairs(reply, "batch-run-row", "data-run-id", "data-status")
    assert statuses == {seeded.batch_ok: "succeeded", seeded.batch_failed: "failed"}
    assert rows(reply, "schedule-row", "data-name") == ["nightly"]
    assert "CET" in reply.text or "CEST" in reply.text  # the next run in the schedule's zone
    assert "is missing" in reply.text  # the failed run's error
    failed_only = ui.get("/batch?status=failed")
    assert rows(failed_only, "batch-run-row", "data-run-id") == [seeded.batch_failed]


@pytest.mark.parametrize("which", ["ok", "failed"])
def test_batch_run_page_shows_rows_duration_and_error(
    ui: UiServer, seeded: Seeded, which: str
) -> None:
    run_id = seeded.batch_ok if which == "ok" else seeded.batch_failed
    reply = ui.get(f"/batch/{run_id[:8]}")
    assert reply.status == 200
    assert run_id in reply.text
    if which == "ok":
        assert re.search(r'data-testid="batch-rows-written">64<', reply.text)
        assert 'data-testid="batch-error"' not in reply.text
    else:
        assert 'data-testid="batch-error"' in reply.text
        assert "input column &#39;f3&#39; is missing" in reply.text


@pytest.mark.postgres
def test_every_page_renders_from_a_postgresql_store(tmp_path: Path) -> None:
    if not POSTGRES_URL:
        if REQUIRE_POSTGRES:
            pytest.fail(
                "MODELRAIL_TEST_REQUIRE_POSTGRES=1 but MODELRAIL_TEST_POSTGRES_URL is unset"
            )
        pytest.skip("set MODELRAIL_TEST_POSTGRES_URL to run the PostgreSQL variant")
    for store_url in postgres_schema_url(POSTGRES_URL):
        seeded = seed_everything(tmp_path, store_url=store_url)
        with running_ui(create_app(seeded.settings)) as server:
            for path in page_paths(seeded):
                reply = server.get(path)
                assert reply.status == 200, (path, reply.text[-800:])
            filtered = server.get("/?experiment=iris&min%3Aaccuracy=0.9&tag=team%3Dred")
            assert filtered.count("tracker-row") == 2
            visitor = server.visitor()
            promoted = visitor.post(f"/models/{MODEL}/promote", {"version": "3", "to": "staging"})
            assert promoted.status == 303
            failed = visitor.post(f"/models/{MODEL}/promote", {"version": "2", "to": "staging"})
            assert failed.status == 422


def test_names_and_values_from_runs_are_escaped(tmp_path: Path) -> None:
    from modelrail.client import Client

    settings = project_settings(tmp_path)
    with Client(settings=settings) as client:
        with client.start_run("xss", tags={"note": '"><script>alert(1)</script>'}) as run:
            run.log_params({"p": "<img src=x onerror=alert(2)>"})
            for step in range(3):
                run.log_metric("<b>loss</b>", 1.0 / (step + 1), step=step)
        run_id = run.id
    with running_ui(create_app(settings)) as server:
        for path in (
            "/?metric=%3Cb%3Eloss%3C%2Fb%3E",
            f"/runs/{run_id}",
            f"/compare?run={run_id}&run={run_id[:8]}",
        ):
            reply = server.get(path)
            assert "<script>" not in reply.text and "<img src=x" not in reply.text, path
            assert "<b>loss" not in reply.text, path
        assert "&lt;b&gt;loss&lt;/b&gt;" in server.get(f"/runs/{run_id}").text


def test_model_page_says_which_versions_run_a_pickle_or_shipped_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    seeded = seed_models(tmp_path / "project")
    inputs = frame(5, seed=1)[list(FEATURES)]
    source, custom = linear(tmp_path / "src")
    # Gone for good (monkeypatch.delitem would put it back): later tests import a my_model of
    # their own, and a module left here would be found in its place.
    del sys.modules["my_model"]
    custom.weights = np.ones(len(FEATURES))
    with seeded.client() as client:
        for options in ({"allow_pickle": True}, {"code_paths": [source]}):
            model = Halves() if "allow_pickle" in options else custom
            with client.start_run("iris") as run:
                run.log_metrics({"accuracy": 0.95, "false_positive_rate": 0.1})
                run.log_model(model, MODEL, input_example=inputs, **options)
        client.promote(f"{MODEL}:4", "staging", reason="try the pickle")
    with running_ui(create_app(seeded.settings)) as server:
        page = server.get(f"/models/{MODEL}")
        assert rows(page, "version-row", "data-version") == ["5", "4", "3", "2", "1"]
        assert rows(page, "version-loading", "data-risk") == [
            "shipped code",
            "pickle",
            "none",
            "none",
            "none",
        ]
        assert "unsafe: pickle" in page.text and "runs shipped code" in page.text
        assert "safe (skops)" in page.text
        prod = re.search(r'data-env="prod">(.*?)</section>', page.text, re.DOTALL)
        assert prod is not None and "no pickle" in prod.group(1)
        check = server.get(f"/models/{MODEL}/promote?version=4&to=prod")
        assert pairs(check, "gate-row", "data-gate", "data-passed")["safe format"] == "false"
        assert "joblib pickle: unsafe to load; allow_pickle = false in prod" in check.text
