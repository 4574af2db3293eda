"""The recorded code, rebuilt in a scratch folder: a ``git worktree`` of the recorded commit
with the stored diff applied and the stored untracked files written back, each checked
against its sha256. ``Scratch`` owns the folder and removes it (and the worktree's entry in
the repository) when the attempt ends, unless asked to keep it."""

from __future__ import annotations

import hashlib
import io
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from modelrail.artifacts import ArtifactStore
from modelrail.entities import ArtifactRecord
from modelrail.errors import ReproduceError
from modelrail.tracking.snapshot import git_environment

_GIT_TIMEOUT_S = 300


def repository_of(start: Path) -> Path | None:
    found = _git(start, "rev-parse", "--show-toplevel", check=False)
    return Path(found.strip()) if found else None


def has_commit(repository: Path, commit: str) -> bool:
    return _git(repository, "cat-file", "-e", f"{commit}^{{commit}}", check=False) is not None


class Scratch:
    """A scratch folder holding the worktree (``code``) and any environment (``env``)."""

    def __init__(self, repository: Path, *, keep: bool) -> None:
        self.repository = repository
        self.keep = keep
        self.root = Path(tempfile.mkdtemp(prefix="modelrail-reproduce-"))
        self.code = self.root / "code"
        self.env = self.root / "env"
        self._worktree_added = False

    def __enter__(self) -> Scratch:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if not self.keep:
            self.remove()

    def remove(self) -> None:
        if self._worktree_added:
            _git(self.repository, "worktree", "remove", "--force", str(self.code), check=False)
            self._worktree_added = False
        shutil.rmtree(self.root, ignore_errors=True)
        _git(self.repository, "worktree", "prune", check=False)

    def check_out(self, commit: str, what: str) -> None:
        if not has_commit(self.repository, commit):
            raise ReproduceError(
                f"commit {commit[:12]} of {what} is not in the repository at {self.repository}: "
                "fetch it (git fetch) or reproduce from a clone that has it"
            )
        _git(self.repository, "worktree", "add", "--detach", "--quiet", str(self.code), commit)
        self._worktree_added = True

    def apply_diff(self, artifacts: ArtifactStore, record: ArtifactRecord, what: str) -> None:
        patch = artifacts.read_verified(record.sha256, size=record.size, label=f"{what}: diff")
        target = self.root / "uncommitted.diff"
        target.write_bytes(patch)
        # --index: files the run had staged come back staged, so the rebuilt tree's own
        # diff against the commit is the recorded one byte for byte.
        done = subprocess.run(
            ["git", "apply", "--index", "--binary", "--whitespace=nowarn", str(target)],
            cwd=self.code,
            capture_output=True,
            timeout=_GIT_TIMEOUT_S,
            env=git_environment(),
        )
        if done.returncode != 0:
            message = done.stderr.decode("utf-8", "replace").strip().splitlines()[-3:]
            raise ReproduceError(
                f"the stored uncommitted changes of {what} do not apply to its commit: "
                + " / ".join(message)
            )

    def write_untracked(
        self,
        artifacts: ArtifactStore,
        record: ArtifactRecord,
        files: Sequence[Mapping[str, Any]],
        what: str,
    ) -> None:
        data = artifacts.read_verified(record.sha256, size=record.size, label=f"{what}: files")
        expected = {str(f.get("path")): str(f.get("sha256")) for f in files}
        with tarfile.open(fileobj=io.BytesIO(data)) as archive:
            for member in archive.getmembers():
                name = PurePosixPath(member.name)
                if not member.isfile() or name.is_absolute() or ".." in name.parts:
                    raise ReproduceError(f"the stored untracked files of {what} hold {name}")
                handle = archive.extractfile(member)
                content = b"" if handle is None else handle.read()
                if hashlib.sha256(content).hexdigest() != expected.get(member.name):
                    raise ReproduceError(
                        f"untracked file {name} of {what} does not match its recorded sha256"
                    )
                target = self.code.joinpath(*name.parts)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(content)

    def place(self, relative: str, source: Path) -> Path:
        """Make ``source`` appear at ``relative`` in the worktree (a link, nothing copied)."""
        target = self.code.joinpath(*PurePosixPath(relative).parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(source.resolve(), target_is_directory=source.is_dir())
        return target


def _git(cwd: Path, *args: str, check: bool = True) -> str | None:
    try:
        done = subprocess.run(
            ["git", *args],
            cwd=cwd,
            capture_output=True,
            timeout=_GIT_TIMEOUT_S,
            env=git_environment(),
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        if check:
            raise ReproduceError(f"git {args[0]} failed in {cwd}: {exc}") from exc
        return None
    if done.returncode != 0:
        if check:
            message = done.stderr.decode("utf-8", "replace").strip()
            raise ReproduceError(f"git {' '.join(args[:2])} failed in {cwd}: {message}")
        return None
    return done.stdout.decode("utf-8", "replace")
