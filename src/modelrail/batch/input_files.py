"""Finding a job's input files: local paths, globs and folders, or the same in object storage
(``s3://bucket/prefix/``, ``s3://bucket/day=*/part-*.parquet``, ``gs://...``).

Folders are searched for Parquet and CSV files; like Spark and Hive, hidden and
``_``-prefixed files and folders (``_SUCCESS``) are skipped. An object store is read in place
through pyarrow's file systems, with credentials and endpoints as for the artifact store
(``AWS_ENDPOINT_URL`` and the like).
"""

from __future__ import annotations

import fnmatch
import glob
import os
import posixpath
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelrail.errors import BatchInputError
from modelrail.object_store import is_object_store, open_object_store

_GLOB = "*?["
# Bytes asked of an object store at a time when streaming: each read is a request.
REMOTE_READ = 16 << 20


@dataclass(frozen=True)
class InputFile:
    """One input file: a local path, or a path (``bucket/key``) on ``filesystem``."""

    path: str
    shown: str
    size: int
    filesystem: Any = None  # a pyarrow FileSystem for an object store; None for a local file

    @property
    def local(self) -> bool:
        return self.filesystem is None

    @property
    def name(self) -> str:
        return posixpath.basename(self.path)

    def open_random(self) -> Any:
        """What pyarrow's Parquet reader takes: the path, or a file with range reads."""
        return self.path if self.filesystem is None else self.filesystem.open_input_file(self.path)

    def open_stream(self) -> Any:
        """A byte stream of the file as stored (compressed CSV stays compressed)."""
        if self.filesystem is None:
            return open(self.path, "rb", buffering=0)
        return self.filesystem.open_input_stream(
            self.path, compression=None, buffer_size=REMOTE_READ
        )


def kind_of(name: str) -> str | None:
    name = name.lower()
    if name.endswith((".parquet", ".parq", ".pq")):
        return "parquet"
    return "csv" if name.endswith((".csv", ".csv.gz")) else None


def find_files(inputs: Sequence[str]) -> list[InputFile]:
    """Every input file, each once, local ones sorted by resolved path, then remote ones by
    URL: the order batches are read in, which a resumed run relies on."""
    local: dict[str, InputFile] = {}
    remote: dict[str, InputFile] = {}
    for raw in inputs:
        found = _remote_files(raw) if is_object_store(raw) else _local_files(raw)
        if not found:
            raise BatchInputError(
                f"no input file matches {raw!r} (folders are searched for *.parquet, *.csv and "
                "*.csv.gz files, skipping hidden and _-prefixed ones)"
            )
        for file in found:
            (local if file.local else remote)[file.path if file.local else file.shown] = file
    if local and remote:  # one common folder names them in the fingerprint
        raise BatchInputError(
            f"the inputs mix local files ({next(iter(local.values())).shown}) and object-store "
            f"files ({next(iter(remote.values())).shown}): a job reads from one place"
        )
    # Part by part, as paths always sorted: the order the fingerprint hashes them in, the same
    # for the same files on disk and in a bucket.
    remote_order = sorted(remote, key=lambda shown: shown.split("://", 1)[1].split("/"))
    return [local[key] for key in sorted(local, key=Path)] + [remote[k] for k in remote_order]


def shown_path(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd().resolve())) or "."
    except ValueError:
        return str(path)


def _listed(parts: Sequence[str], name: str) -> bool:
    return kind_of(name) is not None and not any(p.startswith((".", "_")) for p in parts)


def _local_files(raw: str) -> list[InputFile]:
    pattern = os.path.expanduser(raw.removeprefix("file://"))
    if any(char in pattern for char in _GLOB):
        matches = [Path(match) for match in glob.glob(pattern, recursive=True)]
    else:
        matches = [Path(pattern)] if os.path.exists(pattern) else []
        if matches and matches[0].is_file() and kind_of(matches[0].name) is None:
            raise BatchInputError(
                f"input file {raw!r} is neither Parquet (.parquet) nor CSV (.csv, .csv.gz)"
            )
    hits = {
        p
        for m in matches
        if m.is_dir()
        for p in m.rglob("*")
        if _listed(p.relative_to(m).parts, p.name)
    }
    hits.update(m for m in matches if not m.is_dir() and _listed((m.name,), m.name))
    files = []
    for path in {p.resolve() for p in hits if p.is_file()}:
        try:
            size = path.stat().st_size
        except OSError as exc:
            raise BatchInputError(f"cannot read input file {exc.filename}: {exc.strerror}") from exc
        files.append(InputFile(str(path), shown_path(path), size))
    return files


def _remote_files(raw: str) -> list[InputFile]:
    import pyarrow as pa
    import pyarrow.fs as pafs

    filesystem, path, shown = open_object_store(raw, "input", BatchInputError)
    scheme = shown.split("://", 1)[0]
    try:
        infos = _remote_matches(filesystem, path.rstrip("/"), pafs)
    except (pa.ArrowException, OSError) as exc:
        raise BatchInputError(f"cannot list input {shown!r}: {str(exc).strip()}") from exc
    return [
        InputFile(info.path, f"{scheme}://{info.path}", int(info.size), filesystem)
        for info in infos
    ]


def _remote_matches(filesystem: Any, path: str, pafs: Any) -> list[Any]:
    if any(char in path for char in _GLOB):
        parts = path.split("/")
        fixed = next(i for i, part in enumerate(parts) if any(c in part for c in _GLOB))
        base = "/".join(parts[:fixed])
        listed = filesystem.get_file_info(pafs.FileSelector(base, recursive=True))
        return [
            info
            for info in listed
            if info.type == pafs.FileType.File
            and _glob_match(info.path.split("/")[fixed:], parts[fixed:])
            and _listed(info.path.split("/")[fixed:], info.base_name)
        ]
    info = filesystem.get_file_info(path)
    if info.type == pafs.FileType.File:
        if kind_of(info.base_name) is None:
            raise BatchInputError(
                f"input file {info.path!r} is neither Parquet (.parquet) nor CSV (.csv, .csv.gz)"
            )
        return [info]
    if info.type != pafs.FileType.Directory:
        return []
    listed = filesystem.get_file_info(pafs.FileSelector(path, recursive=True))
    depth = len(path.split("/"))
    return [
        info
        for info in listed
        if info.type == pafs.FileType.File and _listed(info.path.split("/")[depth:], info.base_name)
    ]


def _glob_match(parts: Sequence[str], pattern: Sequence[str]) -> bool:
    """Shell-style matching, part by part; ``**`` matches any number of folders."""
    if not pattern:
        return not parts
    if pattern[0] == "**":
        return any(_glob_match(parts[skip:], pattern[1:]) for skip in range(len(parts) + 1))
    return (
        bool(parts)
        and fnmatch.fnmatchcase(parts[0], pattern[0])
        and _glob_match(parts[1:], pattern[1:])
    )
