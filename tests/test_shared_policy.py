"""The team's one policy in the store: applied by an admin, versioned, append-only, obeyed by
every client of the store whatever its own modelrail.toml says, and named by every promotion.

Two project folders share one store (SQLite, then PostgreSQL), as a team would."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from modelrail.client import Client
from modelrail.config import init_project, load_settings
from modelrail.entities import RoleGrant, User
from modelrail.errors import (
    ConfigError,
    PermissionDeniedError,
    PolicyNotFoundError,
    PromotionError,
)
from modelrail.permissions import require
from modelrail.policy_document import canonical, parse_document

MODEL = "churn"
TEAM_POLICY = """
[environments]
chain = ["dev", "staging", "prod"]
primary_metric = "accuracy"

[environments.staging]
min = { accuracy = 0.5 }

[environments.prod]
approval = true
allow_pickle = false

[environments.prod.permissions]
request = ["member"]
force = []
"""
# What the second folder's file says: straight to prod, no approval.
LOOSE_LOCAL = """
[environments]
chain = ["dev", "prod"]

[environments.prod]
approval = false
runtime_compatible = false

[environments.prod.settings]
serving_port = 9123
"""


def _folder(root: Path, name: str, toml: str | None = None) -> Path:
    folder = root / name
    folder.mkdir()
    init_project(folder)
    if toml is not None:
        (folder / "modelrail.toml").write_text(toml, encoding="utf-8")
    return folder


def _client(folder: Path, store_url: str, user: str) -> Client:
    """A client of the team's store and artifact root, from its own folder."""
    settings = load_settings(cwd=folder, environ={}, create=False)
    artifacts = str(folder.parent / "team-artifacts")
    return Client(store_url=store_url, artifact_root=artifacts, settings=settings, user=user)


@pytest.fixture
def two(store_url: str, tmp_path: Path) -> Iterator[tuple[Client, Client]]:
    """An admin's folder with the default file, a colleague's folder with a loose one."""
    with (
        _client(_folder(tmp_path, "admin"), store_url, "ada") as admin,
        _client(_folder(tmp_path, "colleague", LOOSE_LOCAL), store_url, "bob") as colleague,
    ):
        yield admin, colleague


def _register(client: Client) -> int:
    X = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0], "b": [1.0, 0.0, 1.0, 0.0]})
    with client.start_run(experiment="e") as run:
        run.log_metric("accuracy", 0.9)
        model = LogisticRegression().fit(X, [0, 0, 1, 1])
        version = run.log_model(model, MODEL, input_example=X[:2])
    return version.version


def test_without_a_stored_policy_the_project_file_governs(two: tuple[Client, Client]) -> None:
    admin, colleague = two
    assert admin.policy_in_force() == (admin.settings.policy, None)
    assert colleague.policy.chain == ("dev", "prod")
    with pytest.raises(PolicyNotFoundError, match="holds no shared policy"):
        admin.policy_record()
    assert admin.policy_history() == []


def test_the_stored_policy_governs_every_client_and_a_loose_file_cannot_loosen_it(
    two: tuple[Client, Client],
) -> None:
    admin, colleague = two
    record, created = admin.apply_policy(TEAM_POLICY, source="team.toml", reason="one policy")
    assert created and record.version == 1 and record.author == "ada"
    assert record.reason == "one policy"

    policy, version = colleague.policy_in_force()
    assert version == 1
    assert policy.chain == ("dev", "staging", "prod")
    assert policy.environment("prod").gates.approval is True
    # Where the colleague's machine deploys stays its own.
    assert policy.environment("prod").settings == {"serving_port": 9123}

    number = _register(colleague)
    with pytest.raises(
        PromotionError, match="never been in staging"
    ):  # the file's chain is ignored
        colleague.promote(f"{MODEL}:{number}", "prod")
    colleague.promote(f"{MODEL}:{number}", "staging")
    outcome = colleague.promote(f"{MODEL}:{number}", "prod", reason="ship")
    # The file's approval = false does not count: prod waits for a second person.
    assert outcome.event is None and outcome.request is not None
    history = colleague.history(MODEL)
    assert [e.action for e in history] == ["auto", "promote", "request"]
    assert {e.policy_version for e in history} == {1}


def test_every_change_names_the_policy_version_that_judged_it(
    two: tuple[Client, Client],
) -> None:
    admin, colleague = two
    number = _register(admin)  # judged by the file: no version
    admin.apply_policy(TEAM_POLICY)
    admin.promote(f"{MODEL}:{number}", "staging")
    admin.apply_policy(TEAM_POLICY.replace("accuracy = 0.5", "accuracy = 0.6"), reason="stricter")
    request = admin.promote(f"{MODEL}:{number}", "prod").request
    assert request is not None
    colleague.approve(request.id, reason="ok")
    events = admin.history(MODEL)
    assert [(e.action, e.policy_version) for e in events] == [
        ("auto", None),
        ("promote", 1),
        ("request", 2),
        ("approve", 2),
    ]


def test_applying_the_same_meaning_again_stores_nothing(two: tuple[Client, Client]) -> None:
    admin, colleague = two
    first, _ = admin.apply_policy(TEAM_POLICY)
    # Other spelling, same meaning: integers for floats, other order, explicit defaults.
    respelled = TEAM_POLICY.replace("accuracy = 0.5", "accuracy = 0.50") + (
        "\n[environments.dev]\nrequire_previous = false\n"
    )
    again, created = colleague.apply_policy(respelled)
    assert not created and again == first
    assert [r.version for r in admin.policy_history()] == [1]
    assert first.document == canonical(parse_document(TEAM_POLICY, "team.toml"))


def test_a_bad_document_names_its_file_and_line_and_stores_nothing(
    two: tuple[Client, Client],
) -> None:
    admin, _ = two
    bad = TEAM_POLICY.replace("force = []", 'force = ["owner"]')
    with pytest.raises(ConfigError, match=r"team\.toml:\d+: .*force must be a list of roles"):
        admin.apply_policy(bad, source="team.toml")
    with pytest.raises(ConfigError, match=r"team\.toml: not valid TOML"):
        admin.apply_policy("[environments\nchain = 1", source="team.toml")
    with pytest.raises(ConfigError, match=r"team\.toml has no \[environments\] table"):
        admin.apply_policy("[store]\nurl = 'x'\n", source="team.toml")
    with pytest.raises(ConfigError, match="unknown action 'deploy'"):
        admin.apply_policy(TEAM_POLICY.replace("force = []", "deploy = []"), source="t")
    assert admin.policy_history() == []


def test_the_stored_versions_cannot_be_changed_or_deleted(two: tuple[Client, Client]) -> None:
    admin, _ = two
    admin.apply_policy(TEAM_POLICY)
    for statement in ("UPDATE policies SET author = 'eve'", "DELETE FROM policies"):
        with pytest.raises(DBAPIError, match="append-only"), admin.db.write() as conn:
            conn.execute(text(statement))
    assert admin.policy_record().author == "ada"


def test_the_policy_says_who_may_do_what_per_environment(two: tuple[Client, Client]) -> None:
    admin, _ = two
    admin.apply_policy(TEAM_POLICY)
    permissions = admin.policy.permissions
    boss = User("boss", 0.0, "setup", (RoleGrant("admin"),))
    member = User("mia", 0.0, "setup", (RoleGrant("member"),))
    require(member, "request", "prod", permissions=permissions)
    require(member, "request", "staging", permissions=permissions)
    # force = [] in prod: nobody, not even an admin; staging keeps the defaults.
    with pytest.raises(PermissionDeniedError, match="no role may do that in prod"):
        require(boss, "force", "prod", permissions=permissions)
    require(boss, "force", "staging", permissions=permissions)
    # request = ["member"] in prod: an admin is no longer among them.
    with pytest.raises(PermissionDeniedError, match="needs the member role in prod"):
        require(boss, "request", "prod", permissions=permissions)


def test_once_the_store_has_users_only_an_admin_of_it_applies_a_policy(
    two: tuple[Client, Client],
) -> None:
    admin, colleague = two
    admin.apply_policy(TEAM_POLICY)  # no users yet: a laptop's single user may
    admin.add_user("ada", ["admin"])
    admin.add_user("bob", ["member"])
    stricter = TEAM_POLICY.replace("accuracy = 0.5", "accuracy = 0.7")
    with pytest.raises(PermissionDeniedError, match=r"bob may not administer users and policy"):
        colleague.apply_policy(stricter)
    with pytest.raises(PermissionDeniedError, match="no user of this store has that name"):
        colleague.apply_policy(stricter, actor="nobody")
    record, created = admin.apply_policy(stricter)
    assert created and (record.version, record.author) == (2, "ada")


def test_a_stored_policy_never_makes_another_machine_run_a_command(
    two: tuple[Client, Client], tmp_path: Path
) -> None:
    admin, colleague = two
    marker = tmp_path / "ran"
    hook = TEAM_POLICY.replace(
        'primary_metric = "accuracy"',
        f'primary_metric = "accuracy"\nnotify_command = "touch {marker}"',
    )
    record, _ = admin.apply_policy(hook)
    assert "notify_command" not in record.document
    assert colleague.policy.notify_command is None  # the colleague's own file names none
    number = _register(colleague)
    colleague.promote(f"{MODEL}:{number}", "staging")
    assert not marker.exists()
