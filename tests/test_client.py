"""``Client``: the tracker reads the dashboard uses, and the rule that the command line and
the dashboard reach the library through ``Client``'s public methods only."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from modelrail.client import Client
from modelrail.errors import ArtifactNotFoundError
from modelrail.store.tracker_query import TrackerQuery

SRC = Path(__file__).resolve().parents[1] / "src" / "modelrail"


def log_runs(client: Client) -> tuple[str, str]:
    """Two runs of ``pets`` and one of ``cats``; the ids of the two ``pets`` runs."""
    ids = []
    for accuracy, loss in ((0.8, 0.5), (0.9, 0.3)):
        with client.start_run("pets") as run:
            run.log_metric("accuracy", accuracy)
            for step, value in enumerate((1.0, 0.7, loss)):
                run.log_metric("loss", value, step=step)
            ids.append(run.id)
    with client.start_run("cats") as run:
        run.log_metric("recall", 0.5)
    return ids[0], ids[1]


def test_experiments_are_listed_by_name(client: Client) -> None:
    log_runs(client)
    assert [e.name for e in client.experiments()] == ["cats", "pets"]


def test_metric_history_has_every_step_of_every_key_or_of_one(client: Client) -> None:
    first, _ = log_runs(client)
    points = [(p.key, p.step, p.value) for p in client.metric_history(first)]
    assert points == [("accuracy", 0, 0.8), ("loss", 0, 1.0), ("loss", 1, 0.7), ("loss", 2, 0.5)]
    assert [p.value for p in client.metric_history(first, "loss")] == [1.0, 0.7, 0.5]


def test_metric_names_are_every_key_any_run_logged(client: Client) -> None:
    log_runs(client)
    assert client.metric_names() == ["accuracy", "loss", "recall"]


def test_metric_extremes_span_every_matching_run_not_one_page(client: Client) -> None:
    log_runs(client)
    one_row = TrackerQuery(experiment="pets", limit=1)
    assert client.metric_extremes(one_row, ["accuracy", "loss", "recall"]) == {
        "accuracy": (0.8, 0.9),
        "loss": (0.3, 0.5),  # the latest value of each run
    }
    assert client.metric_extremes(one_row, []) == {}


def test_run_artifact_is_the_logged_bytes_and_a_missing_path_is_not_found(
    client: Client,
) -> None:
    with client.start_run("pets") as run:
        run.log_text("C=1.0\n", "notes.txt")
    assert client.run_artifact(run.id, "notes.txt") == b"C=1.0\n"
    with pytest.raises(ArtifactNotFoundError, match=r"has no artifact 'other\.txt'"):
        client.run_artifact(run.id, "other.txt")


# -- the seam: the command line and the dashboard call Client's public methods only -----------

# What only the library may touch: the store, the artifact store, the repositories and the
# services behind Client.
_BEHIND_CLIENT = re.compile(
    r"client\.(db|runs|models|artifacts|environment_service|_\w+)\b"
    r"|\w+Repository\("
    r"|\b(tracker_page|metric_extremes|metric_names)\(\s*\w*\.?client"
    r"|\b(run_batch|resume_batch|create_schedule|schedule_statuses|delete_schedule"
    r"|list_schedules|get_schedule|Scheduler)\(\s*(page\.)?client\b"
)


@pytest.mark.parametrize("package", ["cli", "ui"])
def test_the_command_line_and_the_dashboard_reach_the_library_only_through_client(
    package: str,
) -> None:
    found = [
        f"{path.relative_to(SRC)}:{number}: {line.strip()}"
        for path in sorted((SRC / package).rglob("*.py"))
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if _BEHIND_CLIENT.search(line)
    ]
    assert found == []
