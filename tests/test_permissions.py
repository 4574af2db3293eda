"""Who may do what: every role (held everywhere or only in prod) x every action x every
environment, against the table a team reads in docs/team.md; refusals name the missing
permission."""

from __future__ import annotations

import itertools
from types import MappingProxyType

import pytest

from modelrail.entities import RoleGrant, User
from modelrail.errors import PermissionDeniedError
from modelrail.permissions import (
    ACTIONS,
    DEFAULT_PERMISSIONS,
    ROLES,
    Permissions,
    may,
    require,
)

# The expected table, written out by hand. A row is a role and where it is held (``*``:
# every environment); the columns say whether the action is allowed when asked about no
# environment (``-``), about dev and about prod. ``err``: the action is always about an
# environment, so asking without one is a programming error.
MATRIX = """
role      held  action    -    dev  prod
viewer    *     read      yes  yes  yes
viewer    *     log       no   no   no
viewer    *     request   err  no   no
viewer    *     approve   err  no   no
viewer    *     rollback  err  no   no
viewer    *     force     err  no   no
viewer    *     admin     no   no   no
viewer    prod  read      yes  no   yes
viewer    prod  log       no   no   no
viewer    prod  request   err  no   no
viewer    prod  approve   err  no   no
viewer    prod  rollback  err  no   no
viewer    prod  force     err  no   no
viewer    prod  admin     no   no   no
member    *     read      yes  yes  yes
member    *     log       yes  yes  yes
member    *     request   err  yes  yes
member    *     approve   err  no   no
member    *     rollback  err  no   no
member    *     force     err  no   no
member    *     admin     no   no   no
member    prod  read      yes  no   yes
member    prod  log       yes  no   yes
member    prod  request   err  no   yes
member    prod  approve   err  no   no
member    prod  rollback  err  no   no
member    prod  force     err  no   no
member    prod  admin     no   no   no
approver  *     read      yes  yes  yes
approver  *     log       no   no   no
approver  *     request   err  no   no
approver  *     approve   err  yes  yes
approver  *     rollback  err  yes  yes
approver  *     force     err  no   no
approver  *     admin     no   no   no
approver  prod  read      yes  no   yes
approver  prod  log       no   no   no
approver  prod  request   err  no   no
approver  prod  approve   err  no   yes
approver  prod  rollback  err  no   yes
approver  prod  force     err  no   no
approver  prod  admin     no   no   no
admin     *     read      yes  yes  yes
admin     *     log       yes  yes  yes
admin     *     request   err  yes  yes
admin     *     approve   err  yes  yes
admin     *     rollback  err  yes  yes
admin     *     force     err  yes  yes
admin     *     admin     yes  yes  yes
"""
ENVIRONMENTS = {"-": None, "dev": "dev", "prod": "prod"}


def _cases() -> list[tuple[str, str | None, str, str | None, str]]:
    lines = [line.split() for line in MATRIX.strip().splitlines()]
    header, rows = lines[0], lines[1:]
    cases = []
    for role, held, action, *answers in rows:
        for column, answer in zip(header[3:], answers, strict=True):
            scope = None if held == "*" else held
            cases.append((role, scope, action, ENVIRONMENTS[column], answer))
    return cases


CASES = _cases()


def test_the_table_covers_every_role_action_and_environment() -> None:
    covered = {(role, scope, action, env) for role, scope, action, env, _ in CASES}
    scopes = {role: [None] if role == "admin" else [None, "prod"] for role in ROLES}
    expected = {
        (role, scope, action, env)
        for role in ROLES
        for scope in scopes[role]
        for action, env in itertools.product(ACTIONS, ENVIRONMENTS.values())
    }
    assert covered == expected and len(CASES) == len(expected)


@pytest.mark.parametrize(
    ("role", "scope", "action", "environment", "answer"),
    CASES,
    ids=[f"{r}@{s or '*'}-{a}-{e or 'none'}" for r, s, a, e, _ in CASES],
)
def test_each_role_may_do_exactly_what_the_table_says(
    role: str, scope: str | None, action: str, environment: str | None, answer: str
) -> None:
    grants = [RoleGrant(role, scope)]
    if answer == "err":
        with pytest.raises(ValueError, match="needs an environment"):
            may(grants, action, environment)
        return
    assert may(grants, action, environment) is (answer == "yes")
    user = User(name="alice", created_at=0.0, created_by="admin", roles=tuple(grants))
    if answer == "yes":
        require(user, action, environment)
    else:
        with pytest.raises(PermissionDeniedError, match=r"^alice may not .*\(needs the ") as exc:
            require(user, action, environment)
        assert (exc.value.action, exc.value.environment, exc.value.http_status) == (
            action,
            environment,
            403,
        )


@pytest.mark.parametrize("action", ACTIONS)
@pytest.mark.parametrize("environment", ["dev", "prod"])
def test_someone_without_a_role_may_do_nothing(action: str, environment: str) -> None:
    assert not may([], action, environment)


def test_roles_add_up() -> None:
    grants = [RoleGrant("member"), RoleGrant("approver", "prod")]
    assert may(grants, "request", "dev") and may(grants, "approve", "prod")
    assert not may(grants, "approve", "staging") and not may(grants, "force", "prod")


@pytest.mark.parametrize(
    ("roles", "action", "environment", "message"),
    [
        (
            ("member",),
            "approve",
            "prod",
            "alice may not approve promotions into prod (needs the approver role in prod)",
        ),
        (
            ("approver@dev",),
            "rollback",
            "prod",
            "alice may not roll back prod (needs the approver role in prod)",
        ),
        (
            ("member", "approver"),
            "force",
            "prod",
            "alice may not force promotions into prod (needs the admin role)",
        ),
        (
            ("viewer",),
            "request",
            "staging",
            "alice may not request promotions into staging (needs the member role in staging)",
        ),
        (
            ("viewer",),
            "log",
            None,
            "alice may not log runs or register versions (needs the member role)",
        ),
        (
            ("member",),
            "admin",
            None,
            "alice may not administer users and policy (needs the admin role)",
        ),
        (
            ("member@dev",),
            "read",
            "prod",
            "alice may not read in prod (needs the viewer role in prod)",
        ),
    ],
)
def test_a_refusal_names_the_missing_permission(
    roles: tuple[str, ...], action: str, environment: str | None, message: str
) -> None:
    grants = tuple(RoleGrant(*role.split("@")) for role in roles)
    user = User(name="alice", created_at=0.0, created_by="admin", roles=grants)
    with pytest.raises(PermissionDeniedError) as exc:
        require(user, action, environment)
    assert str(exc.value) == message


def test_a_disabled_user_may_do_nothing_even_as_admin() -> None:
    user = User("root", 0.0, "admin", roles=(RoleGrant("admin"),), disabled_at=1.0)
    assert may(user.roles, "force", "prod")  # the roles alone would allow it
    with pytest.raises(PermissionDeniedError, match="root may not read: the user is disabled"):
        require(user, "read")


def test_an_environment_can_have_its_own_table() -> None:
    """The shared policy (coming) may let members approve in dev, and nobody force in prod."""
    relaxed = Permissions(
        roles=DEFAULT_PERMISSIONS.roles,
        environments=MappingProxyType(
            {
                "dev": {"member": frozenset({"read", "log", "request", "approve"})},
                "prod": {"admin": frozenset({"read", "approve", "rollback"})},
            }
        ),
    )
    member, admin = [RoleGrant("member")], [RoleGrant("admin")]
    assert may(member, "approve", "dev", permissions=relaxed)
    assert not may(member, "approve", "prod", permissions=relaxed)
    assert may(admin, "force", "dev", permissions=relaxed)
    assert not may(admin, "force", "prod", permissions=relaxed)
    user = User("alice", 0.0, "admin", roles=(RoleGrant("admin"),))
    with pytest.raises(PermissionDeniedError, match=r"\(no role may do that in prod\)"):
        require(user, "force", "prod", permissions=relaxed)


def test_unknown_actions_are_a_programming_error() -> None:
    with pytest.raises(ValueError, match="unknown action 'deploy'"):
        may([RoleGrant("admin")], "deploy", "prod")
