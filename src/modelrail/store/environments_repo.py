"""What each environment holds, its append-only history, and approval requests."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, func, select, update
from sqlalchemy.exc import IntegrityError

from modelrail.entities import ApprovalRequest, EnvironmentEvent, GateResult, Holding
from modelrail.errors import (
    ConflictError,
    ModelNotFoundError,
    PromotionError,
    RequestNotFoundError,
)
from modelrail.store import tables as t
from modelrail.store.codec import dumps, loads
from modelrail.store.db import Database

# "import": an import placed the version there (e.g. an MLflow stage or alias).
HOLDER_ACTIONS = ("auto", "promote", "rollback", "approve", "import")


class EnvironmentRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    def model_id(self, conn: Connection, name: str) -> int:
        found = conn.execute(select(t.models.c.id).where(t.models.c.name == name)).scalar()
        if found is None:
            raise ModelNotFoundError(f"no model named {name!r}")
        return int(found)

    # -- holders -----------------------------------------------------------------------

    def holding(self, model: str, environment: str) -> Holding | None:
        with self.db.read() as conn:
            return self._holding(conn, self.model_id(conn, model), model, environment)

    def _holding(
        self, conn: Connection, model_id: int, model: str, environment: str
    ) -> Holding | None:
        s = t.environment_slots
        row = conn.execute(
            select(s.c.version, s.c.updated_at, s.c.revision).where(
                s.c.model_id == model_id, s.c.environment == environment
            )
        ).first()
        if row is None:
            return None
        return Holding(
            model, environment, int(row.version), float(row.updated_at), int(row.revision)
        )

    def holdings(self) -> list[Holding]:
        s = t.environment_slots
        with self.db.read() as conn:
            rows = conn.execute(
                select(t.models.c.name, s.c.environment, s.c.version, s.c.updated_at, s.c.revision)
                .join(t.models, t.models.c.id == s.c.model_id)
                .order_by(t.models.c.name, s.c.environment)
            ).all()
        return [Holding(r[0], r[1], int(r[2]), float(r[3]), int(r[4])) for r in rows]

    def change_holder(
        self,
        *,
        model: str,
        environment: str,
        expected: Holding | None,
        version: int,
        action: str,
        actor: str,
        reason: str,
        gates: Sequence[GateResult] = (),
        forced: bool = False,
        request_id: int | None = None,
        policy_version: int | None = None,
        conn: Connection | None = None,
    ) -> EnvironmentEvent:
        """Compare-and-swap what ``environment`` holds and append the event, atomically.

        ``expected`` is the holding the caller's checks were made against; if another
        writer changed it meanwhile, nothing is written and ``ConflictError`` names
        the version that won.
        """
        if conn is None:
            with self.db.write() as own:
                return self.change_holder(
                    model=model,
                    environment=environment,
                    expected=expected,
                    version=version,
                    action=action,
                    actor=actor,
                    reason=reason,
                    gates=gates,
                    forced=forced,
                    request_id=request_id,
                    policy_version=policy_version,
                    conn=own,
                )
        now = time.time()
        model_id = self.model_id(conn, model)
        s = t.environment_slots
        if expected is None:
            try:
                with conn.begin_nested():
                    conn.execute(
                        s.insert(),
                        {
                            "model_id": model_id,
                            "environment": environment,
                            "version": version,
                            "revision": 1,
                            "updated_at": now,
                        },
                    )
            except IntegrityError:
                self._conflict(conn, model_id, model, environment)
        else:
            changed = conn.execute(
                update(s)
                .where(
                    s.c.model_id == model_id,
                    s.c.environment == environment,
                    s.c.revision == expected.revision,
                )
                .values(version=version, revision=expected.revision + 1, updated_at=now)
            ).rowcount
            if changed != 1:
                self._conflict(conn, model_id, model, environment)
        return self._append(
            conn,
            model_id=model_id,
            model=model,
            environment=environment,
            action=action,
            from_version=expected.version if expected else None,
            to_version=version,
            actor=actor,
            reason=reason,
            gates=gates,
            forced=forced,
            request_id=request_id,
            policy_version=policy_version,
            created_at=now,
        )

    def _conflict(self, conn: Connection, model_id: int, model: str, environment: str) -> None:
        current = self._holding(conn, model_id, model, environment)
        winner = f"version {current.version}" if current else "nothing"
        raise ConflictError(
            f"{model}@{environment} was changed by another promotion while this one ran: "
            f"it now holds {winner}; nothing was changed, check and try again"
        )

    # -- history ------------------------------------------------------------------------

    def append_event(self, conn: Connection, *, model: str, **fields: Any) -> EnvironmentEvent:
        return self._append(
            conn, model_id=self.model_id(conn, model), model=model, created_at=time.time(), **fields
        )

    def _append(
        self, conn: Connection, *, model_id: int, model: str, **fields: Any
    ) -> EnvironmentEvent:
        row = {
            "model_id": model_id,
            "environment": fields["environment"],
            "action": fields["action"],
            "from_version": fields.get("from_version"),
            "to_version": fields.get("to_version"),
            "actor": fields["actor"],
            "reason": fields.get("reason", ""),
            "gates": dumps([g.to_json() for g in fields.get("gates", ())]),
            "forced": bool(fields.get("forced", False)),
            "request_id": fields.get("request_id"),
            "policy_version": fields.get("policy_version"),
            "created_at": fields["created_at"],
        }
        new_id = conn.execute(t.environment_events.insert(), row).inserted_primary_key
        assert new_id is not None
        return _event({**row, "id": new_id[0], "name": model})

    def latest_event_id(self) -> int:
        """The newest history event's id (0 before any): it grows with every change."""
        with self.db.read() as conn:
            found = conn.execute(select(func.max(t.environment_events.c.id))).scalar()
        return int(found or 0)

    def events(
        self, model: str | None = None, environment: str | None = None
    ) -> list[EnvironmentEvent]:
        e = t.environment_events
        query = select(e, t.models.c.name).join(t.models, t.models.c.id == e.c.model_id)
        if model is not None:
            query = query.where(t.models.c.name == model)
        if environment is not None:
            query = query.where(e.c.environment == environment)
        with self.db.read() as conn:
            if model is not None:
                self.model_id(conn, model)
            rows = conn.execute(query.order_by(e.c.id)).mappings().all()
        return [_event(dict(r)) for r in rows]

    # -- approval requests ----------------------------------------------------------------

    def create_request(
        self,
        conn: Connection,
        *,
        model: str,
        version: int,
        environment: str,
        expected: Holding | None,
        if_holds: int | None,
        requested_by: str,
        reason: str,
        gates: Sequence[GateResult],
        expires_in_s: float,
    ) -> ApprovalRequest:
        """Open a request, atomically with the checks that must still hold when it is written.

        ``expected`` is the holding the caller's checks and gates saw (its ``--if-holds``
        among them): if another writer changed it meanwhile, ``ConflictError`` names the
        version now there. The database lets only one request per model, environment and
        version wait; the loser of a race gets the same ``PromotionError`` as someone who
        asks again later.
        """
        now = time.time()
        model_id = self.model_id(conn, model)
        self._expect_holder(conn, model_id, model, environment, expected)
        r = t.approval_requests
        same = (r.c.model_id == model_id, r.c.environment == environment, r.c.version == version)
        # A request past its expiry is stored as such, so it no longer holds the one place.
        conn.execute(
            update(r)
            .where(*same, r.c.status == "pending", r.c.expires_at < now)
            .values(status="expired")
        )
        row = {
            "model_id": model_id,
            "version": version,
            "environment": environment,
            "requested_by": requested_by,
            "reason": reason,
            "gates": dumps([g.to_json() for g in gates]),
            "status": "pending",
            "created_at": now,
            "expires_at": now + expires_in_s,
            "if_holds": if_holds,
        }
        try:
            with conn.begin_nested():
                new_id = conn.execute(r.insert(), row).inserted_primary_key
        except IntegrityError as exc:
            waiting = conn.execute(select(r.c.id).where(*same, r.c.status == "pending")).scalar()
            if waiting is None:  # opened and decided again while this one was written
                raise ConflictError(
                    f"another request to put {model} version {version} in {environment} was "
                    "opened at the same moment; nothing was changed, check and try again"
                ) from exc
            raise request_waiting(int(waiting), model, version, environment) from exc
        assert new_id is not None
        return self.get_request(int(new_id[0]), conn=conn)

    def _expect_holder(
        self,
        conn: Connection,
        model_id: int,
        model: str,
        environment: str,
        expected: Holding | None,
    ) -> None:
        """Lock ``environment``'s slot for ``model`` until the transaction ends and check it
        is still ``expected`` (the same revision, or still empty). SQLite's write
        transaction already holds the database's only write lock."""
        s = t.environment_slots
        revision = conn.execute(
            select(s.c.revision)
            .where(s.c.model_id == model_id, s.c.environment == environment)
            .with_for_update()
        ).scalar()
        if (None if expected is None else expected.revision) != revision:
            self._conflict(conn, model_id, model, environment)

    def pending_request(self, model: str, environment: str, version: int) -> ApprovalRequest | None:
        """The request for this version and environment still waiting (not expired)."""
        r = t.approval_requests
        with self.db.read() as conn:
            found = conn.execute(
                select(r.c.id).where(
                    r.c.model_id == self.model_id(conn, model),
                    r.c.environment == environment,
                    r.c.version == version,
                    r.c.status == "pending",
                )
            ).scalar()
            request = None if found is None else self.get_request(int(found), conn=conn)
        return request if request is not None and request.status == "pending" else None

    def request_if_holds(self, request_id: int) -> int | None:
        """The version ``--if-holds`` expected when the request was opened, if it was given."""
        r = t.approval_requests
        with self.db.read() as conn:
            found = conn.execute(select(r.c.if_holds).where(r.c.id == request_id)).scalar()
        return None if found is None else int(found)

    def get_request(self, request_id: int, *, conn: Connection | None = None) -> ApprovalRequest:
        if conn is None:
            with self.db.read() as own:
                return self.get_request(request_id, conn=own)
        r = t.approval_requests
        row = (
            conn.execute(
                select(r, t.models.c.name)
                .join(t.models, t.models.c.id == r.c.model_id)
                .where(r.c.id == request_id)
            )
            .mappings()
            .first()
        )
        if row is None:
            raise RequestNotFoundError(f"no approval request {request_id}")
        return _request(dict(row))

    def requests(self, status: str | None = None) -> list[ApprovalRequest]:
        r = t.approval_requests
        query = select(r, t.models.c.name).join(t.models, t.models.c.id == r.c.model_id)
        if status is not None:
            # Expiry is derived when read, and stored once a newer request replaces it.
            stored = ("pending", "expired") if status == "expired" else (status,)
            query = query.where(r.c.status.in_(stored))
        with self.db.read() as conn:
            rows = conn.execute(query.order_by(r.c.id)).mappings().all()
        found = [_request(dict(row)) for row in rows]
        return found if status is None else [q for q in found if q.status == status]

    def decide_request(
        self, conn: Connection, request_id: int, *, status: str, actor: str, reason: str
    ) -> None:
        r = t.approval_requests
        changed = conn.execute(
            update(r)
            .where(r.c.id == request_id, r.c.status == "pending")
            .values(status=status, decided_by=actor, decided_at=time.time(), decision_reason=reason)
        ).rowcount
        if changed != 1:
            raise ConflictError(
                f"approval request {request_id} was decided by someone else meanwhile"
            )


def request_waiting(request_id: int, model: str, version: int, environment: str) -> PromotionError:
    """The refusal of a second request for a version and environment while one waits."""
    return PromotionError(
        f"request {request_id} to put {model} version {version} in {environment} is already "
        "waiting for approval"
    )


def _gates(text: str) -> tuple[GateResult, ...]:
    return tuple(GateResult(g["gate"], bool(g["passed"]), g["detail"]) for g in loads(text))


def _event(row: dict[str, Any]) -> EnvironmentEvent:
    return EnvironmentEvent(
        id=int(row["id"]),
        model=row["name"],
        environment=row["environment"],
        action=row["action"],
        from_version=row["from_version"],
        to_version=row["to_version"],
        actor=row["actor"],
        reason=row["reason"],
        gates=_gates(row["gates"]),
        forced=bool(row["forced"]),
        request_id=row["request_id"],
        created_at=float(row["created_at"]),
        policy_version=row["policy_version"],
    )


def _request(row: dict[str, Any]) -> ApprovalRequest:
    status = row["status"]
    if status == "pending" and float(row["expires_at"]) < time.time():
        status = "expired"  # derived, so expiry needs no writer
    return ApprovalRequest(
        id=int(row["id"]),
        model=row["name"],
        version=int(row["version"]),
        environment=row["environment"],
        requested_by=row["requested_by"],
        reason=row["reason"],
        gates=_gates(row["gates"]),
        status=status,
        created_at=float(row["created_at"]),
        expires_at=float(row["expires_at"]),
        decided_by=row["decided_by"],
        decided_at=row["decided_at"],
        decision_reason=row["decision_reason"],
    )
