"""``POST /v1/feedback`` over real HTTP: labels by request id are on disk when the answer
comes, a later label replaces an earlier one, many small requests share files, and every
malformed request is refused naming its field, with nothing stored."""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from modelrail.monitoring.logfiles import labelled_predictions, read_feedback
from modelrail.serving.server import ServeOptions
from tests.serving.conftest import Reply, running_server
from tests.serving.log_project import PREDICT, Project, make_project, records, serving

FEEDBACK = "/v1/feedback"


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    return make_project(tmp_path_factory.mktemp("feedback-project"))


def feedback_files(logs: Path) -> list[Path]:
    return sorted((logs / "feedback").glob("model=*/date=*/*.parquet"))


def test_labels_sent_for_logged_predictions_are_stored_and_joined(
    project: Project, tmp_path: Path
) -> None:
    body = {"inputs": records(project.frame.iloc[60:63])}
    with serving(project, tmp_path) as server:
        first = server.post(PREDICT, body)
        second = server.post(PREDICT, body, headers={"x-request-id": "order-42"})
        ids = [first.headers["x-request-id"], "order-42"]
        labels = [
            {"request_id": ids[0], "row": 0, "label": 1},
            {"request_id": ids[0], "row": 2, "label": 0},
            {"request_id": "order-42", "label": 1},  # row 0 by default
        ]
        stored = server.post(FEEDBACK, {"model": "churn", "labels": labels})
        assert stored.status == 200, stored.text
        assert stored.json() == {"model": "churn", "stored": 3}
        assert stored.headers["x-request-id"]
        # On disk when the answer came, while the server still runs.
        on_disk = read_feedback(tmp_path, "churn").sort_by("request_id").to_pylist()
        assert len(on_disk) == 3 and {r["source"] for r in on_disk} == {"api"}
        again = server.post(
            FEEDBACK, {"model": "churn", "labels": [{"request_id": "order-42", "label": 0}]}
        )
        assert again.status == 200
    assert second.status == 200
    latest = {
        (r["request_id"], r["row"]): r["label"]
        for r in read_feedback(tmp_path, "churn").to_pylist()
    }
    assert latest == {(ids[0], 0): "1", (ids[0], 2): "0", ("order-42", 0): "0"}  # last wins
    joined = labelled_predictions(tmp_path, "churn").to_pylist()
    assert {(r["request_id"], r["row"], r["label"]) for r in joined} == {
        (ids[0], 0, "1"),
        (ids[0], 2, "0"),
        ("order-42", 0, "0"),
    }
    assert all(r["version"] == 1 for r in joined)


def test_text_and_boolean_labels_are_kept_as_text(project: Project, tmp_path: Path) -> None:
    with serving(project, tmp_path) as server:
        words = server.post(
            FEEDBACK,
            {"model": "churn", "labels": [{"request_id": "a", "label": "stayed"}]},
        )
        flags = server.post(
            FEEDBACK, {"model": "spend", "labels": [{"request_id": "b", "label": True}]}
        )
        numbers = server.post(
            FEEDBACK, {"model": "spend", "labels": [{"request_id": "c", "label": 12.5}]}
        )
    assert words.status == flags.status == numbers.status == 200
    assert read_feedback(tmp_path, "churn").column("label").to_pylist() == ["stayed"]
    spend = {r["request_id"]: r for r in read_feedback(tmp_path, "spend").to_pylist()}
    assert spend["b"]["label"] == "true" and spend["b"]["label_value"] is None
    assert spend["c"]["label"] == "12.5" and spend["c"]["label_value"] == 12.5


def test_many_small_requests_at_once_share_files(project: Project, tmp_path: Path) -> None:
    senders = 12
    with serving(project, tmp_path) as server:
        start = threading.Barrier(senders)
        replies: list[Reply] = []

        def send(index: int) -> None:
            with server.connect() as http:
                start.wait(timeout=10)
                label = {"request_id": f"r{index}", "label": index % 2}
                replies.append(http.post(FEEDBACK, {"model": "churn", "labels": [label]}))

        threads = [threading.Thread(target=send, args=(i,)) for i in range(senders)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
    assert sorted(r.status for r in replies) == [200] * senders
    assert read_feedback(tmp_path, "churn").num_rows == senders
    assert len(feedback_files(tmp_path)) < senders


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"model": "churn", "labels": [{"request_id": "a"}]}, 400, "labels[0].label"),
        (
            {"model": "churn", "labels": [{"request_id": "a", "label": None}]},
            400,
            "labels[0].label",
        ),
        (
            {"model": "churn", "labels": [{"label": 1}, {"request_id": "b", "label": 1}]},
            400,
            "labels[0].request_id",
        ),
        (
            {
                "model": "churn",
                "labels": [{"request_id": "a", "label": 1}, {"request_id": "", "label": 1}],
            },
            400,
            "labels[1].request_id",
        ),
        (
            {
                "model": "churn",
                "labels": [{"request_id": "a", "label": 1}, {"request_id": "b", "label": "x"}],
            },
            400,
            "labels[1].label",
        ),
        (
            {"model": "churn", "labels": [{"request_id": "a", "row": -1, "label": 1}]},
            400,
            "labels[0].row",
        ),
        (
            {"model": "churn", "labels": [{"request_id": "a", "label": 1, "weight": 2}]},
            400,
            "labels[0].weight",
        ),
        ({"model": "churn", "labels": [{"request_id": "a", "label": [1]}]}, 400, "labels[0].label"),
        ({"model": "churn", "labels": []}, 400, "labels"),
        ({"labels": [{"request_id": "a", "label": 1}]}, 400, "model"),
        ({"model": "churn", "labels": [{"request_id": "a", "label": 1}], "extra": 1}, 400, "extra"),
        ([1, 2], 400, "body"),
        ({"model": "nope", "labels": [{"request_id": "a", "label": 1}]}, 404, "model"),
        (
            {
                "model": "churn",
                "labels": [{"request_id": str(i), "label": 1} for i in range(10_001)],
            },
            413,
            "labels",
        ),
    ],
)
def test_malformed_feedback_is_refused_naming_the_field_and_nothing_is_stored(
    project: Project, tmp_path: Path, body: Any, status: int, field: str
) -> None:
    with serving(project, tmp_path) as server:
        reply = server.post(FEEDBACK, body)
    assert (reply.status, reply.json()["field"]) == (status, field), reply.text
    assert feedback_files(tmp_path) == []


def test_feedback_that_is_not_json_is_refused(project: Project, tmp_path: Path) -> None:
    with serving(project, tmp_path) as server:
        malformed = server.post(FEEDBACK, "{not json")
        csv = server.post(FEEDBACK, "request_id,label\na,1\n", content_type="text/csv")
        wrong_method = server.get(FEEDBACK)
    assert (malformed.status, malformed.json()["field"]) == (400, "body")
    assert (csv.status, csv.json()["field"]) == (415, "content-type")
    assert wrong_method.status == 405
    assert feedback_files(tmp_path) == []


def test_feedback_needs_the_same_token_as_predictions(project: Project, tmp_path: Path) -> None:
    with project.client() as client:
        client.add_user("lena", ["viewer@dev"])
        token = client.create_token("lena", label="labels")[1]
    settings = replace(project.settings, monitoring_root=str(tmp_path))
    body = {"model": "churn", "labels": [{"request_id": "a", "label": 1}]}
    with running_server(settings, ServeOptions(environment="dev", auth=True)) as server:
        refused = server.post(FEEDBACK, body)
        allowed = server.post(FEEDBACK, body, headers={"Authorization": f"Bearer {token}"})
    assert refused.status == 401
    assert allowed.status == 200, allowed.text
    (stored,) = read_feedback(tmp_path, "churn").to_pylist()
    assert stored["request_id"] == "a"
    loaded_by = read_feedback_loaded_by(tmp_path)
    assert loaded_by == ["lena"]


def read_feedback_loaded_by(logs: Path) -> list[str]:
    return [
        name
        for path in feedback_files(logs)
        for name in pq.read_table(path)["loaded_by"].to_pylist()
    ]


def test_a_label_store_that_cannot_be_written_answers_503(project: Project, tmp_path: Path) -> None:
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the labels' folder should be")
    body = {"model": "churn", "labels": [{"request_id": "a", "label": 1}]}
    with serving(project, blocked) as server:
        reply = server.post(FEEDBACK, body)
        assert server.get("/health").status == 200
    assert reply.status == 503 and "could not be stored" in reply.json()["error"]
