"""Passwords in URLs: hidden wherever a URL is shown, logged or kept in a record."""

from __future__ import annotations

import re

HIDDEN = "***"
# scheme://user:password@ (a password may hold '/' or ':'; its '@' must be percent-encoded)
_PASSWORD = re.compile(r"(://[^:/@]*):([^@]*)@")


def hide_password(url: str) -> str:
    """``url`` with the password of its user part, if any, as ``***``; works on malformed
    URLs too, so an error message can show what it was given."""
    return _PASSWORD.sub(rf"\1:{HIDDEN}@", url, count=1)


def hides_password(url: str) -> bool:
    """Whether ``url`` had its password hidden by ``hide_password``."""
    found = _PASSWORD.search(url)
    return found is not None and found.group(2) == HIDDEN
