"""Batch schedules through the team server: scheduled as the signed-in user, listed with any
password hidden (and refused when a job's URLs hold one), run by a scheduler signed in to
the server, whose runs are recorded there; viewers may list but not schedule.

Users (conftest): vic viewer, mia member, ada admin."""

from __future__ import annotations

import json
from pathlib import Path
from typing import cast

import pandas as pd
import pytest

from modelrail.batch.host import ScheduleHost
from modelrail.batch.scheduler import Scheduler
from modelrail.batch.spec import JobSpec
from modelrail.errors import InvalidRequestError, PermissionDeniedError
from tests.server.conftest import HOST, MODEL, Team, register
from tests.server.test_remote_client import _cli, _laptop, remote


def _spec(folder: Path, output: str | None = None) -> JobSpec:
    frame = pd.DataFrame({"id": ["a", "b", "c"], "a": [0.5, 2.5, 3.0], "b": [1.0, 0.0, 1.0]})
    frame.to_parquet(folder / "people.parquet")
    return JobSpec(
        reference=f"{MODEL}@dev",
        inputs=(str(folder / "people.parquet"),),
        output=output or f"sqlite:///{folder / 'scores.db'}",
        table="scores",
        id_columns=("id",),
    )


def test_a_schedule_made_and_run_through_the_server(team: Team, tmp_path: Path) -> None:
    register(team.client)
    laptop = tmp_path / "laptop"
    laptop.mkdir()
    mia = remote(team, "mia", laptop)
    made = mia.schedule_batch("nightly", _spec(laptop), cron="0 3 * * *", timezone="UTC")
    assert made.name == "nightly"
    (stored,) = team.client.batch_schedules()
    assert stored.schedule.cron == "0 3 * * *"
    assert team.client.schedule_records.get("nightly").created_by == "mia"  # type: ignore[union-attr]
    listed = remote(team, "vic", laptop).batch_schedules()
    assert [s.schedule.name for s in listed] == ["nightly"]
    with pytest.raises(PermissionDeniedError):
        remote(team, "vic", laptop).schedule_batch("other", _spec(laptop), cron="0 4 * * *")

    scheduler = Scheduler(cast(ScheduleHost, mia))
    due = stored.schedule.next_run_at
    assert due is not None
    (outcome,) = scheduler.tick(now=due + 1)
    assert (outcome.status, outcome.trigger) == ("succeeded", "schedule"), outcome
    runs = team.client.batch_runs(job="nightly")
    assert [(r.status, r.rows_written, r.user, r.trigger) for r in runs] == [
        ("succeeded", 3, "mia", "schedule")
    ]
    assert scheduler.tick(now=due + 2) == []  # fired once: the next is tomorrow
    assert mia.unschedule_batch("nightly").name == "nightly"
    assert team.client.batch_schedules() == []


def test_a_schedule_with_a_password_is_refused_and_none_is_shown(
    team: Team, tmp_path_factory: pytest.TempPathFactory
) -> None:
    register(team.client)
    folder, env = _laptop(tmp_path_factory)
    mia = remote(team, "mia", folder)
    secret = "postgresql://mia:hunter2@db.example.org/scores"
    with pytest.raises(InvalidRequestError, match="keeps no password"):
        mia.schedule_batch("nightly", _spec(folder, secret), cron="0 3 * * *")
    assert team.client.batch_schedules() == []
    # One made with direct access to the store (password and all) is listed without it.
    team.client.schedule_batch("direct", _spec(folder, secret), cron="0 3 * * *")
    env["MODELRAIL_SERVER"] = f"http://{HOST}:{team.port}"
    env["MODELRAIL_TOKEN"] = team.tokens["vic"]
    code, out = _cli(["batch", "schedules", "--json"], folder, env)
    assert code == 0 and "hunter2" not in out, out
    assert json.loads(out)[0]["name"] == "direct"
    raw = team.post("/api/v1/schedule-records/schedules", "vic", {})
    assert raw.status == 200 and b"hunter2" not in raw.body


def test_bad_schedule_operations_are_4xx_naming_the_field(team: Team) -> None:
    assert team.post("/api/v1/schedule-records/drop_table", "mia", {}).status == 404
    assert team.post("/api/v1/schedule-records/renew", "vic", {"args": {}}).status == 403
    reply = team.post("/api/v1/schedule-records/renew", "mia", {"args": {"name": "x"}})
    assert reply.status == 422 and reply.json()["field"] == "owner"
    reply = team.post(
        "/api/v1/schedule-records/get", "vic", {"args": {"name": "x", "color": "red"}}
    )
    assert reply.status == 422 and reply.json()["field"] == "color"
    reply = team.post("/api/v1/schedule-records/get", "vic", {"args": {"name": 3}})
    assert reply.status == 422 and reply.json()["field"] == "name"
    assert team.post("/api/v1/schedule-records/get", "vic", {"args": {"name": "x"}}).json() == {
        "result": None
    }
