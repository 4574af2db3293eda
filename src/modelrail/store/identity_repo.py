"""Users, their roles and their API tokens.

``IdentityStore`` is what the identity service needs; ``IdentityRepository`` keeps it in
the SQL store (a team server's client will offer the same methods over HTTP). Only the
sha256 of a token's secret is ever written; ``find_token`` looks a token up by it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields
from typing import Any, Protocol

from sqlalchemy import Connection, RowMapping, Select, bindparam, delete, or_, select, update

from modelrail.entities import ApiToken, RoleGrant, User
from modelrail.errors import UserExistsError, UserNotFoundError
from modelrail.store import tables as t
from modelrail.store.db import Database
from modelrail.store.fast import FastStatement


class IdentityStore(Protocol):
    def add_user(
        self, name: str, roles: Sequence[RoleGrant], *, created_at: float, created_by: str
    ) -> User: ...

    def get_user(self, name: str) -> User | None: ...

    def users(self) -> list[User]: ...

    def disable_user(self, name: str, *, at: float, by: str) -> User: ...

    def add_role(self, name: str, grant: RoleGrant, *, at: float, by: str) -> bool: ...

    def remove_role(self, name: str, grant: RoleGrant) -> bool: ...

    def add_token(
        self,
        user: str,
        *,
        label: str,
        secret_sha256: str,
        created_at: float,
        created_by: str,
        expires_at: float | None,
    ) -> ApiToken: ...

    def tokens(self, user: str | None = None) -> list[ApiToken]: ...

    def get_token(self, token_id: int) -> ApiToken | None: ...

    def revoke_token(self, token_id: int, *, at: float) -> ApiToken | None: ...

    def find_token(self, secret_sha256: str) -> tuple[ApiToken, str, User] | None: ...

    def touch_token(self, token_id: int, *, at: float, every: float) -> None: ...


class IdentityRepository:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._sign_in = FastStatement(_sign_in_query(), db.engine.dialect)

    # -- users -------------------------------------------------------------------------

    def add_user(
        self, name: str, roles: Sequence[RoleGrant], *, created_at: float, created_by: str
    ) -> User:
        """Create the user with its roles in one transaction; a taken name is refused."""
        u = t.users
        with self.db.write() as conn:
            self.db.lock(conn, f"user:{name}")
            if conn.execute(select(u.c.id).where(u.c.name == name)).first() is not None:
                raise UserExistsError(
                    f"a user named {name!r} exists already (names are never reused)"
                )
            values = {"name": name, "created_at": created_at, "created_by": created_by}
            key = conn.execute(u.insert(), values).inserted_primary_key
            assert key is not None
            for grant in dict.fromkeys(roles):
                row = _grant_row(int(key[0]), grant, created_at, created_by)
                conn.execute(t.user_roles.insert(), row)
            return _one_user(conn, name)

    def get_user(self, name: str) -> User | None:
        with self.db.read() as conn:
            found = _users(conn, select(t.users).where(t.users.c.name == name))
        return found[0] if found else None

    def users(self) -> list[User]:
        with self.db.read() as conn:
            return _users(conn, select(t.users))

    def disable_user(self, name: str, *, at: float, by: str) -> User:
        """Disable the user (once: a second call keeps the first time and person)."""
        u = t.users
        with self.db.write() as conn:
            conn.execute(
                update(u)
                .where(u.c.name == name, u.c.disabled_at.is_(None))
                .values(disabled_at=at, disabled_by=by)
            )
            return _one_user(conn, name)

    def add_role(self, name: str, grant: RoleGrant, *, at: float, by: str) -> bool:
        """Grant the role; False when the user holds it already."""
        with self.db.write() as conn:
            self.db.lock(conn, f"user:{name}")
            user_id = _user_id(conn, name)
            if conn.execute(select(t.user_roles.c.id).where(*_grant_where(user_id, grant))).first():
                return False
            conn.execute(t.user_roles.insert(), _grant_row(user_id, grant, at, by))
            return True

    def remove_role(self, name: str, grant: RoleGrant) -> bool:
        """Take the role back; False when the user did not hold it."""
        with self.db.write() as conn:
            user_id = _user_id(conn, name)
            removed = conn.execute(delete(t.user_roles).where(*_grant_where(user_id, grant)))
            return removed.rowcount == 1

    # -- tokens ------------------------------------------------------------------------

    def add_token(
        self,
        user: str,
        *,
        label: str,
        secret_sha256: str,
        created_at: float,
        created_by: str,
        expires_at: float | None,
    ) -> ApiToken:
        row = {
            "label": label,
            "secret_sha256": secret_sha256,
            "created_at": created_at,
            "created_by": created_by,
            "expires_at": expires_at,
            "revoked_at": None,
            "last_used_at": None,
        }
        with self.db.write() as conn:
            row["user_id"] = _user_id(conn, user)
            key = conn.execute(t.api_tokens.insert(), row).inserted_primary_key
            assert key is not None
            return _tokens(conn, _token_query().where(t.api_tokens.c.id == int(key[0])))[0]

    def tokens(self, user: str | None = None) -> list[ApiToken]:
        query = _token_query()
        if user is not None:
            query = query.where(t.users.c.name == user)
        with self.db.read() as conn:
            return _tokens(conn, query)

    def get_token(self, token_id: int) -> ApiToken | None:
        with self.db.read() as conn:
            found = _tokens(conn, _token_query().where(t.api_tokens.c.id == token_id))
        return found[0] if found else None

    def revoke_token(self, token_id: int, *, at: float) -> ApiToken | None:
        """Revoke the token (once: revoking again keeps the first time); None if unknown."""
        k = t.api_tokens
        with self.db.write() as conn:
            conn.execute(
                update(k).where(k.c.id == token_id, k.c.revoked_at.is_(None)).values(revoked_at=at)
            )
            found = _tokens(conn, _token_query().where(k.c.id == token_id))
        return found[0] if found else None

    def find_token(self, secret_sha256: str) -> tuple[ApiToken, str, User] | None:
        """The token whose secret hashes to ``secret_sha256``, the stored hash (for a
        constant-time comparison) and its user, read afresh: nothing is cached."""
        # Every request to the server signs in: the token, its user and the user's roles
        # come in one prebuilt statement (a row per role), outside a transaction.
        with self.db.read() as conn:
            cursor = self._sign_in.execute(conn, {"secret": secret_sha256})
            rows = cursor.fetchall()
            cursor.close()
        if not rows:
            return None
        first = rows[0]
        token = ApiToken(*first[: len(_TOKEN_FIELDS)])
        stored = str(first[len(_TOKEN_FIELDS)])
        owner = first[len(_TOKEN_FIELDS) + 1 : -2]
        roles = tuple(RoleGrant(str(row[-2]), row[-1]) for row in rows if row[-2] is not None)
        user = User(**dict(zip(_USER_COLUMNS, owner, strict=True)), roles=roles)
        return token, stored, user

    def touch_token(self, token_id: int, *, at: float, every: float) -> None:
        """Record a use, at most once per ``every`` seconds (not a write per request)."""
        k = t.api_tokens
        stale = or_(k.c.last_used_at.is_(None), k.c.last_used_at < at - every)
        with self.db.write() as conn:
            conn.execute(update(k).where(k.c.id == token_id, stale).values(last_used_at=at))


def _grant_row(user_id: int, grant: RoleGrant, at: float, by: str) -> dict[str, Any]:
    return {
        "user_id": user_id,
        "role": grant.role,
        "environment": grant.environment,
        "granted_at": at,
        "granted_by": by,
    }


def _grant_where(user_id: int, grant: RoleGrant) -> list[Any]:
    r = t.user_roles.c
    env = (
        r.environment.is_(None) if grant.environment is None else r.environment == grant.environment
    )
    return [r.user_id == user_id, r.role == grant.role, env]


def _user_id(conn: Connection, name: str) -> int:
    found = conn.execute(select(t.users.c.id).where(t.users.c.name == name)).scalar()
    if found is None:
        raise UserNotFoundError(f"no user named {name!r}")
    return int(found)


def _one_user(conn: Connection, name: str) -> User:
    found = _users(conn, select(t.users).where(t.users.c.name == name))
    if not found:
        raise UserNotFoundError(f"no user named {name!r}")
    return found[0]


def _users(conn: Connection, query: Select[Any]) -> list[User]:
    """The users ``query`` selects, by name, each with its roles."""
    rows = conn.execute(query.order_by(t.users.c.name)).mappings().all()
    if not rows:
        return []
    r = t.user_roles.c
    grants: dict[int, list[RoleGrant]] = {}
    ids = [row["id"] for row in rows]
    for user_id, role, environment in conn.execute(
        select(r.user_id, r.role, r.environment).where(r.user_id.in_(ids)).order_by(r.id)
    ):
        grants.setdefault(int(user_id), []).append(RoleGrant(str(role), environment))
    return [
        User(
            **{name: row[name] for name in _USER_COLUMNS},
            roles=tuple(grants.get(row["id"], ())),
        )
        for row in rows
    ]


_USER_COLUMNS = tuple(f.name for f in fields(User) if f.name != "roles")


def _token_query() -> Select[Any]:
    k = t.api_tokens
    return (
        select(
            k.c.id,
            k.c.user_id,
            t.users.c.name.label("user"),
            k.c.label,
            k.c.created_at,
            k.c.created_by,
            k.c.expires_at,
            k.c.revoked_at,
            k.c.last_used_at,
        )
        .join(t.users, t.users.c.id == k.c.user_id)
        .order_by(k.c.id)
    )


def _tokens(conn: Connection, query: Select[Any]) -> list[ApiToken]:
    return [_token(row) for row in conn.execute(query).mappings()]


def _token(row: RowMapping) -> ApiToken:
    return ApiToken(**{name: row[name] for name in _TOKEN_FIELDS})


_TOKEN_FIELDS = tuple(f.name for f in fields(ApiToken))


def _sign_in_query() -> Select[Any]:
    """A token by its secret's hash: its fields in ``ApiToken``'s order, the stored hash,
    its user's fields but the roles, then one role and its environment per row (NULL when
    the user holds none), oldest grant first."""
    k, u, r = t.api_tokens, t.users, t.user_roles
    token = [_token_query().selected_columns[name] for name in _TOKEN_FIELDS]
    return (
        select(*token, k.c.secret_sha256, *(u.c[name] for name in _USER_COLUMNS))
        .add_columns(r.c.role, r.c.environment)
        .select_from(k.join(u, u.c.id == k.c.user_id).outerjoin(r, r.c.user_id == u.c.id))
        .where(k.c.secret_sha256 == bindparam("secret"))
        .order_by(r.c.id)
    )
