"""The environment chain and each environment's gates and settings, from modelrail.toml.

```toml
[environments]
chain = ["dev", "staging", "prod"]
primary_metric = "accuracy"

[environments.prod]
min = { accuracy = 0.85 }
approval = true
allow_pickle = false   # the default in the last environment: pickled versions are refused

[environments.prod.permissions]   # who may do what in prod (roles per action)
request = ["member"]
approve = ["approver"]
force = ["admin"]

[environments.prod.settings]
serving_port = 8080
```

Every wrong key or value is reported with the line it is on.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from modelrail.errors import ConfigError
from modelrail.permissions import (
    ENVIRONMENT_ACTIONS,
    ROLES,
    Permissions,
    with_environment_rules,
)
from modelrail.policy_monitoring import MonitoringPolicy, parse_monitoring

DEFAULT_CHAIN = ("dev", "staging", "prod")
_ENV_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")


@dataclass(frozen=True)
class GatePolicy:
    require_previous: bool = True
    min_metrics: Mapping[str, float] = field(default_factory=dict)
    max_metrics: Mapping[str, float] = field(default_factory=dict)
    beat_incumbent: bool = False
    margin: float = 0.0
    signature_compatible: bool = True
    runtime_compatible: bool = False
    smoke_test: bool = True
    smoke_latency_ms: float = 500.0
    min_hours_in_previous: float = 0.0
    approval: bool = False
    approval_expires_hours: float = 72.0
    # Loading a pickled version (saved with allow_pickle=True) can run any code: where this
    # is false such a version never gets in, not even with --force or by a rollback.
    allow_pickle: bool = True
    # Gates from live data, about the candidate's own traffic in the previous environment
    # (or as a shadow there): enough requests logged, drift below a limit, and a live metric
    # on labelled traffic at least the incumbent's.
    min_live_requests: float = 0.0
    max_live_drift: float = math.inf
    live_beats_incumbent: bool = False


@dataclass(frozen=True)
class EnvironmentPolicy:
    name: str
    gates: GatePolicy
    settings: Mapping[str, Any] = field(default_factory=dict)
    # Action -> the roles that may do it here, for the actions the policy names; the
    # others follow modelrail.permissions' defaults.
    permissions: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    monitoring: MonitoringPolicy = field(default_factory=MonitoringPolicy)


@dataclass(frozen=True)
class PromotionPolicy:
    chain: tuple[str, ...]
    environments: Mapping[str, EnvironmentPolicy]
    auto_enter_first: bool = True
    primary_metric: str = "accuracy"
    notify_command: str | None = None
    notify_url: str | None = None

    def environment(self, name: str) -> EnvironmentPolicy:
        from modelrail.errors import EnvironmentNotFoundError

        if name not in self.environments:
            raise EnvironmentNotFoundError(
                f"unknown environment {name!r}: the chain is {' -> '.join(self.chain)}"
            )
        return self.environments[name]

    @property
    def permissions(self) -> Permissions:
        """The role table with each environment's own rules applied."""
        return with_environment_rules(
            {name: env.permissions for name, env in self.environments.items() if env.permissions}
        )

    def previous(self, name: str) -> str | None:
        index = self.chain.index(self.environment(name).name)
        return self.chain[index - 1] if index > 0 else None


def default_gates(name: str, chain: tuple[str, ...]) -> GatePolicy:
    """Looser at the start of the chain, stricter at its end."""
    if name == chain[0]:
        return GatePolicy(require_previous=False, signature_compatible=False, smoke_test=True)
    if name == chain[-1] and len(chain) > 1:
        return GatePolicy(runtime_compatible=True, approval=True, allow_pickle=False)
    return GatePolicy()


def default_policy() -> PromotionPolicy:
    return PromotionPolicy(
        chain=DEFAULT_CHAIN,
        environments={
            n: EnvironmentPolicy(n, default_gates(n, DEFAULT_CHAIN)) for n in DEFAULT_CHAIN
        },
    )


# -- parsing -------------------------------------------------------------------------------

_TOP_KEYS = {
    "chain": "list",
    "auto_enter_first": "bool",
    "primary_metric": "str",
    "notify_command": "str",
    "notify_url": "str",
}
_GATE_KEYS = {
    "require_previous": "bool",
    "min": "metrics",
    "max": "metrics",
    "beat_incumbent": "bool",
    "margin": "number",
    "signature_compatible": "bool",
    "runtime_compatible": "bool",
    "smoke_test": "bool",
    "smoke_latency_ms": "number",
    "min_hours_in_previous": "number",
    "approval": "bool",
    "approval_expires_hours": "number",
    "allow_pickle": "bool",
    "min_live_requests": "number",
    "max_live_drift": "limit",
    "live_beats_incumbent": "bool",
}
SETTING_KEYS = {
    "batch_output": "str",
    "batch_table": "str",
    "serving_host": "str",
    "serving_port": "port",
}
_GATE_FIELD = {"min": "min_metrics", "max": "max_metrics"}


def parse_policy(
    section: Mapping[str, Any] | None, path: Path, text: str, environ: Mapping[str, str]
) -> PromotionPolicy:
    where = _Locator(path, text)
    if section is not None and not isinstance(section, dict):
        where.fail((), "environments", "[environments] must be a table")
    section = dict(section or {})
    chain_value = environ.get("MODELRAIL_CHAIN")
    if chain_value:
        chain = tuple(part.strip() for part in chain_value.split(",") if part.strip())
        _check_chain(chain, lambda problem: _env_fail("MODELRAIL_CHAIN", chain_value, problem))
    else:
        raw = section.get("chain", list(DEFAULT_CHAIN))
        _check(where, ("environments",), "chain", raw, "list")
        chain = tuple(raw)
        _check_chain(chain, lambda problem: where.fail(("environments",), "chain", problem))
    for key in section:
        if key not in _TOP_KEYS and key not in chain and not isinstance(section[key], dict):
            where.fail(("environments",), key, f"unknown key '{key}' in [environments]")
    environments = {}
    for name in chain:
        body = section.get(name, {})
        if not isinstance(body, dict):
            where.fail(("environments",), name, f"[environments] {name} must be a table")
        environments[name] = _parse_environment(where, name, chain, body, environ)
    for key, value in section.items():
        if isinstance(value, dict) and key not in chain:
            source = " (set by MODELRAIL_CHAIN)" if chain_value else ""
            where.fail(
                ("environments", key),
                None,
                f"[environments.{key}] is not in the chain {list(chain)}{source}",
            )
    for key in ("auto_enter_first", "primary_metric", "notify_command", "notify_url"):
        if key in section:
            _check(where, ("environments",), key, section[key], _TOP_KEYS[key])
    return PromotionPolicy(
        chain=chain,
        environments=environments,
        auto_enter_first=bool(section.get("auto_enter_first", True)),
        primary_metric=str(section.get("primary_metric", "accuracy")),
        notify_command=_override(
            environ, "MODELRAIL_NOTIFY_COMMAND", section.get("notify_command")
        ),
        notify_url=_override(environ, "MODELRAIL_NOTIFY_URL", section.get("notify_url")),
    )


def _parse_environment(
    where: _Locator,
    name: str,
    chain: tuple[str, ...],
    body: Mapping[str, Any],
    environ: Mapping[str, str],
) -> EnvironmentPolicy:
    table = ("environments", name)
    values: dict[str, Any] = {}
    settings: dict[str, Any] = {}
    permissions: dict[str, tuple[str, ...]] = {}
    monitoring = MonitoringPolicy()
    for key, value in body.items():
        if key == "monitoring":
            monitoring = _parse_monitoring(where, (*table, key), value)
            continue
        if key == "permissions":
            permissions = _parse_permissions(where, (*table, key), value)
            continue
        if key == "settings":
            if not isinstance(value, dict):
                where.fail(table, key, f"[environments.{name}] settings must be a table")
            for setting, setting_value in value.items():
                if setting not in SETTING_KEYS:
                    where.fail(
                        (*table, "settings"),
                        setting,
                        f"unknown setting '{setting}' in [environments.{name}.settings]; "
                        f"known: {', '.join(SETTING_KEYS)}",
                    )
                _check(where, (*table, "settings"), setting, setting_value, SETTING_KEYS[setting])
                settings[setting] = setting_value
            continue
        if key not in _GATE_KEYS:
            known = ", ".join([*_GATE_KEYS, "monitoring", "permissions", "settings"])
            where.fail(table, key, f"unknown key '{key}' in [environments.{name}]; known: {known}")
        _check(where, table, key, value, _GATE_KEYS[key])
        values[_GATE_FIELD.get(key, key)] = dict(value) if isinstance(value, dict) else value
    for setting, kind in SETTING_KEYS.items():
        variable = f"MODELRAIL_{name.upper().replace('-', '_')}_{setting.upper()}"
        override = environ.get(variable)
        if override is None:
            continue
        if kind == "port":
            if not override.isdigit() or not 0 < int(override) < 65536:
                _env_fail(variable, override, "must be a port number 1-65535")
            settings[setting] = int(override)
        else:
            settings[setting] = override
    defaults = default_gates(name, chain)
    gates = GatePolicy(**{**defaults.__dict__, **values})
    return EnvironmentPolicy(
        name=name, gates=gates, settings=settings, permissions=permissions, monitoring=monitoring
    )


def _parse_monitoring(where: _Locator, table: tuple[str, ...], value: Any) -> MonitoringPolicy:
    def fail(key: str, problem: str) -> NoReturn:
        where.fail(table, key or None, problem)

    return parse_monitoring(".".join(table), value, fail)


def _parse_permissions(
    where: _Locator, table: tuple[str, ...], value: Any
) -> dict[str, tuple[str, ...]]:
    heading = "[" + ".".join(table) + "]"
    if not isinstance(value, dict):
        where.fail(table[:-1], table[-1], f"{heading} must be a table of action = [roles]")
    actions = sorted(ENVIRONMENT_ACTIONS)
    rules = {}
    for action, roles in value.items():
        if action not in ENVIRONMENT_ACTIONS:
            where.fail(
                table,
                action,
                f"unknown action '{action}' in {heading}; known: {', '.join(actions)}",
            )
        if not isinstance(roles, list) or not all(role in ROLES for role in roles):
            where.fail(
                table,
                action,
                f"{heading} {action} must be a list of roles ({', '.join(ROLES)}), got {roles!r}",
            )
        rules[action] = tuple(role for role in ROLES if role in roles)
    return rules


def _check_chain(chain: tuple[str, ...], fail: Callable[[str], None]) -> None:
    if not chain:
        fail("the environment chain is empty")
    for name in chain:
        if not isinstance(name, str) or not _ENV_NAME.match(name):
            fail(f"environment name {name!r} must be lower-case letters, digits, '-' or '_'")
    if len(set(chain)) != len(chain):
        fail(f"the chain {list(chain)} repeats a name")


def _override(environ: Mapping[str, str], variable: str, fallback: str | None) -> str | None:
    # A variable set to "" switches the file's setting off.
    value = environ.get(variable)
    if value is None:
        return fallback
    return value or None


def _env_fail(variable: str, value: str, problem: str) -> NoReturn:
    raise ConfigError(f"environment variable {variable}={value!r}: {problem}")


def _check(where: _Locator, table: tuple[str, ...], key: str, value: Any, kind: str) -> None:
    ok = {
        "bool": isinstance(value, bool),
        "str": isinstance(value, str),
        "list": isinstance(value, list) and all(isinstance(v, str) for v in value),
        "number": _is_number(value) and value >= 0,
        # A limit may be inf (no limit), as a canonical policy writes an unset one.
        "limit": (isinstance(value, float) and value == math.inf)
        or (_is_number(value) and value >= 0),
        "port": isinstance(value, int) and not isinstance(value, bool) and 0 < value < 65536,
        "metrics": isinstance(value, dict)
        and all(isinstance(k, str) and k.strip() and _is_number(v) for k, v in value.items()),
    }[kind]
    if not ok:
        expected = {
            "bool": "true or false",
            "str": "a string",
            "list": "a list of names",
            "number": "a finite number >= 0",
            "limit": "a number >= 0 (inf: no limit)",
            "port": "a port number 1-65535",
            "metrics": "a table of metric name = finite number, e.g. { accuracy = 0.85 }",
        }[kind]
        where.fail(table, key, f"[{'.'.join(table)}] {key} must be {expected}, got {value!r}")


def _is_number(value: Any) -> bool:
    # nan would compare false with every metric and fail every promotion; inf is no threshold
    # (nor is an integer beyond a float's range, which TOML allows).
    if not isinstance(value, int | float) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


class _Locator:
    """Finds the line of a key in the TOML text, for error messages."""

    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.lines = text.splitlines()

    def fail(self, table: tuple[str, ...], key: str | None, message: str) -> NoReturn:
        raise ConfigError(f"{self.path}:{self.line(table, key)}: {message}")

    def line(self, table: tuple[str, ...], key: str | None) -> int:
        """1-based line of ``key`` in ``table``, trying every way TOML can write it."""
        path = (*table, key) if key else table
        header = self._header(table)
        if key is not None and header is not None:
            found = self._key_below(header, key)
            if found is not None:
                return found
        as_table = self._header(path)
        if as_table is not None:
            return as_table + 1
        # Dotted keys: `prod.approval = ...` under [environments], or deeper.
        for start in range(len(path)):
            parent = self._header(path[:start]) if start else -1
            if parent is None:
                continue
            found = self._key_below(parent, ".".join(path[start:]))
            if found is not None:
                return found
        if header is not None:
            return header + 1
        deeper = self._header(table, prefix=True)
        if deeper is not None:
            return deeper + 1
        return self.line(table[:-1], table[-1]) if table else 1

    def _header(self, table: tuple[str, ...], *, prefix: bool = False) -> int | None:
        """The header line of ``table`` (or, with ``prefix``, of a table inside it)."""
        if not table:
            return None
        end = r"\s*\." if prefix else r"\s*\]"
        pattern = re.compile(r"^\s*\[\s*" + r"\s*\.\s*".join(map(re.escape, table)) + end)
        return next((i for i, line in enumerate(self.lines) if pattern.match(line)), None)

    def _key_below(self, header: int, dotted: str) -> int | None:
        parts = [re.escape(part) for part in dotted.split(".")]
        pattern = re.compile(r"^\s*" + r"\s*\.\s*".join(rf'"?{p}"?' for p in parts) + r"\s*=")
        for number, line in enumerate(self.lines[header + 1 :], start=header + 2):
            if line.lstrip().startswith("["):
                break
            if pattern.match(line):
                return number
        return None
