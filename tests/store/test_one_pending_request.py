"""Revision 0006: the database lets one approval request per model, environment and version
wait, and upgrading a store that already holds duplicates closes them, recorded."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, insert, text
from sqlalchemy.exc import IntegrityError

from modelrail.store import tables as t
from modelrail.store.db import Database
from modelrail.store.environments_repo import EnvironmentRepository

MIGRATIONS = Path(t.__file__).with_name("migrations")


def _store_at_0005(url: str) -> None:
    engine = create_engine(url)
    with engine.begin() as conn:
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.attributes["connection"] = conn
        command.upgrade(config, "0005")
    engine.dispose()


def _request(version: int, environment: str, expires_at: float) -> dict[str, object]:
    return {
        "model_id": 1,
        "version": version,
        "environment": environment,
        "requested_by": "alice",
        "reason": "",
        "gates": "[]",
        "status": "pending",
        "created_at": time.time() - 100,
        "expires_at": expires_at,
    }


def test_upgrade_keeps_the_oldest_waiting_request_and_rejects_its_duplicates_in_the_history(
    store_url: str, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}" if store_url.startswith("sqlite") else store_url
    _store_at_0005(url)
    later, past = time.time() + 3600, time.time() - 10
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO models (id, name, created_at) VALUES (1, 'pets', 0)"))
        conn.execute(
            text(
                "INSERT INTO environment_slots (model_id, environment, version, revision, "
                "updated_at) VALUES (1, 'prod', 1, 1, 0)"
            )
        )
        rows = [
            _request(2, "prod", later),  # 1: kept
            _request(2, "prod", later),  # 2: duplicate of 1
            _request(3, "prod", past),  # 3: expired
            _request(3, "prod", past),  # 4: expired
            _request(3, "prod", later),  # 5: kept, the only one of 3 still waiting
            _request(2, "prod", later),  # 6: duplicate of 1
            _request(2, "staging", later),  # 7: kept, another environment
        ]
        for row in rows:
            conn.execute(text(_INSERT), row)
    engine.dispose()

    db = Database(url)
    repo = EnvironmentRepository(db)
    statuses = {r.id: r.status for r in repo.requests(None)}
    assert statuses == {
        1: "pending",
        2: "rejected",
        3: "expired",
        4: "expired",
        5: "pending",
        6: "rejected",
        7: "pending",
    }
    assert [r.id for r in repo.requests("expired")] == [3, 4]
    for request_id in (2, 6):
        closed = repo.get_request(request_id)
        assert closed.decided_by == "modelrail"
        assert closed.decision_reason is not None
        assert closed.decision_reason.startswith("duplicate of request 1, which stays open")
    rejections = [
        (e.action, e.environment, e.from_version, e.to_version, e.actor, e.request_id)
        for e in repo.events("pets")
    ]
    assert rejections == [
        ("reject", "prod", 1, 2, "modelrail", 2),
        ("reject", "prod", 1, 2, "modelrail", 6),
    ]

    # From now on the database itself refuses a second waiting request.
    with pytest.raises(IntegrityError), db.engine.begin() as conn:
        conn.execute(insert(t.approval_requests), _request(2, "prod", later))
    with db.engine.begin() as conn:
        decided = {**_request(2, "prod", later), "status": "rejected"}
        conn.execute(insert(t.approval_requests), decided)
    db.dispose()


_INSERT = (
    "INSERT INTO approval_requests (model_id, version, environment, requested_by, reason, "
    "gates, status, created_at, expires_at) VALUES (:model_id, :version, :environment, "
    ":requested_by, :reason, :gates, :status, :created_at, :expires_at)"
)
