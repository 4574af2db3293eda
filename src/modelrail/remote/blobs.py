"""A team server as the place an ``ArtifactStore`` keeps its files:
``ArtifactStore.over(ServerBlobs(connection), cache=folder)``.

The store does what it does over an object store: it writes a new file into its local cache
first and then uploads it, downloads a file into the cache once, and checks every read
against the sha256, so a damaged download or cached copy is refused or fetched again. The
server checks the bytes too, on the way in and on the way out. Transfers are streamed in
chunks; an upload cut off part way continues from what the server holds, a download from
what arrived (the protocol: ``modelrail.server.artifact_routes``).
"""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

from modelrail.remote.connection import API, ServerConnection

__all__ = ["ServerBlobs"]


class ServerBlobs:
    """Blobs under ``/api/v1/artifacts/<sha256>`` on one team server."""

    def __init__(self, connection: ServerConnection) -> None:
        self._connection = connection
        self.shown = f"{connection.url}{API}/artifacts"

    def address(self, sha256: str) -> str:
        return f"{self.shown}/{sha256}"

    def size(self, sha256: str) -> int | None:
        """The stored blob's size, or None when the server has none (the server answers only
        for a blob that matches its address)."""
        headers = self._connection.head(_path(sha256))
        if headers is None:
            return None
        length = {k.lower(): v for k, v in headers.items()}.get("content-length", "")
        return int(length) if length.isdigit() else None

    def upload(self, local: Path, sha256: str, size: int) -> None:
        self._connection.put_file(_path(sha256), local, size)

    def download(self, sha256: str, into: BinaryIO) -> bool:
        """Copy the blob into ``into``; False when the server has no such blob."""
        return self._connection.get_into(_path(sha256), into)


def _path(sha256: str) -> str:
    return f"/artifacts/{sha256}"
