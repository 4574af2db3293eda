"""Artifact locations an MLflow store names, read where this machine can reach them.

A run's artifact URI and a model version's storage location are a local folder (``/path``
or ``file:///path``, what a local store and a file store write), ``mlflow-artifacts:/...``
(files an MLflow server keeps for its clients: only reachable through that server's URL),
or object storage (``s3://``, ``gs://`` ...), which an import leaves where it is and says so.
"""

from __future__ import annotations

import os
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

from modelrail.portability.mlflow_records import ArtifactEntry


class ArtifactsUnreachable(Exception):
    """The files at a location cannot be read from here; ``str()`` says why."""


def local_folder(location: str) -> Path | None:
    """The folder a ``file:`` URI or a plain path names, or None for any other scheme."""
    parsed = urllib.parse.urlsplit(location)
    if parsed.scheme == "file":
        return Path(urllib.parse.unquote(parsed.path))
    if parsed.scheme == "" or (len(parsed.scheme) == 1 and os.name == "nt"):
        return Path(location)
    return None


def require_local(location: str) -> Path:
    folder = local_folder(location)
    if folder is None:
        scheme = urllib.parse.urlsplit(location).scheme
        if scheme == "mlflow-artifacts":
            raise ArtifactsUnreachable(
                f"{location} is kept by an MLflow server: import through the server's URL "
                "(http://...) to bring these files"
            )
        raise ArtifactsUnreachable(f"{location} is in {scheme}:// storage, not read by an import")
    return folder


def list_local(location: str) -> Iterator[ArtifactEntry]:
    """Every file below the local folder ``location``, sorted; none when it does not exist
    (MLflow makes the folder only when the first artifact is logged)."""
    folder = require_local(location)
    if not folder.is_dir():
        return
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        yield ArtifactEntry(path.relative_to(folder).as_posix(), path.stat().st_size)


def read_local(location: str, path: str) -> bytes:
    folder = require_local(location)
    target = (folder / path).resolve()
    if not target.is_relative_to(folder.resolve()):
        raise ArtifactsUnreachable(f"{path!r} is outside {location}")
    try:
        return target.read_bytes()
    except OSError as exc:
        raise ArtifactsUnreachable(f"cannot read {target}: {exc.strerror or exc}") from exc
