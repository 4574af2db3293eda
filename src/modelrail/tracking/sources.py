"""Where a run's data was read from, so a rebuild can find it and check it is unchanged.

A dataset logged as a file path is its own location. A dataset logged in memory (a pandas
frame read from a CSV, say) names its location with ``log_dataset(..., source=...)``: a
local path, digested byte for byte now, or a URL, kept as given (reading it back is the
rebuild's business).
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from modelrail.errors import DatasetReadError

__all__ = ["DataLocation", "digest_location", "is_url", "locate"]

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_CHUNK = 1 << 20


@dataclass(frozen=True)
class DataLocation:
    place: str  # an absolute path or a URL
    sha256: str | None  # the bytes found there (a file, or a folder's files), when local


def is_url(place: str) -> bool:
    return bool(_URL.match(place)) and not place.startswith("file://")


def locate(source: str | os.PathLike[str]) -> DataLocation:
    """The location ``source`` names, with a digest of what is there now when it is local."""
    text = os.fspath(source)
    if not isinstance(text, str) or not text.strip():
        raise DatasetReadError(f"source {source!r} must be a path or a URL")
    if is_url(text):
        return DataLocation(text, None)
    path = Path(text.removeprefix("file://")).expanduser().resolve()
    digest = digest_location(path)
    if digest is None:
        raise DatasetReadError(
            f"source {path} does not exist: name the file or folder the data was read from"
        )
    return DataLocation(str(path), digest)


def digest_location(path: Path) -> str | None:
    """sha256 of a file's bytes, or of a folder's files (paths and bytes, in path order);
    None when nothing is there."""
    try:
        if path.is_file():
            return _file_sha256(path)
        if not path.is_dir():
            return None
        digest = hashlib.sha256(b"modelrail.folder.v1\n")
        for file in sorted(p for p in path.rglob("*") if p.is_file()):
            relative = file.relative_to(path).as_posix()
            digest.update(f"{relative}\0{_file_sha256(file)}\n".encode())
        return digest.hexdigest()
    except OSError as exc:
        raise DatasetReadError(f"cannot read {path}: {exc.strerror or exc}") from exc


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
