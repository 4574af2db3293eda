"""Model references: ``name`` (latest), ``name:7`` (version 7), ``name@prod`` (what prod holds)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from modelrail.errors import InvalidReferenceError

_NAME = r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}"
_REFERENCE = re.compile(rf"^(?P<name>{_NAME})(?::(?P<version>[^@]*)|@(?P<env>[^:]*))?$")
_NAME_ONLY = re.compile(rf"^{_NAME}$")
# Versions, like every number a store keeps, are 32-bit integers in PostgreSQL.
MAX_VERSION = 2**31 - 1


@dataclass(frozen=True)
class Ref:
    name: str
    version: int | None = None
    environment: str | None = None

    @classmethod
    def parse(cls, text: str) -> Ref:
        match = _REFERENCE.match(text.strip())
        if match is None:
            raise InvalidReferenceError(
                f"invalid model reference {text!r}: expected NAME, NAME:VERSION or NAME@ENVIRONMENT"
            )
        version_text, env = match.group("version"), match.group("env")
        version: int | None = None
        if version_text is not None:
            # Checked as text first: int() of a huge number would only fail in the store.
            digits = version_text.isascii() and version_text.isdigit()
            if not digits or len(version_text) > 10 or not 1 <= int(version_text) <= MAX_VERSION:
                raise InvalidReferenceError(
                    f"invalid version {version_text!r} in model reference {text!r}: "
                    f"versions are whole numbers from 1 to {MAX_VERSION}"
                )
            version = int(version_text)
        if env is not None and not _NAME_ONLY.match(env):
            raise InvalidReferenceError(f"invalid environment {env!r} in model reference {text!r}")
        return cls(name=match.group("name"), version=version, environment=env)

    def __str__(self) -> str:
        if self.version is not None:
            return f"{self.name}:{self.version}"
        if self.environment is not None:
            return f"{self.name}@{self.environment}"
        return self.name


def validate_name(kind: str, name: str) -> str:
    """Check a model, experiment or environment name and return it unchanged."""
    if not isinstance(name, str) or not _NAME_ONLY.match(name):
        raise InvalidReferenceError(
            f"invalid {kind} name {name!r}: use letters, digits, '.', '_' or '-' "
            "(at most 128, starting with a letter or digit)"
        )
    return name
