"""Which team server a command talks to, and the token it signs in with.

``modelrail login URL`` keeps a personal token per server in the user's credentials file
(``$MODELRAIL_CREDENTIALS``, else ``$XDG_CONFIG_HOME/modelrail/credentials.json``, else
``~/.config/modelrail/credentials.json``), readable by its owner only, and makes that server
the one commands use where nothing else says otherwise. A command uses, in this order:
``MODELRAIL_SERVER`` (empty: none), ``[server] url`` in the project's ``modelrail.toml``, a local
project (a ``.modelrail/`` folder here or above, or ``MODELRAIL_STORE``), then the server logged
in to last. The token is ``MODELRAIL_TOKEN`` if set, else the one kept for that server.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelrail.errors import CredentialsError

__all__ = [
    "ServerLogin",
    "credentials_path",
    "forget",
    "logged_in",
    "remember",
    "server_for",
    "token_for",
]


@dataclass(frozen=True)
class ServerLogin:
    url: str
    token: str


def credentials_path(environ: Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    if env.get("MODELRAIL_CREDENTIALS"):
        return Path(env["MODELRAIL_CREDENTIALS"])
    base = env.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "modelrail" / "credentials.json"


def normalized(url: str) -> str:
    return url.strip().rstrip("/")


def logged_in(environ: Mapping[str, str] | None = None) -> str | None:
    """The server logged in to last (None: none, or logged out)."""
    current = _read(credentials_path(environ)).get("current")
    return current if isinstance(current, str) and current else None


def server_for(configured: str | None, has_project: bool) -> str | None:
    """The team server a command talks to (see the module's docstring); ``configured`` is
    ``Settings.server_url``."""
    if configured is not None:
        return configured or None
    return None if has_project else logged_in()


def token_for(url: str, environ: Mapping[str, str] | None = None) -> str:
    env = os.environ if environ is None else environ
    if env.get("MODELRAIL_TOKEN"):
        return env["MODELRAIL_TOKEN"]
    path = credentials_path(env)
    servers = _read(path).get("servers", {})
    token = servers.get(normalized(url)) if isinstance(servers, dict) else None
    if not isinstance(token, str) or not token:
        raise CredentialsError(
            f"no token for the modelrail server {normalized(url)}: run 'modelrail login "
            f"{normalized(url)}' (or set MODELRAIL_TOKEN)"
        )
    return token


def remember(url: str, token: str, environ: Mapping[str, str] | None = None) -> Path:
    """Keep ``token`` for ``url`` and make it the server commands use; returns the file."""
    path = credentials_path(environ)
    document = _read(path)
    servers = document.get("servers")
    servers = dict(servers) if isinstance(servers, dict) else {}
    servers[normalized(url)] = token
    _write(path, {"current": normalized(url), "servers": servers})
    return path


def forget(url: str | None, environ: Mapping[str, str] | None = None) -> str | None:
    """Drop the token of ``url`` (default: the current server); returns the server dropped."""
    path = credentials_path(environ)
    document = _read(path)
    target = normalized(url) if url else logged_in(environ)
    if target is None:
        return None
    servers = document.get("servers")
    servers = {k: v for k, v in servers.items() if k != target} if isinstance(servers, dict) else {}
    current = document.get("current")
    _write(path, {"current": None if current == target else current, "servers": servers})
    return target


def _read(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise CredentialsError(f"cannot read the credentials file {path}: {exc}") from exc
    try:
        document = json.loads(text)
    except ValueError:
        raise CredentialsError(
            f"the credentials file {path} is not JSON: remove it and log in again"
        ) from None
    return document if isinstance(document, dict) else {}


def _write(path: Path, document: dict[str, Any]) -> None:
    """Atomically, and readable by its owner alone from the first byte."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".credentials-")
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as file:
                json.dump(document, file, indent=2)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise CredentialsError(f"cannot write the credentials file {path}: {exc}") from exc
