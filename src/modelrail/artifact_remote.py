"""Artifacts in object storage (``s3://bucket/prefix``, ``gs://...``) through pyarrow's file
systems, so a team shares one artifact store without a mounted folder.

Credentials and endpoints come from the usual places (for S3: ``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_ENDPOINT_URL`` for MinIO and other S3-compatible servers,
``AWS_DEFAULT_REGION``) or from the URL's query string (``?endpoint_override=...``). An object
under a content address appears whole or not at all: S3 and GCS publish an upload only
when it completes, so no rename is needed as on a disk.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO, TypeVar

import pyarrow as pa
import pyarrow.fs as pafs

from modelrail.errors import ArtifactStoreUnavailableError, InvalidInputError
from modelrail.object_store import open_object_store

_CHUNK = 1 << 20
Result = TypeVar("Result")


class RemoteBlobs:
    """Blobs under ``<prefix>/sha256/ab/cdef...`` in one bucket."""

    def __init__(self, url: str) -> None:
        self._fs, base, self.shown = open_object_store(url, "artifact root", InvalidInputError)
        self._base = base.rstrip("/")
        self._scheme = self.shown.split("://", 1)[0]

    def address(self, sha256: str) -> str:
        return f"{self._scheme}://{self._key(sha256)}"

    def size(self, sha256: str) -> int | None:
        """The stored object's size, or None when there is none."""
        info = self._call(lambda: self._fs.get_file_info(self._key(sha256)))
        return int(info.size) if info.type == pafs.FileType.File else None

    def upload(self, local: Path, sha256: str, size: int) -> None:
        if self.size(sha256) == size:
            return  # the same content is there already: addresses are content hashes

        def copy() -> None:
            key = self._key(sha256)
            with (
                local.open("rb") as source,
                self._fs.open_output_stream(key, compression=None) as out,
            ):
                shutil.copyfileobj(source, out, _CHUNK)

        self._call(copy)

    def download(self, sha256: str, into: BinaryIO) -> bool:
        """Copy the object into ``into``; False when there is no such object."""
        try:
            key = self._key(sha256)
            stream = self._call(lambda: self._fs.open_input_stream(key, compression=None))
        except FileNotFoundError:
            return False

        def copy() -> None:
            with stream:
                shutil.copyfileobj(stream, into, _CHUNK)

        self._call(copy)
        return True

    def _key(self, sha256: str) -> str:
        return f"{self._base}/sha256/{sha256[:2]}/{sha256[2:]}"

    def _call(self, action: Callable[[], Result]) -> Result:
        try:
            return action()
        except FileNotFoundError:
            raise
        except (OSError, pa.ArrowException) as exc:
            raise ArtifactStoreUnavailableError(
                f"the artifact store {self.shown} failed: {str(exc).strip()}"
            ) from exc
