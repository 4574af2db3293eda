"""Batch scoring against a team server: rows are read, scored and written on the laptop with
the version the server names, the run is recorded on the server as the signed-in user (with
no password in it), ``batch history`` and ``batch show`` read it back, and a failed run is
resumed from its server record.

Users (conftest): vic viewer, mia and max members, ada admin."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pandas as pd
import pytest

from modelrail.batch.spec import JobSpec
from modelrail.errors import PermissionDeniedError
from tests.server.conftest import HOST, MODEL, Team, register
from tests.server.test_remote_client import _cli, _laptop, remote

ROWS = 500


def _input(folder: Path) -> Path:
    frame = pd.DataFrame(
        {"id": [f"r{i}" for i in range(ROWS)], "a": [i % 7 / 2 for i in range(ROWS)], "b": 1.0}
    )
    path = folder / "people.parquet"
    frame.to_parquet(path)
    return path


def _scored(path: Path) -> dict[str, int]:
    with sqlite3.connect(path) as conn:
        return dict(conn.execute("SELECT id, prediction FROM scores").fetchall())


def _tables(path: Path) -> list[str]:
    if not path.exists():
        return []
    with sqlite3.connect(path) as conn:
        return [name for (name,) in conn.execute("SELECT name FROM sqlite_master")]


def test_a_batch_run_is_scored_here_and_recorded_on_the_server(team: Team, tmp_path: Path) -> None:
    register(team.client)
    laptop = tmp_path / "laptop"
    laptop.mkdir()
    mia = remote(team, "mia", laptop)
    spec = JobSpec(
        reference=f"{MODEL}:1",
        inputs=(str(_input(laptop)),),
        output=f"sqlite:///{laptop / 'scores.db'}",
        table="scores",
        id_columns=("id",),
    )
    run = mia.run_batch(spec)
    assert (run.status, run.rows_written, run.user) == ("succeeded", ROWS, "mia")
    scored = _scored(laptop / "scores.db")
    model = team.client.load_model(f"{MODEL}:1")
    expected = model.predict(pd.read_parquet(laptop / "people.parquet")[["a", "b"]])
    assert [scored[f"r{i}"] for i in range(ROWS)] == [int(p) for p in expected]
    on_server = team.client.batch_run(run.id)
    assert on_server == run and on_server.user == "mia"
    assert mia.batch_runs() == team.client.batch_runs()
    with pytest.raises(PermissionDeniedError):
        remote(team, "vic", laptop).run_batch(spec)


def test_a_failed_run_is_resumed_from_its_server_record(team: Team, tmp_path: Path) -> None:
    register(team.client)
    laptop = tmp_path / "laptop"
    laptop.mkdir()
    mia = remote(team, "mia", laptop)
    spec = JobSpec(
        reference=f"{MODEL}:1",
        inputs=(str(_input(laptop)),),
        output=f"sqlite:///{laptop / 'scores.db'}",
        table="scores",
        id_columns=("id",),
        batch_rows=100,
    )

    def interrupted(rows: int, total: int | None) -> None:
        raise KeyboardInterrupt  # Ctrl-C after the first batch

    with pytest.raises(KeyboardInterrupt):
        mia.run_batch(spec, progress=interrupted)
    failed = team.client.batch_runs(status="failed")
    assert [(r.user, r.error) for r in failed] == [
        ("mia", "interrupted (Ctrl-C); nothing of this run was kept")
    ]
    assert _tables(laptop / "scores.db") == []  # not even an empty table
    max_ = remote(team, "max", laptop)  # a colleague finishes it
    done = max_.resume_batch(failed[0].id)
    assert (done.status, done.rows_written, done.user) == ("succeeded", ROWS, "mia")
    assert len(_scored(laptop / "scores.db")) == ROWS


def test_batch_commands_run_against_the_server(
    team: Team, tmp_path_factory: pytest.TempPathFactory
) -> None:
    register(team.client)
    folder, env = _laptop(tmp_path_factory)
    env["MODELRAIL_SERVER"] = f"http://{HOST}:{team.port}"
    env["MODELRAIL_TOKEN"] = team.tokens["mia"]
    _input(folder)
    code, out = _cli(
        [
            "batch", "run", f"{MODEL}:1", "-i", "people.parquet", "--id-column", "id",
            "-o", "postgresql://mia:hunter2@127.0.0.1:9/nowhere", "--table", "scores",
        ],
        folder,
        env,
    )  # fmt: skip
    assert code != 0 and "Traceback" not in out and "hunter2" not in out
    code, out = _cli(["batch", "history", "--json"], folder, env)
    assert code == 0 and "hunter2" not in out, out
    runs = json.loads(out)
    assert [(r["status"], r["user"]) for r in runs] == [("failed", "mia")]
    assert "postgresql://mia:***@127.0.0.1:9/nowhere" in runs[0]["spec"]
    code, out = _cli(["batch", "show", runs[0]["id"][:8]], folder, env)
    assert code == 0 and "failed" in out and "hunter2" not in out
    stored = team.client.batch_run(runs[0]["id"])
    assert "hunter2" not in stored.spec


def test_bad_batch_records_are_refused_naming_the_field(team: Team) -> None:
    register(team.client)
    reply = team.post("/api/v1/batch-runs", "vic", {"id": "x"})
    assert reply.status == 403
    assert team.post("/api/v1/batch-runs", "mia", {"id": "x"}).status == 422
    assert team.get("/api/v1/batch-runs?limit=0", "vic").status == 422
    assert team.get("/api/v1/batch-runs?status=lost", "vic").status == 422
    assert team.get("/api/v1/batch-runs/abcdef", "vic").status == 404
    assert team.post("/api/v1/batch-runs/abcdef/update", "mia", {"values": {}}).status == 422
