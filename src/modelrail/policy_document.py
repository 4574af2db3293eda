"""The shared policy as a document: canonical TOML in, canonical TOML out.

A team's policy is the governing part of modelrail.toml's ``[environments]`` table: the
chain, each environment's gates and permissions, and the primary metric. Where each machine
deploys (an environment's ``settings``: ports, batch outputs) and what it runs or calls when
it makes a change (``notify_command``, ``notify_url``) stay with the machine: a stored policy
never makes a colleague's machine run a command.

``canonical`` writes a parsed policy out in full, every gate and every permission spelled
out and in one order, so two documents that mean the same are the same text (and the same
sha256), and ``policy diff`` shows only what would change.
"""

from __future__ import annotations

import difflib
import json
import math
import re
import tomllib
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

from modelrail.errors import ConfigError
from modelrail.permissions import ENVIRONMENT_ACTIONS, ROLES
from modelrail.policy import GatePolicy, PromotionPolicy, parse_policy

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
# GatePolicy's field -> its key in the file, where the two differ.
_GATE_KEY = {"min_metrics": "min", "max_metrics": "max"}
_ACTION_ORDER = ("request", "approve", "rollback", "force")


def parse_document(text: str, source: str) -> PromotionPolicy:
    """The policy in the ``[environments]`` table of the TOML ``text`` (a whole modelrail.toml
    or a policy file); ``source`` names it in errors. Environment variables play no part:
    a shared policy means the same on every machine."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    section = document.get("environments")
    if section is None:
        raise ConfigError(f"{source} has no [environments] table: nothing to compare or apply")
    return parse_policy(section, Path(source), text, {})


def canonical(policy: PromotionPolicy) -> str:
    """``policy``'s governing part as TOML, complete and in a fixed order."""
    top: dict[str, Any] = {
        "chain": list(policy.chain),
        "auto_enter_first": policy.auto_enter_first,
        "primary_metric": policy.primary_metric,
    }
    lines = ["[environments]", *_pairs(top)]
    permissions = policy.permissions
    assert set(_ACTION_ORDER) == ENVIRONMENT_ACTIONS
    for name in policy.chain:
        gates = policy.environments[name].gates
        lines += ["", f"[environments.{_key(name)}]"]
        lines += _pairs(
            {_GATE_KEY.get(f.name, f.name): getattr(gates, f.name) for f in fields(GatePolicy)}
        )
        lines += ["", f"[environments.{_key(name)}.monitoring]"]
        lines += _pairs(policy.environments[name].monitoring.to_document())
        lines += ["", f"[environments.{_key(name)}.permissions]"]
        lines += _pairs(
            {
                action: [r for r in ROLES if action in permissions.actions(r, name)]
                for action in _ACTION_ORDER
            }
        )
    return "\n".join(lines) + "\n"


def governed_by(stored: PromotionPolicy, local: PromotionPolicy) -> PromotionPolicy:
    """The policy a machine works under when the store holds ``stored``: all of it, with
    each environment's deployment ``settings`` and the notifications taken from the
    machine's own ``local``."""
    environments = {
        name: replace(env, settings=local.environments[name].settings)
        if name in local.environments
        else env
        for name, env in stored.environments.items()
    }
    # Notifications run a command or call a URL on the machine that makes the change: a
    # policy every client obeys must not make every colleague's machine run a command.
    return replace(
        stored,
        environments=environments,
        notify_command=local.notify_command,
        notify_url=local.notify_url,
    )


def differences(old: str, new: str, old_name: str, new_name: str) -> list[str]:
    """Unified diff lines from ``old`` to ``new`` (both canonical); empty when equal."""
    return list(
        difflib.unified_diff(
            old.splitlines(), new.splitlines(), old_name, new_name, lineterm="", n=2
        )
    )


def _pairs(values: dict[str, Any]) -> list[str]:
    return [f"{_key(key)} = {_value(value)}" for key, value in values.items()]


def _key(name: str) -> str:
    return name if _BARE_KEY.match(name) else json.dumps(name)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        # Every number in a policy is a threshold or a duration: 1 and 1.0 mean the same.
        value = float(value)
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a TOML basic string
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_value(item) for item in value) + "]"
    if isinstance(value, dict):
        inner = ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items())
        return "{ " + inner + " }" if inner else "{}"
    raise TypeError(f"no TOML form for {value!r}")
