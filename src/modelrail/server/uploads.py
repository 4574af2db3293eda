"""The team server's partial uploads: the bytes of a blob that has not arrived whole yet.

Each blob being uploaded has one file ``<sha256>.part`` in the artifact store's
``staging/uploads`` folder (beside the store's own files, so publishing one is a rename).
``Staging`` hands one request at a time a ``Partial``: that file locked for the request,
cut to the offset the request continues from, and hashed as it is written, so the route
can compare the whole blob with its address without reading it again. A dropped
connection keeps what was written (a resume continues from it); partial files untouched
for a day are deleted when another upload starts. The HTTP side (headers, status codes,
publishing into the store) is ``artifact_routes.py``.
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path
from typing import BinaryIO

from starlette.concurrency import run_in_threadpool

from modelrail.errors import ConflictError

try:  # POSIX: one writer per partial file across server processes too
    import fcntl
except ImportError:  # pragma: no cover - Windows: the in-process check alone
    fcntl = None  # type: ignore[assignment]

STALE_PARTIAL_S = 24 * 3600
# The protocol's name for where an upload continues; defined here because a conflict over
# the offset is refused here, and the routes import it.
OFFSET_HEADER = "Upload-Offset"
CHUNK = 1 << 20


class Partial:
    """One request's writes to a blob's partial file (locked), hashed as they are written."""

    def __init__(self, path: Path, handle: BinaryIO, start: int) -> None:
        self.path = path
        self.handle = handle
        self.start = start
        self.size = start
        self.digest = hashlib.sha256()
        # The bytes held from earlier requests are hashed again: a hash's state cannot be
        # kept between requests, and reading them back once is cheaper than receiving them.
        handle.seek(0)
        left = start
        while left and (chunk := handle.read(min(CHUNK, left))):
            self.digest.update(chunk)
            left -= len(chunk)

    def write(self, data: bytes) -> None:
        self.handle.write(data)  # opened to append: after the truncation to ``start``
        self.digest.update(data)
        self.size += len(data)

    def keep(self) -> None:
        """Make what was written durable: a resume after a crash hashes it again."""
        self.handle.flush()
        os.fsync(self.handle.fileno())

    def rewind(self) -> None:
        """Drop this request's bytes (a refused body), keeping what earlier ones sent."""
        self.handle.truncate(self.start)
        self.size = self.start

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)

    def close(self) -> None:
        self.handle.close()  # releases the lock


class Staging:
    """The partial uploads: one file ``<sha256>.part`` per blob in the server's staging
    folder, beside the store's own, so publishing one is a rename."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._busy: set[str] = set()  # touched only on the event loop: no lock needed

    def path(self, sha256: str) -> Path:
        return self.folder / f"{sha256}.part"

    def held(self, sha256: str) -> int:
        try:
            return self.path(sha256).stat().st_size
        except FileNotFoundError:
            return 0

    async def begin(self, sha256: str, offset: int) -> Partial:
        """The partial file, locked for this request and cut to ``offset``."""
        if sha256 in self._busy:
            raise ConflictError(f"artifact {sha256} is being uploaded already: try again later")
        self._busy.add(sha256)
        try:
            return await run_in_threadpool(self._open, sha256, offset)
        except BaseException:
            self._busy.discard(sha256)
            raise

    def end(self, sha256: str) -> None:
        self._busy.discard(sha256)

    def _open(self, sha256: str, offset: int) -> Partial:
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.path(sha256)
        if not path.exists():
            self._sweep()
        handle = path.open("a+b")
        try:
            if fcntl is not None:
                try:
                    fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    raise ConflictError(
                        f"artifact {sha256} is being uploaded already: try again later"
                    ) from None
            held = os.fstat(handle.fileno()).st_size
            if offset > held:
                raise ConflictError(
                    f"{OFFSET_HEADER} is {offset:,} but the server holds {held:,} bytes of "
                    f"artifact {sha256}: continue from there"
                )
            handle.truncate(offset)
            return Partial(path, handle, offset)
        except BaseException:
            handle.close()
            raise

    def _sweep(self) -> None:
        """Delete partial files nobody has written to for a day: abandoned uploads."""
        cutoff = time.time() - STALE_PARTIAL_S
        for old in self.folder.glob("*.part"):
            try:
                if old.stem not in self._busy and old.stat().st_mtime < cutoff:
                    old.unlink()
            except FileNotFoundError:
                pass
