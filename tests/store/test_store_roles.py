"""A PostgreSQL store owned by one role and used by another: the application's role can
read and write rows but cannot disable, rewrite or drop the append-only history, and it
never tries to migrate a schema it does not own."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from modelrail.client import Client
from modelrail.config import load_settings
from modelrail.errors import StoreSchemaError, StoreUnavailableError
from modelrail.store import db
from modelrail.store.db import HEAD_REVISION
from modelrail.store.tables import metadata
from tests.cli.test_cli import cli

pytestmark = pytest.mark.postgres
POSTGRES_URL = os.environ.get("MODELRAIL_TEST_POSTGRES_URL")
MODEL = "pets-classifier"


@dataclass(frozen=True)
class Roles:
    owner: str
    app: str
    schema: str
    owner_url: str
    app_url: str


@pytest.fixture
def roles() -> Iterator[Roles]:
    """An owner role with its own schema and an application role that owns nothing."""
    if not POSTGRES_URL:
        pytest.skip("set MODELRAIL_TEST_POSTGRES_URL to run the PostgreSQL role tests")
    tag = uuid.uuid4().hex[:10]
    owner, app, schema = f"mr_owner_{tag}", f"mr_app_{tag}", f"mr_{tag}"
    admin = create_engine(POSTGRES_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE ROLE "{owner}" LOGIN'))
        conn.execute(text(f'CREATE ROLE "{app}" LOGIN'))
        conn.execute(text(f'CREATE SCHEMA "{schema}" AUTHORIZATION "{owner}"'))
    base = make_url(POSTGRES_URL).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield Roles(
            owner=owner,
            app=app,
            schema=schema,
            owner_url=base.set(username=owner, password=None).render_as_string(False),
            app_url=base.set(username=app, password=None).render_as_string(False),
        )
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
            conn.execute(text(f'DROP OWNED BY "{owner}", "{app}"'))
            conn.execute(text(f'DROP ROLE "{app}"'))
            conn.execute(text(f'DROP ROLE "{owner}"'))
        admin.dispose()


def init_as_owner(roles: Roles, project: Path, *extra: str) -> str:
    done = cli(project, "init", "--store", roles.owner_url, *extra)
    assert done.returncode == 0, done.stderr
    return done.stdout


def app_client(roles: Roles, project: Path, user: str = "alice") -> Client:
    settings = load_settings(cwd=project, environ={}, create=False)
    return Client(store_url=roles.app_url, settings=settings, user=user)


def run_sql(url: str, statement: str) -> None:
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(text(statement))
    finally:
        engine.dispose()


def privileges(roles: Roles) -> dict[str, set[str]]:
    """What the application role may do to each modelrail table."""
    found: dict[str, set[str]] = {}
    engine = create_engine(roles.owner_url)
    with engine.connect() as conn:
        for table in [*metadata.tables, "alembic_version"]:
            found[table] = {
                p
                for p in ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE")
                if conn.execute(
                    text("SELECT has_table_privilege(:role, :table, :p)"),
                    {"role": roles.app, "table": f'"{roles.schema}"."{table}"', "p": p},
                ).scalar()
            }
    engine.dispose()
    return found


def log_version(client: Client, c: float) -> None:
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(60, 3)), columns=["age", "weight", "height"])
    y = (X["age"] > 0).astype(int)
    with client.start_run("pets", architecture="Alpha") as run:
        run.log_dataset(X, name="pets", role="train")
        run.log_params({"C": c})
        run.log_metrics({"accuracy": 0.9})
        run.log_model(LogisticRegression(C=c).fit(X, y), MODEL, input_example=X[:3])


def register_and_promote(client: Client, bob: Client) -> None:
    """Version 1 through staging into prod, approved by bob."""
    log_version(client, 1.0)
    client.promote(f"{MODEL}:1", to="staging", reason="looks good")
    request = client.promote(f"{MODEL}:1", to="prod", reason="ship it").request
    assert request is not None
    bob.approve(request.id, reason="checked")


def test_app_role_tracks_registers_and_promotes_after_the_owner_inits_the_store(
    roles: Roles, tmp_path: Path
) -> None:
    out = init_as_owner(roles, tmp_path, "--app-role", roles.app)

    assert f"is at schema revision {HEAD_REVISION}" in out
    assert f"role '{roles.app}' may read and write" in out
    append_only = "environment_events, imported_events, imports, model_card_sections, policies"
    assert f"may only add rows to {append_only}" in out
    with app_client(roles, tmp_path) as alice, app_client(roles, tmp_path, "bob") as bob:
        register_and_promote(alice, bob)
        log_version(alice, 0.5)
        alice.promote(f"{MODEL}:2", to="staging")
        alice.rollback(MODEL, "staging", reason="drill")
        history = [(e.environment, e.action, e.to_version) for e in alice.history(MODEL)]
        assert alice.get_model_version(f"{MODEL}@staging").version == 1
        assert alice.get_model_version(f"{MODEL}@prod").version == 1
    assert ("staging", "rollback", 1) in history
    assert ("prod", "approve", 1) in history


def test_app_role_cannot_disable_rewrite_or_drop_the_history(roles: Roles, tmp_path: Path) -> None:
    init_as_owner(roles, tmp_path, "--app-role", roles.app)
    with app_client(roles, tmp_path) as alice, app_client(roles, tmp_path, "bob") as bob:
        register_and_promote(alice, bob)
        before = alice.history(MODEL)

    attacks = [
        "ALTER TABLE environment_events DISABLE TRIGGER ALL",
        "ALTER TABLE environment_events DISABLE TRIGGER environment_events_append_only",
        "UPDATE environment_events SET actor = 'mallory'",
        "DELETE FROM environment_events",
        "TRUNCATE environment_events",
        "DROP TABLE environment_events",
        "DROP TABLE runs CASCADE",
        "DROP FUNCTION modelrail_append_only() CASCADE",
        "UPDATE policies SET author = 'mallory'",
        "DELETE FROM policies",
        "ALTER TABLE policies DISABLE TRIGGER policies_append_only",
        "DROP FUNCTION modelrail_append_only_policies() CASCADE",
        "UPDATE alembic_version SET version_num = '0001'",
        "CREATE TABLE sneaky (id integer)",
    ]
    for attack in attacks:
        with pytest.raises(DBAPIError) as refused:
            run_sql(roles.app_url, attack)
        assert getattr(refused.value.orig, "sqlstate", None) == "42501", attack
        assert "permission denied" in str(refused.value) or "must be owner" in str(refused.value)

    with app_client(roles, tmp_path) as alice:
        assert alice.history(MODEL) == before
    granted = privileges(roles)
    assert granted["environment_events"] == {"SELECT", "INSERT"}
    assert granted["policies"] == {"SELECT", "INSERT"}
    assert granted["alembic_version"] == {"SELECT"}
    assert granted["runs"] == {"SELECT", "INSERT", "UPDATE", "DELETE"}
    assert not any("TRUNCATE" in p for p in granted.values())


@pytest.mark.parametrize("schema_usage", [False, True], ids=["no-usage", "usage"])
def test_app_role_on_an_uncreated_store_is_told_to_init_it_as_the_owner(
    roles: Roles, tmp_path: Path, schema_usage: bool
) -> None:
    if schema_usage:
        run_sql(roles.owner_url, f'GRANT USAGE ON SCHEMA "{roles.schema}" TO "{roles.app}"')
    cli(tmp_path, "init")

    done = cli(tmp_path, "runs", env={"MODELRAIL_STORE": roles.app_url})

    assert done.returncode == StoreSchemaError.exit_code == 3
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith("error: ")
    assert f"--app-role {roles.app}'" in done.stderr
    assert "no modelrail tables" in done.stderr
    if schema_usage:
        assert f"in schema '{roles.schema}', and role '{roles.app}' may not create" in done.stderr
    else:
        assert f"role '{roles.app}' may not use any schema on its search_path" in done.stderr
    with pytest.raises(StoreSchemaError):
        app_client(roles, tmp_path)
    engine = create_engine(roles.owner_url)
    with engine.connect() as conn:
        tables = conn.execute(
            text("SELECT count(*) FROM pg_tables WHERE schemaname = :s"), {"s": roles.schema}
        ).scalar()
    engine.dispose()
    assert tables == 0


def test_app_role_without_grants_on_a_created_store_is_told_to_ask_the_owner(
    roles: Roles, tmp_path: Path
) -> None:
    init_as_owner(roles, tmp_path)  # no --app-role: the app role may not even read
    run_sql(roles.owner_url, f'GRANT USAGE ON SCHEMA "{roles.schema}" TO "{roles.app}"')

    with pytest.raises(StoreSchemaError, match=f"role '{roles.app}' may not read") as refused:
        app_client(roles, tmp_path)

    assert f"--app-role {roles.app}' to grant it access" in str(refused.value)


def _downgrade(url: str, revision: str) -> None:
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(Path(db.__file__).with_name("migrations")))
    engine = create_engine(url)
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, revision)
    engine.dispose()


def test_app_role_on_an_older_schema_waits_for_the_owner_to_upgrade_it(
    roles: Roles, tmp_path: Path
) -> None:
    init_as_owner(roles, tmp_path, "--app-role", roles.app)
    _downgrade(roles.owner_url, "0004")  # before the batch tables existed

    done = cli(tmp_path, "runs", env={"MODELRAIL_STORE": roles.app_url})

    assert done.returncode == 3
    assert "Traceback" not in done.stderr
    assert (
        f"has schema revision '0004' and this modelrail needs '{HEAD_REVISION}'; "
        f"role '{roles.app}' does not own the schema, so it cannot upgrade it"
    ) in done.stderr
    assert "modelrail init --store <URL of that role>' to upgrade it" in done.stderr
    engine = create_engine(roles.owner_url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == "0004"
    engine.dispose()

    # The owner upgrades without naming the app role again: it keeps its grants, the new
    # tables included, and the history stays append-only.
    init_as_owner(roles, tmp_path)
    granted = privileges(roles)
    assert granted["batch_runs"] == {"SELECT", "INSERT", "UPDATE", "DELETE"}
    assert granted["environment_events"] == {"SELECT", "INSERT"}
    done = cli(tmp_path, "batch", "history", "--json", env={"MODELRAIL_STORE": roles.app_url})
    assert done.returncode == 0, done.stderr
    with app_client(roles, tmp_path) as alice, app_client(roles, tmp_path, "bob") as bob:
        register_and_promote(alice, bob)


def test_a_missing_privilege_is_a_clear_error_naming_the_table_and_the_fix(
    roles: Roles, tmp_path: Path
) -> None:
    init_as_owner(roles, tmp_path, "--app-role", roles.app)
    run_sql(roles.owner_url, f'REVOKE INSERT ON experiments FROM "{roles.app}"')

    with app_client(roles, tmp_path) as alice, pytest.raises(StoreUnavailableError) as refused:
        alice.start_run("pets")

    assert refused.value.exit_code == 3
    assert "permission denied for table experiments" in str(refused.value)
    assert f"(role '{roles.app}')" in str(refused.value)
    assert f"--app-role {roles.app}'" in str(refused.value)


@pytest.mark.parametrize(
    ("who", "app_role", "expected"),
    [
        ("owner", "nobody_{tag}", "app role 'nobody_{tag}' does not exist on store"),
        ("owner", "{owner}", "app role '{owner}' owns the modelrail tables of store"),
        ("owner", "postgres", "app role 'postgres' is a superuser"),
        ("app", "{app}", "role '{app}' does not own the modelrail tables of store"),
    ],
    ids=["missing-role", "owner-as-app", "superuser-as-app", "granted-by-the-app"],
)
def test_init_refuses_an_app_role_that_would_not_split_ownership(
    roles: Roles, tmp_path: Path, who: str, app_role: str, expected: str
) -> None:
    init_as_owner(roles, tmp_path, "--app-role", roles.app)
    names = {"tag": uuid.uuid4().hex[:6], "owner": roles.owner, "app": roles.app}
    store = roles.owner_url if who == "owner" else roles.app_url
    role, expected = app_role.format(**names), expected.format(**names)

    done = cli(tmp_path, "init", "--store", store, "--app-role", role)

    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith("error: ")
    assert expected in done.stderr


def test_init_refuses_an_app_role_on_sqlite(tmp_path: Path) -> None:
    done = cli(tmp_path, "init", "--app-role", "modelrail_app")

    assert done.returncode == 2
    assert "app role 'modelrail_app': store sqlite:///" in done.stderr
    assert "is SQLite, which has no roles" in done.stderr
