"""What produced a run besides its data and params: the code's git state (with the
uncommitted diff and untracked files themselves, see ``snapshot``), the entry point (the
exact command line, interpreter and working folder), and the Python environment.

All are captured once per process. That is not only fast, it is what actually
ran: Python imported the code and packages when the process started, so files
edited or packages installed afterwards did not take part in the run. The captured
bytes are stored content-addressed when a run is written (``tracking.host``).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
import re
import socket
import sys
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from modelrail.tracking.snapshot import (
    CodeSnapshot,
    StreamedDiff,
    capture_diff,
    git_output,
    snapshot_of,
)

# In the name of argv[0]; or its folder, for python -m (.../pytest/__main__.py).
_INTERACTIVE_MARKERS = ("ipykernel", "ipython", "jupyter", "pytest")
_INTERACTIVE_PACKAGES = ("pytest", "ipykernel", "ipython", "jupyter_core")


@dataclass(frozen=True)
class GitState:
    root: str
    commit: str | None
    branch: str | None
    remote: str | None
    dirty: bool
    diff_sha256: str | None
    # The diff itself, hashed above and kept (up to a limit) for the code snapshot.
    diff: StreamedDiff | None = field(default=None, repr=False, compare=False)

    def record(self) -> dict[str, Any]:
        return {
            "root": self.root,
            "commit": self.commit,
            "branch": self.branch,
            "remote": self.remote,
            "dirty": self.dirty,
            "diff_sha256": self.diff_sha256,
        }


@dataclass(frozen=True)
class EntryPoint:
    script: str | None
    arguments: tuple[str, ...]
    script_sha256: str | None
    interactive: bool
    # The whole command line as the interpreter got it (``python -X dev -m pkg.train a b``),
    # the interpreter itself, ``pkg.train`` for ``-m``, and the folder it ran in.
    command: tuple[str, ...] = ()
    interpreter: str | None = None
    module: str | None = None
    cwd: str | None = None


@dataclass(frozen=True)
class LocalPackage:
    """A package installed from a folder or file instead of an index (``pip install -e .``)."""

    path: str
    editable: bool


@dataclass(frozen=True)
class Environment:
    python_version: str
    python_implementation: str
    os: str
    os_release: str
    machine: str
    hostname: str
    packages: dict[str, str]
    local_packages: dict[str, LocalPackage] = field(default_factory=dict)

    @property
    def python_minor(self) -> str:
        return ".".join(self.python_version.split(".")[:2])


@dataclass(frozen=True)
class Provenance:
    git: GitState | None
    entry_point: EntryPoint
    environment: Environment
    code_snapshot: CodeSnapshot | None = None

    @functools.cached_property
    def json_text(self) -> str:
        from modelrail.store.codec import dumps

        return dumps(self.to_json())

    def to_json(self) -> dict[str, Any]:
        """Everything but the package list, which the environment component keeps once."""
        env = self.environment
        environment = {
            "python_version": env.python_version,
            "python_implementation": env.python_implementation,
            "os": env.os,
            "os_release": env.os_release,
            "machine": env.machine,
            "hostname": env.hostname,
            "local_packages": {name: asdict(found) for name, found in env.local_packages.items()},
        }
        return {
            "git": None if self.git is None else self.git.record(),
            "entry_point": asdict(self.entry_point),
            "environment": environment,
            "code_snapshot": None if self.code_snapshot is None else self.code_snapshot.record(),
        }


@functools.cache
def capture_provenance() -> Provenance:
    """Once per process: what ran is what Python loaded when the process started."""
    entry = capture_entry_point()
    start = Path(entry.script).parent if entry.script else Path.cwd()
    git = capture_git(str(start))
    snapshot = None
    if git is not None and not entry.interactive:
        # A script's run can be rebuilt and rerun, so what it needs is kept; a notebook or a
        # shell has no script to rerun, and keeps the diff's fingerprint only.
        snapshot = snapshot_of(git.root, git.diff, git.dirty and git.commit is not None)
    return Provenance(
        git=git, entry_point=entry, environment=capture_environment(), code_snapshot=snapshot
    )


@functools.cache
def capture_environment() -> Environment:
    packages: dict[str, str] = {}
    local: dict[str, LocalPackage] = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            key = _normalise_package(name)
            packages[key] = dist.version
            found = _local_origin(dist)
            if found is not None:
                local[key] = found
            else:
                local.pop(key, None)
    return Environment(
        python_version=platform.python_version(),
        python_implementation=platform.python_implementation(),
        os=platform.system(),
        os_release=platform.release(),
        machine=platform.machine(),
        hostname=socket.gethostname(),
        packages=dict(sorted(packages.items())),
        local_packages=dict(sorted(local.items())),
    )


def _local_origin(dist: metadata.Distribution) -> LocalPackage | None:
    """Where a package installed from a local folder or file came from (PEP 610), if so."""
    try:
        text = dist.read_text("direct_url.json")
        document = json.loads(text) if text else None
    except (OSError, ValueError):
        return None
    if not isinstance(document, dict):
        return None
    url = document.get("url")
    if not isinstance(url, str) or not url.startswith("file:"):
        return None
    info = document.get("dir_info")
    editable = isinstance(info, dict) and bool(info.get("editable"))
    return LocalPackage(path=unquote(urlparse(url).path), editable=editable)


@functools.cache
def capture_git(start: str) -> GitState | None:
    root = _git(start, "rev-parse", "--show-toplevel")
    if root is None:
        return None
    status = _git(root, "status", "--porcelain=v2", "--branch", "--untracked-files=no") or ""
    commit = branch = None
    dirty = False
    for line in status.splitlines():
        if line.startswith("# branch.oid "):
            oid = line.removeprefix("# branch.oid ")
            commit = None if oid == "(initial)" else oid
        elif line.startswith("# branch.head "):
            head = line.removeprefix("# branch.head ")
            branch = None if head == "(detached)" else head
        elif not line.startswith("#"):
            dirty = True
    diff_sha256 = None
    diff = None
    if dirty:
        diff = capture_diff(root) if commit else None
        if diff is not None and diff.finished and diff.size:
            diff_sha256 = diff.sha256
        else:
            diff_sha256 = hashlib.sha256(status.encode()).hexdigest()
    remote = _git(root, "config", "--get", "remote.origin.url")
    return GitState(
        root=root,
        commit=commit,
        branch=branch,
        remote=_without_credentials(remote) if remote else None,
        dirty=dirty,
        diff_sha256=diff_sha256,
        diff=diff,
    )


def capture_entry_point() -> EntryPoint:
    argv = list(sys.argv) or [""]
    first = argv[0]
    interactive = first in ("", "-c", "-") or _interactive_program(first)
    script_path = Path(first) if first and not interactive else None
    script_sha256 = None
    if script_path is not None and script_path.is_file():
        script_sha256 = _script_sha256(str(script_path.resolve()))
        script: str | None = str(script_path.resolve())
    else:
        script = None
    command = tuple(getattr(sys, "orig_argv", argv))
    return EntryPoint(
        script=script,
        arguments=tuple(argv[1:]),
        script_sha256=script_sha256,
        interactive=interactive,
        command=command,
        interpreter=sys.executable or None,
        module=_module_of(command),
        cwd=_cwd(),
    )


def _interactive_program(first: str) -> bool:
    # Not any part of the path: a script under a folder named "my-cli" or "pytest-demos"
    # is still a script.
    path = Path(first)
    name = path.name.lower()
    if path.parent.name.lower() in _INTERACTIVE_PACKAGES and name == "__main__.py":
        return True
    return any(marker in name for marker in _INTERACTIVE_MARKERS)


def _module_of(command: tuple[str, ...]) -> str | None:
    """``pkg.train`` for ``python [options] -m pkg.train ...``."""
    items = iter(command[1:])
    for item in items:
        if item == "-m":
            return next(items, None)
        if item.startswith("-m"):
            return item[2:]
        if item in ("-X", "-W"):  # options that take a value
            next(items, None)
        elif not item.startswith("-") or item in ("-", "-c"):
            return None
    return None


def _cwd() -> str | None:
    try:
        return os.getcwd()
    except OSError:  # the folder was deleted under the process
        return None


@functools.cache
def _script_sha256(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _git(cwd: str, *args: str) -> str | None:
    out = git_output(cwd, *args)
    return None if out is None else out.decode("utf-8", "replace").strip()


def _without_credentials(url: str) -> str:
    # A remote like https://user:token@host/repo must never reach the store.
    return re.sub(r"^(\w+://)[^/@]+@", r"\1", url)


def _normalise_package(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()
