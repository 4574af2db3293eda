"""The uncommitted part of a run's code, kept so a run from a dirty tree can be rebuilt:
the diff against the commit (``git diff HEAD --binary``) and the untracked files git does
not ignore, as bytes ready to be stored content-addressed when a run is written.

Everything is bounded: git calls by time, the diff and the untracked files by size and
count. What does not fit is left out and the record says what and why, so a rebuild can
say so instead of failing later. Files git ignores are never read (that is where secrets
and data usually live), nor are files whose names say they hold secrets, symbolic links
or binary files.
"""

from __future__ import annotations

import functools
import hashlib
import io
import os
import re
import subprocess
import tarfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from modelrail.artifacts import ArtifactStore
    from modelrail.entities import ArtifactRecord

DIFF_LIMIT = 8 << 20
UNTRACKED_FILE_LIMIT = 1 << 20
UNTRACKED_TOTAL_LIMIT = 8 << 20
UNTRACKED_MAX_FILES = 500
GIT_TIMEOUT_S = 10
# Run artifacts a snapshot is stored as (a tar keeps the untracked files one blob).
ARTIFACT_PREFIX = "modelrail/code/"
DIFF_ARTIFACT = f"{ARTIFACT_PREFIX}uncommitted.diff"
UNTRACKED_ARTIFACT = f"{ARTIFACT_PREFIX}untracked.tar"
DIFF_PATH = "(uncommitted changes)"
_SECRET_NAME = re.compile(
    r"(^|/)(\.env(\.[^/]*)?|[^/]*\.(pem|key|p12|pfx|keystore|jks)|id_(rsa|dsa|ecdsa|ed25519)[^/]*"
    r"|\.netrc|\.pypirc|\.npmrc|\.git-credentials|[^/]*credentials[^/]*|[^/]*secrets?[^/]*"
    r"|modelrail\.toml)$",
    re.IGNORECASE,
)
_SNIFF_BYTES = 8192
_CHUNK = 1 << 16


@dataclass(frozen=True)
class CapturedFile:
    path: str  # relative to the repository root, with "/"
    sha256: str
    size: int
    content: bytes = field(default=b"", repr=False, compare=False)

    def record(self) -> dict[str, Any]:
        return {"path": self.path, "sha256": self.sha256, "size": self.size}


@dataclass(frozen=True)
class LeftOut:
    path: str
    reason: str


@dataclass(frozen=True)
class CodeSnapshot:
    """What a rebuild needs beyond the commit, and what was left out of it and why."""

    diff: CapturedFile | None = None
    untracked: tuple[CapturedFile, ...] = ()
    left_out: tuple[LeftOut, ...] = ()

    @property
    def untracked_sha256(self) -> str | None:
        """One digest of every kept untracked file's path and content (None: none kept)."""
        if not self.untracked:
            return None
        digest = hashlib.sha256()
        for item in self.untracked:
            digest.update(f"{item.path}\0{item.sha256}\n".encode())
        return digest.hexdigest()

    @functools.cached_property
    def untracked_archive(self) -> bytes | None:
        """The kept untracked files as one tar, the same bytes for the same files."""
        if not self.untracked:
            return None
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
            for item in self.untracked:
                info = tarfile.TarInfo(item.path)
                info.size = item.size
                info.mode = 0o644
                archive.addfile(info, io.BytesIO(item.content))
        return buffer.getvalue()

    def record(self) -> dict[str, Any]:
        return {
            "diff": None if self.diff is None else self.diff.record(),
            "untracked": [item.record() for item in self.untracked],
            "left_out": [{"path": item.path, "reason": item.reason} for item in self.left_out],
        }


@dataclass(frozen=True)
class StreamedDiff:
    sha256: str
    size: int
    content: bytes | None  # None when over the limit
    finished: bool


def capture_diff(root: str) -> StreamedDiff | None:
    """``git diff HEAD --binary``, hashed as it streams; the bytes kept up to DIFF_LIMIT."""
    command = ["git", "diff", "HEAD", "--binary", "--no-ext-diff"]
    try:
        process = subprocess.Popen(
            command,
            cwd=root,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=git_environment(),
        )
    except OSError:
        return None
    timer = threading.Timer(GIT_TIMEOUT_S, process.kill)
    timer.start()
    digest = hashlib.sha256()
    kept: list[bytes] | None = []
    size = 0
    try:
        assert process.stdout is not None
        while chunk := process.stdout.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
            if kept is not None:
                kept.append(chunk)
                if size > DIFF_LIMIT:
                    kept = None  # keep hashing, stop holding
        code = process.wait()
    finally:
        timer.cancel()
        if process.stdout is not None:
            process.stdout.close()
    if code != 0 and size == 0:
        return None
    content = None if kept is None else b"".join(kept)
    return StreamedDiff(digest.hexdigest(), size, content, finished=code == 0)


def snapshot_of(root: str, diff: StreamedDiff | None, dirty: bool) -> CodeSnapshot:
    left_out: list[LeftOut] = []
    kept_diff = None
    if dirty and diff is not None:
        if not diff.finished:
            left_out.append(LeftOut(DIFF_PATH, f"git diff did not finish within {GIT_TIMEOUT_S} s"))
        elif diff.content is None:
            left_out.append(
                LeftOut(DIFF_PATH, f"the diff is {_size(diff.size)}, over {_size(DIFF_LIMIT)}")
            )
        else:
            kept_diff = CapturedFile(DIFF_PATH, diff.sha256, diff.size, diff.content)
    elif dirty:
        left_out.append(LeftOut(DIFF_PATH, "git diff failed"))
    untracked, skipped = _untracked_files(root)
    return CodeSnapshot(kept_diff, untracked, tuple(left_out) + skipped)


def _untracked_files(root: str) -> tuple[tuple[CapturedFile, ...], tuple[LeftOut, ...]]:
    listed = git_output(root, "ls-files", "--others", "--exclude-standard", "-z")
    if listed is None:
        return (), (LeftOut("(untracked files)", "git ls-files failed or took too long"),)
    names = sorted(name for name in listed.decode("utf-8", "surrogateescape").split("\0") if name)
    kept: list[CapturedFile] = []
    left_out: list[LeftOut] = []
    if len(names) > UNTRACKED_MAX_FILES:
        extra = len(names) - UNTRACKED_MAX_FILES
        left_out.append(
            LeftOut("(untracked files)", f"{extra} more than {UNTRACKED_MAX_FILES} files")
        )
        names = names[:UNTRACKED_MAX_FILES]
    total = 0
    base = Path(root)
    for name in names:
        reason, content = _read_untracked(base / name, name, UNTRACKED_TOTAL_LIMIT - total)
        if content is None:
            left_out.append(LeftOut(name, reason))
            continue
        total += len(content)
        kept.append(CapturedFile(name, hashlib.sha256(content).hexdigest(), len(content), content))
    return tuple(kept), tuple(left_out)


def _read_untracked(path: Path, name: str, budget: int) -> tuple[str, bytes | None]:
    if _SECRET_NAME.search(name):
        return "its name says it may hold secrets or settings", None
    try:
        info = path.lstat()
        if path.is_symlink():
            return "a symbolic link", None
        if not path.is_file():
            return "not a regular file", None
        if info.st_size > UNTRACKED_FILE_LIMIT:
            return f"{_size(info.st_size)}, over {_size(UNTRACKED_FILE_LIMIT)} a file", None
        if info.st_size > budget:
            return f"the untracked files pass {_size(UNTRACKED_TOTAL_LIMIT)} in all", None
        with path.open("rb") as handle:
            content = handle.read(UNTRACKED_FILE_LIMIT + 1)
    except OSError as exc:
        return f"unreadable ({exc.strerror or exc})", None
    if len(content) > min(UNTRACKED_FILE_LIMIT, budget):
        return "it grew while being read", None
    if b"\0" in content[:_SNIFF_BYTES]:
        return "a binary file", None
    return "", content


def git_environment() -> dict[str, str]:
    # No index lock taken by a read, and messages in one language.
    return {**os.environ, "GIT_OPTIONAL_LOCKS": "0", "LC_ALL": "C"}


def git_output(cwd: str, *args: str) -> bytes | None:
    try:
        done = subprocess.run(
            ["git", *args],
            cwd=cwd,
            capture_output=True,
            timeout=GIT_TIMEOUT_S,
            check=False,
            env=git_environment(),
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def _size(count: int) -> str:
    if count < 1024:
        return f"{count} bytes"
    if count < 1 << 20:
        return f"{count / 1024:.0f} KiB"
    return f"{count / (1 << 20):.1f} MiB"


def store_code_snapshot(
    artifacts: ArtifactStore, snapshot: CodeSnapshot | None
) -> list[ArtifactRecord]:
    """Put the snapshot's bytes in the artifact store (content-addressed: a loop of runs
    keeps one copy) and return the run's records of them."""
    from modelrail.entities import ArtifactRecord

    if snapshot is None:
        return []
    records = []
    if snapshot.diff is not None:
        blob = artifacts.put_bytes(snapshot.diff.content)
        records.append(ArtifactRecord(DIFF_ARTIFACT, blob.sha256, blob.size))
    archive = snapshot.untracked_archive
    if archive is not None:
        blob = artifacts.put_bytes(archive)
        records.append(ArtifactRecord(UNTRACKED_ARTIFACT, blob.sha256, blob.size))
    return records
