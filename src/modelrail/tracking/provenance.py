"""What produced a run besides its data and params: the code's git state, the entry
point, and the Python environment.

Both are captured once per process. That is not only fast, it is what actually
ran: Python imported the code and packages when the process started, so files
edited or packages installed afterwards did not take part in the run.
"""

from __future__ import annotations

import functools
import hashlib
import os
import platform
import re
import socket
import subprocess
import sys
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

_GIT_TIMEOUT_S = 10
_INTERACTIVE_MARKERS = ("ipykernel", "ipython", "jupyter", "pytest", "-c")


@dataclass(frozen=True)
class GitState:
    root: str
    commit: str | None
    branch: str | None
    remote: str | None
    dirty: bool
    diff_sha256: str | None


@dataclass(frozen=True)
class EntryPoint:
    script: str | None
    arguments: tuple[str, ...]
    script_sha256: str | None
    interactive: bool


@dataclass(frozen=True)
class Environment:
    python_version: str
    python_implementation: str
    os: str
    os_release: str
    machine: str
    hostname: str
    packages: dict[str, str]

    @property
    def python_minor(self) -> str:
        return ".".join(self.python_version.split(".")[:2])


@dataclass(frozen=True)
class Provenance:
    git: GitState | None
    entry_point: EntryPoint
    environment: Environment

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
        }
        return {
            "git": None if self.git is None else asdict(self.git),
            "entry_point": asdict(self.entry_point),
            "environment": environment,
        }


@functools.cache
def capture_provenance() -> Provenance:
    """Once per process: what ran is what Python loaded when the process started."""
    entry = capture_entry_point()
    start = Path(entry.script).parent if entry.script else Path.cwd()
    return Provenance(
        git=capture_git(str(start)), entry_point=entry, environment=capture_environment()
    )


@functools.cache
def capture_environment() -> Environment:
    packages: dict[str, str] = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            packages[_normalise_package(name)] = dist.version
    return Environment(
        python_version=platform.python_version(),
        python_implementation=platform.python_implementation(),
        os=platform.system(),
        os_release=platform.release(),
        machine=platform.machine(),
        hostname=socket.gethostname(),
        packages=dict(sorted(packages.items())),
    )


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
    if dirty:
        diff = _git_bytes(root, "diff", "HEAD", "--binary") if commit else None
        diff_sha256 = hashlib.sha256(diff or status.encode()).hexdigest()
    remote = _git(root, "config", "--get", "remote.origin.url")
    return GitState(
        root=root,
        commit=commit,
        branch=branch,
        remote=_without_credentials(remote) if remote else None,
        dirty=dirty,
        diff_sha256=diff_sha256,
    )


def capture_entry_point() -> EntryPoint:
    argv = list(sys.argv) or [""]
    first = argv[0]
    interactive = not first or any(marker in first for marker in _INTERACTIVE_MARKERS)
    script_path = Path(first) if first and not interactive else None
    script_sha256 = None
    if script_path is not None and script_path.is_file():
        script_sha256 = _script_sha256(str(script_path.resolve()))
        script: str | None = str(script_path.resolve())
    else:
        script = None
    return EntryPoint(
        script=script,
        arguments=tuple(argv[1:]),
        script_sha256=script_sha256,
        interactive=interactive,
    )


@functools.cache
def _script_sha256(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _git(cwd: str, *args: str) -> str | None:
    out = _git_bytes(cwd, *args)
    return None if out is None else out.decode("utf-8", "replace").strip()


def _git_bytes(cwd: str, *args: str) -> bytes | None:
    try:
        done = subprocess.run(
            ["git", *args],
            cwd=cwd,
            capture_output=True,
            timeout=_GIT_TIMEOUT_S,
            check=False,
            env={**os.environ, "GIT_OPTIONAL_LOCKS": "0", "LC_ALL": "C"},
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def _without_credentials(url: str) -> str:
    # A remote like https://user:token@host/repo must never reach the store.
    return re.sub(r"^(\w+://)[^/@]+@", r"\1", url)


def _normalise_package(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()
