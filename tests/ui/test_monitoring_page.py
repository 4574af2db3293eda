"""The monitoring page of a model in an environment: drift per feature over time, the
prediction distribution against the reference, live metrics against the test-time values,
which version was serving; its range parameters validated (400 naming the parameter), plain
words when nothing was logged, nothing is labelled or there is no reference profile; reading
it needs signing in where the store has users. Real Parquet logs, real registered versions,
the real dashboard over HTTP."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from html import unescape
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from sklearn.linear_model import LogisticRegression

from modelrail.config import Settings
from modelrail.monitoring import logfiles
from modelrail.ui import create_app
from tests.server.conftest import MODEL as SERVER_MODEL
from tests.server.conftest import Team, register, team
from tests.ui.conftest import (
    FEATURES,
    MODEL,
    Reply,
    Seeded,
    UiServer,
    frame,
    running_ui,
    seed_models,
)
from tests.ui.test_pages import pairs, rows
from tests.ui.test_ui_identity import TeamUi, sign_in, team_project
from tests.ui.test_ui_through_server import dashboard

__all__ = ["dashboard", "team"]  # fixtures of the team server and its dashboard

DAY = 86_400.0
PLAIN = "plain-clf"  # a model registered without data: no reference profile
DEV = f"/models/{MODEL}/monitoring/dev"


def log_requests(
    settings: Settings,
    *,
    model: str = MODEL,
    version: int,
    environment: str,
    at: float,
    count: int,
    shift: float = 0.0,
    predictions: Sequence[str] | None = None,
    source: str = "serve",
    seed: int = 0,
) -> list[str]:
    """``count`` logged single-row requests at ``at``; their request ids."""
    ids = [f"{environment}-{version}-{at:.0f}-{source}-{i}" for i in range(count)]
    inputs = np.random.default_rng(seed).normal(size=(count, len(FEATURES)))
    inputs[:, 0] += shift
    answered = list(predictions) if predictions is not None else ["0", "1"] * (count // 2)
    columns: dict[str, Any] = {
        "request_id": pa.array(ids),
        "row": pa.array([0] * count, pa.int32()),
        "time": pa.array([datetime.fromtimestamp(at, UTC)] * count, logfiles.TIME_TYPE),
        "model": pa.array([model] * count),
        "version": pa.array([version] * count, pa.int64()),
        "environment": pa.array([environment] * count),
        "source": pa.array([source] * count),
        "sample_rate": pa.array([0.5] * count, pa.float64()),
        "latency_ms": pa.array([0.4] * count, pa.float64()),
        "prediction": pa.array(answered),
        "prediction_value": pa.array([None] * count, pa.float64()),
    }
    for index, name in enumerate(FEATURES):
        columns[f"input.{name}"] = pa.array(inputs[:, index])
    logfiles.write_table(settings.monitoring_folder, logfiles.PREDICTIONS, model, pa.table(columns))
    return ids


def label(settings: Settings, ids: list[str], labels: list[str], model: str = MODEL) -> None:
    table = logfiles.feedback_table(
        ids, labels, source="outcomes.csv", loaded_by="alice", now=time.time()
    )
    logfiles.write_feedback(settings.monitoring_folder, model, table)


@dataclass
class Watched:
    seeded: Seeded
    server: UiServer


@pytest.fixture(scope="module")
def watched(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Watched]:
    """``seed_models`` (dev holds version 3) with three days of dev traffic: version 2 two
    and a half days ago, version 3 after, the last day with feature f0 shifted by three
    standard deviations and 200 of its answers labelled (150 right: accuracy 0.75); version
    1 answered in staging, unlabelled; a model without a reference profile answered in dev."""
    seeded = seed_models(tmp_path_factory.mktemp("monitoring-page"))
    settings = seeded.settings
    now = time.time()
    log_requests(settings, version=2, environment="dev", at=now - 2.5 * DAY, count=200)
    log_requests(settings, version=3, environment="dev", at=now - 1.5 * DAY, count=200, seed=1)
    # Version 3 as a shadow in dev: monitoring dev leaves it out.
    log_requests(
        settings, version=1, environment="dev", at=now - 1.5 * DAY, count=50, source="shadow"
    )
    last = log_requests(
        settings,
        version=3,
        environment="dev",
        at=now - 0.2 * DAY,
        count=200,
        shift=3.0,
        predictions=["1"] * 200,
        seed=2,
    )
    label(settings, last, ["1"] * 150 + ["0"] * 50)
    log_requests(settings, version=1, environment="staging", at=now - 0.5 * DAY, count=40)
    with seeded.client() as client:
        X = frame(40, seed=3)[list(FEATURES)]
        model = LogisticRegression().fit(X, (X["f0"] > 0).astype(int))
        with client.start_run("plain") as run:
            run.log_model(model, PLAIN, input_example=X.head(3))
    log_requests(settings, model=PLAIN, version=1, environment="dev", at=now - 0.1 * DAY, count=20)
    with running_ui(create_app(settings)) as server:
        yield Watched(seeded, server)


def ok(reply: Reply) -> Reply:
    assert reply.status == 200, reply.text[-1500:]
    assert 'data-testid="error-message"' not in reply.text
    return reply


def test_drift_per_feature_over_time_flags_the_shifted_feature(watched: Watched) -> None:
    page = ok(watched.server.get(f"{DEV}?since=3d&window=1d"))
    status = pairs(page, "drift-row", "data-feature", "data-status")
    assert status["f0"] == "alert"
    assert {status[f] for f in FEATURES[1:]} == {"ok"}
    psi = {k: float(v) for k, v in pairs(page, "drift-row", "data-feature", "data-psi").items()}
    assert psi["f0"] > 0.2 > max(psi[f] for f in FEATURES[1:])
    # The chart draws a line per feature over the three windows with traffic, and the bounds.
    chart = re.search(r'<svg[^>]*data-testid="drift-chart".*?</svg>', page.text, re.DOTALL)
    assert chart is not None
    series = re.findall(r'class="series" data-series="([^"]*)" points="([^"]*)"', chart[0])
    drawn = {unescape(name): points.split() for name, points in series}
    assert {"f0", "f1", "f2", "f3", "watch (0.1)", "alert (0.2)"} <= set(drawn)
    assert len(drawn["f0"]) == 3
    assert "days since" in chart[0]
    # Per window: which version answered (the shadow of version 1 left out), and the PSI.
    assert rows(page, "window-row", "data-versions") == ["2", "3", "3"]
    summary = re.search(r'data-testid="monitoring-summary" data-status="([^"]*)"', page.text)
    assert summary is not None and summary[1] == "alert"
    assert page.count("monitoring-alerts") == 1
    requests = re.search(r'data-testid="monitoring-requests">([^<]*)<', page.text)
    assert requests is not None and requests[1].startswith("1,200 (estimated from 600")


def test_the_prediction_distribution_against_the_reference(watched: Watched) -> None:
    page = ok(watched.server.get(f"{DEV}?since=3d"))
    now = pairs(page, "prediction-share-row", "data-value", "data-now")
    reference = pairs(page, "prediction-share-row", "data-value", "data-reference")
    # 100 + 100 + 200 of 600 answers were "1".
    assert now["1"] == "66.7%" and now["0"] == "33.3%"
    with watched.seeded.client() as client:
        profile = client.reference_profile(f"{MODEL}:3")
    assert profile is not None and profile.prediction is not None
    expected = profile.prediction.frequencies["1"] * 100
    assert reference["1"] == f"{expected:.1f}%"
    assert rows(page, "prediction-shares", "data-kind") == ["categorical"]


def test_live_metrics_against_the_test_time_values(watched: Watched) -> None:
    page = ok(watched.server.get(f"{DEV}?since=3d&window=12h"))
    values = pairs(page, "live-row", "data-metric", "data-value")
    references = pairs(page, "live-row", "data-metric", "data-reference")
    assert values["accuracy"] == "0.7500" and references["accuracy"] == "0.9700"
    assert values["false_positive_rate"] == "1.0000"
    labelled = re.search(r'data-testid="monitoring-labelled">([^<]*)<', page.text)
    assert labelled is not None and labelled[1] == "200"
    charts = re.findall(r'<svg[^>]*data-testid="live-metric-chart".*?</svg>', page.text, re.DOTALL)
    accuracy = next(c for c in charts if 'data-metric="live accuracy"' in c)
    assert 'data-series="live accuracy"' in accuracy
    assert 'data-series="test data (0.97)"' in accuracy
    assert "hours since" in accuracy


def test_which_version_was_serving_comes_from_the_promotion_history(watched: Watched) -> None:
    page = ok(watched.server.get(DEV))
    # dev held 1, then 2, then 3 (each entered when registered); it holds 3 now.
    assert rows(page, "serving-stay", "data-version") == ["1", "2", "3"]
    last = re.findall(r'data-testid="serving-stay" data-version="3">(.*?)</tr>', page.text, re.S)
    assert "<td>now</td>" in last[0] and "auto by alice" in last[0]
    answering = rows(page, "answering-version", "data-version")
    assert answering == ["2", "3"]


def test_empty_states_say_plainly_what_is_missing(watched: Watched) -> None:
    staging = ok(watched.server.get(f"/models/{MODEL}/monitoring/staging"))
    assert staging.count("serving-empty") == 1  # staging never held a version
    assert staging.count("no-labels") == 1 and "No labels yet" in staging.text
    assert staging.count("drift-row") == len(FEATURES)
    prod = ok(watched.server.get(f"/models/{MODEL}/monitoring/prod"))
    assert prod.count("monitoring-empty") == 1
    assert f"Nothing was logged for {MODEL} in prod" in prod.text
    assert prod.count("drift-table") == 0 and prod.count("live-table") == 0
    plain = ok(watched.server.get(f"/models/{PLAIN}/monitoring/dev"))
    assert plain.count("no-reference") == 1
    assert "Version 1 has no reference profile" in plain.text
    assert set(rows(plain, "drift-row", "data-status")) == {"no reference"}
    assert rows(plain, "prediction-shares", "data-kind") == ["no reference"]


@pytest.mark.parametrize(
    ("query", "words"),
    [
        ("since=lately", "since must be a duration such as 30m, 12h, 7d or 2w, not 'lately'"),
        ("since=0d", "since must be a duration"),
        ("window=-1h", "window must be a duration"),
        ("since=30d&window=1h", "window '1h' cuts the last 30d into more than 200 windows"),
    ],
)
def test_a_bad_range_is_a_400_page_naming_the_parameter(
    watched: Watched, query: str, words: str
) -> None:
    reply = watched.server.get(f"{DEV}?{query}")
    assert reply.status == 400, reply.text[-800:]
    message = re.search(r'data-testid="error-message"[^>]*>\s*<p>(.*?)</p>', reply.text, re.S)
    assert message is not None and words in unescape(message[1])


def test_unknown_models_and_environments_are_404_pages(watched: Watched) -> None:
    assert watched.server.get("/models/nobody/monitoring/dev").status == 404
    missing = watched.server.get(f"/models/{MODEL}/monitoring/qa")
    assert missing.status == 404 and "unknown environment" in missing.text


def test_the_model_page_links_each_environment_to_its_monitoring(watched: Watched) -> None:
    page = ok(watched.server.get(f"/models/{MODEL}"))
    for environment in ("dev", "staging", "prod"):
        links = rows(page, f"monitoring-link-{environment}", "href")
        assert links == [f"/models/{MODEL}/monitoring/{environment}"]
    monitoring = ok(watched.server.get(f"{DEV}?since=2d&window=6h"))
    switch = pairs(monitoring, "monitoring-env-link", "data-env", "href")
    assert switch["prod"] == f"/models/{MODEL}/monitoring/prod?since=2d&window=6h"


@pytest.fixture
def team_ui(tmp_path: Path) -> Iterator[TeamUi]:
    yield from team_project(tmp_path)


def test_a_store_with_users_shows_it_only_to_those_signed_in(team_ui: TeamUi) -> None:
    server = team_ui.serve()
    anonymous = server.get(DEV)
    assert anonymous.status == 303 and anonymous.headers["location"].startswith("/login?next=")
    vic = sign_in(server, team_ui, "vic", DEV)  # a viewer: reading is all it takes
    page = vic.get(DEV)
    assert page.status == 200 and page.count("monitoring-empty") == 1


def test_through_a_team_server_the_page_shows_the_servers_history(
    dashboard: UiServer, team: Team
) -> None:
    register(team.client)
    vic = dashboard.visitor()
    path = f"/models/{SERVER_MODEL}/monitoring/dev"
    assert vic.post("/login", {"token": team.tokens["vic"], "next": path}).status == 303
    page = vic.get(path)
    assert page.status == 200, page.text[-800:]
    assert rows(page, "serving-stay", "data-version") == ["1"]
    # The logs are read from this machine's monitoring folder, and it has none.
    assert page.count("monitoring-empty") == 1
