"""Who may do what: roles, actions and the table between them.

A user holds roles (``viewer``, ``member``, ``approver``, ``admin``), each in one environment
or in every environment. An action is either about the project as a whole (``read``,
``log`` runs and registrations, ``admin`` of users and policy) or about one environment
(``request`` a promotion into it, ``approve`` one, ``rollback`` there, ``force`` a promotion
into it).

The table from roles to actions is data (``Permissions``): the defaults below, with
per-environment overrides for the team's shared policy to set. A grant in one environment
counts for that environment's actions, and for the project's actions asked without an
environment (a member of dev still logs runs, which belong to no environment).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from modelrail.entities import RoleGrant, User
from modelrail.errors import PermissionDeniedError

ROLES = ("viewer", "member", "approver", "admin")
ACTIONS = ("read", "log", "request", "approve", "rollback", "force", "admin")
# Actions always asked about one environment.
ENVIRONMENT_ACTIONS = frozenset({"request", "approve", "rollback", "force"})
# Roles that only make sense everywhere: administering users and policy has no environment.
GLOBAL_ROLES = frozenset({"admin"})

# How a refusal names each action.
_DOING = {
    "read": "read",
    "log": "log runs or register versions",
    "request": "request promotions into {env}",
    "approve": "approve promotions into {env}",
    "rollback": "roll back {env}",
    "force": "force promotions into {env}",
    "admin": "administer users and policy",
}


def _table(rows: Mapping[str, Iterable[str]]) -> Mapping[str, frozenset[str]]:
    return MappingProxyType({role: frozenset(actions) for role, actions in rows.items()})


@dataclass(frozen=True)
class Permissions:
    """Role -> actions, with per-environment tables replacing a role's row there."""

    roles: Mapping[str, frozenset[str]]
    environments: Mapping[str, Mapping[str, frozenset[str]]] = field(
        default_factory=lambda: MappingProxyType({})
    )

    def actions(self, role: str, environment: str | None) -> frozenset[str]:
        """What ``role`` may do in ``environment`` (None: the project's own actions)."""
        override = self.environments.get(environment) if environment is not None else None
        if override is not None and role in override:
            return override[role]
        return self.roles.get(role, frozenset())

    def roles_for(self, action: str, environment: str | None) -> list[str]:
        """The roles that may do ``action`` in ``environment``, fewest powers first."""
        return [role for role in ROLES if action in self.actions(role, environment)]


DEFAULT_PERMISSIONS = Permissions(
    roles=_table(
        {
            "viewer": ("read",),
            "member": ("read", "log", "request"),
            "approver": ("read", "approve", "rollback"),
            "admin": ACTIONS,
        }
    )
)


def with_environment_rules(
    rules: Mapping[str, Mapping[str, Iterable[str]]],
    base: Permissions = DEFAULT_PERMISSIONS,
) -> Permissions:
    """``base`` with, per environment, the roles a policy names for an action: there, those
    roles (and only those) may do it. Actions the policy leaves out keep ``base``'s roles.

    ``rules`` maps environment -> action -> roles, e.g. ``{"prod": {"force": ["admin"]}}``."""
    environments = {}
    for environment, by_action in rules.items():
        table = {}
        for role in ROLES:
            actions = set(base.actions(role, environment))
            for action, roles in by_action.items():
                check_action(action, environment)
                if role in roles:
                    actions.add(action)
                else:
                    actions.discard(action)
            table[role] = frozenset(actions)
        environments[environment] = MappingProxyType(table)
    return Permissions(roles=base.roles, environments=MappingProxyType(environments))


def check_action(action: str, environment: str | None) -> None:
    """Refuse an action this module does not know, or an environment action without one.

    These are programming errors, not user input: ``ValueError``."""
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}: one of {', '.join(ACTIONS)}")
    if action in ENVIRONMENT_ACTIONS and environment is None:
        raise ValueError(f"action {action!r} needs an environment")


def may(
    grants: Iterable[RoleGrant],
    action: str,
    environment: str | None = None,
    *,
    permissions: Permissions = DEFAULT_PERMISSIONS,
) -> bool:
    """Whether the roles in ``grants`` allow ``action`` (in ``environment``)."""
    check_action(action, environment)
    for grant in grants:
        applies = (
            grant.environment is None
            or grant.environment == environment
            or (environment is None and action not in ENVIRONMENT_ACTIONS)
        )
        if applies and action in permissions.actions(grant.role, environment):
            return True
    return False


def require(
    user: User,
    action: str,
    environment: str | None = None,
    *,
    permissions: Permissions = DEFAULT_PERMISSIONS,
) -> None:
    """Raise ``PermissionDeniedError`` naming the missing permission unless ``user`` may
    do ``action`` (in ``environment``). A disabled user may do nothing."""
    check_action(action, environment)
    doing = _DOING[action].format(env=environment)
    if user.disabled:
        raise PermissionDeniedError(
            f"{user.name} may not {doing}: the user is disabled",
            user=user.name,
            action=action,
            environment=environment,
        )
    if may(user.roles, action, environment, permissions=permissions):
        return
    where = f" in {environment}" if environment is not None else ""
    if action not in ENVIRONMENT_ACTIONS and environment is not None:
        doing = f"{doing}{where}"
    needed = permissions.roles_for(action, environment)
    if not needed:
        needs = f"no role may do that{where}"
    elif needed[0] in GLOBAL_ROLES:
        needs = f"needs the {needed[0]} role"
    else:
        needs = f"needs the {needed[0]} role{where}"
    raise PermissionDeniedError(
        f"{user.name} may not {doing} ({needs})",
        user=user.name,
        action=action,
        environment=environment,
    )
