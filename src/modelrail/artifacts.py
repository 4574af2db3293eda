"""Content-addressed artifact store: every file lives at ``sha256/ab/cdef...``.

Writes go to a temporary file in the same folder and are renamed into place,
so a crash never leaves a partial file under a valid address, and two writers
of the same content simply produce the same file. Every read checks the sha256
that the caller recorded, so a changed or truncated file is refused; the bytes
checked are the bytes returned, so a file swapped in after the check is never used.

The root is a folder (local or mounted) or an object store URL (``s3://bucket/prefix``).
With an object store, a local folder of the same layout caches the files: a write lands
there first and is then uploaded, a read downloads into it once, and every read is checked
against the sha256 as before, so a damaged cached copy is fetched again. A team server is
such a backend too (``ArtifactStore.over(ServerBlobs(...), cache=...)``): anything with the
four methods of ``Blobs``.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Protocol

from modelrail.errors import ArtifactIntegrityError, ArtifactNotFoundError

if TYPE_CHECKING:
    from modelrail.entities import Run
from modelrail.object_store import is_object_store

_CHUNK = 1 << 20


class Blobs(Protocol):
    """Where a store's files live when not in its own folder (an object store, a team
    server); the store keeps a checked local cache in front of it."""

    shown: str  # the backend as messages and other processes name it

    def address(self, sha256: str) -> str: ...

    def size(self, sha256: str) -> int | None: ...

    def upload(self, local: Path, sha256: str, size: int) -> None: ...

    def download(self, sha256: str, into: BinaryIO) -> bool: ...


@dataclass(frozen=True)
class StoredBlob:
    sha256: str
    size: int


class ArtifactStore:
    def __init__(
        self, root: str | os.PathLike[str], *, cache: str | os.PathLike[str] | None = None
    ) -> None:
        text = os.fspath(root)
        self.location = text  # as given: what other processes open the same store with
        self._remote: Blobs | None = None
        if is_object_store(text):
            # Imported here: pyarrow is not loaded for a local store (a command starts faster,
            # and batch scoring can still choose Arrow's memory pool before pyarrow loads).
            from modelrail.artifact_remote import RemoteBlobs

            self._remote = RemoteBlobs(text)
            self.root = Path(cache or _default_cache()).expanduser()
        else:
            self.root = Path(text.removeprefix("file://")).expanduser()

    @classmethod
    def over(cls, backend: Blobs, *, cache: str | os.PathLike[str] | None = None) -> ArtifactStore:
        """A store whose files live in ``backend`` (e.g. a team server), cached in the folder
        ``cache`` (None: the user's cache, as for an object store) and checked on every read."""
        store = cls(Path(cache or _default_cache()).expanduser())
        store.location = backend.shown
        store._remote = backend
        return store

    def path_for(self, sha256: str) -> Path:
        return self.root / "sha256" / sha256[:2] / sha256[2:]

    def put_file(self, source: str | os.PathLike[str]) -> StoredBlob:
        path = Path(source)
        if not path.is_file():
            raise ArtifactNotFoundError(f"artifact file {path} does not exist")
        with path.open("rb") as handle:
            return self.put_stream(handle)

    def put_bytes(self, data: bytes) -> StoredBlob:
        return self.put_stream(io.BytesIO(data))

    def put_stream(self, stream: BinaryIO) -> StoredBlob:
        staging = self.root / "staging"
        staging.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        size = 0
        fd, temp_name = tempfile.mkstemp(dir=staging, prefix="upload-")
        try:
            _share(fd)
            with os.fdopen(fd, "wb") as out:
                while chunk := stream.read(_CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
                    size += len(chunk)
                out.flush()
                os.fsync(out.fileno())
        except BaseException:
            Path(temp_name).unlink(missing_ok=True)
            raise
        return self.put_hashed(Path(temp_name), digest.hexdigest(), size)

    def put_hashed(self, staged: Path, sha256: str, size: int) -> StoredBlob:
        """Move ``staged`` (a file in this store's ``staging`` folder, flushed to disk) into
        place under ``sha256``, which the caller computed from its bytes as it wrote them.

        Renamed, not copied: the team server hashes an upload as it arrives, so a file of
        several GiB is neither read again nor held in memory to be published."""
        try:
            target = self.path_for(sha256)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staged, target)
        except BaseException:
            staged.unlink(missing_ok=True)
            raise
        if self._remote is not None:
            self._remote.upload(target, sha256, size)
        return StoredBlob(sha256, size)

    def read_verified(self, sha256: str, *, size: int | None = None, label: str = "") -> bytes:
        """The file's content, read once and checked against ``sha256``.

        Callers load from these bytes, never from the path again: a file replaced between a
        check and a second open would otherwise be loaded without ever being checked.
        """
        path = self.path_for(sha256)
        if self._remote is None:
            return _checked(_read(path), sha256, size, f"{label} ({path})" if label else str(path))
        address = self._remote.address(sha256)
        what = f"{label} ({address})" if label else address
        cached = _read(path)
        if cached is not None:
            try:
                return _checked(cached, sha256, size, what)
            except ArtifactIntegrityError:
                path.unlink(missing_ok=True)  # a damaged cached copy: fetched again below
        if not self._fetch(sha256, path):
            raise ArtifactIntegrityError(f"artifact {what} is missing from the artifact store")
        try:
            return _checked(_read(path), sha256, size, what)
        except ArtifactIntegrityError:
            path.unlink(missing_ok=True)  # never serve a bad download from the cache
            raise

    def open_verified(self, sha256: str, *, label: str = "") -> BinaryIO | None:
        """The content as an open file at its start, checked against ``sha256`` by reading it
        once in chunks; None when the store holds no such file. For files too large to hold
        in memory (the team server streams them): the caller reads this handle, never the
        path, and should check the bytes again as it reads them if it cannot trust the disk
        in between."""
        path = self.path_for(sha256)
        if self._remote is None:
            return _open_checked(path, sha256, f"{label} ({path})" if label else str(path))
        address = self._remote.address(sha256)
        what = f"{label} ({address})" if label else address
        try:
            cached = _open_checked(path, sha256, what)
        except ArtifactIntegrityError:
            path.unlink(missing_ok=True)  # a damaged cached copy: fetched again below
            cached = None
        if cached is not None:
            return cached
        if not self._fetch(sha256, path):
            return None
        try:
            return _open_checked(path, sha256, what)
        except ArtifactIntegrityError:
            path.unlink(missing_ok=True)  # never serve a bad download from the cache
            raise

    def verify(self, sha256: str, *, size: int | None = None, label: str = "") -> None:
        """Refuse a missing, truncated or changed artifact (nothing is loaded from it)."""
        self.read_verified(sha256, size=size, label=label)

    def copy_verified(
        self, sha256: str, destination: Path, *, size: int | None = None, label: str = ""
    ) -> None:
        """Write the verified content to ``destination`` atomically (temp file, rename)."""
        data = self.read_verified(sha256, size=size, label=label)
        destination.parent.mkdir(parents=True, exist_ok=True)
        fd, temp_name = tempfile.mkstemp(dir=destination.parent, prefix=".copy-")
        try:
            _share(fd)
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temp_name, destination)
        except BaseException:
            Path(temp_name).unlink(missing_ok=True)
            raise

    def _fetch(self, sha256: str, path: Path) -> bool:
        """Download into the cache at ``path``; False when the backend has no such file."""
        assert self._remote is not None
        staging = self.root / "staging"
        staging.mkdir(parents=True, exist_ok=True)
        fd, temp_name = tempfile.mkstemp(dir=staging, prefix="download-")
        try:
            _share(fd)
            with os.fdopen(fd, "wb") as out:
                found = self._remote.download(sha256, out)
            if not found:
                return False
            path.parent.mkdir(parents=True, exist_ok=True)
            os.replace(temp_name, path)
            return True
        finally:
            Path(temp_name).unlink(missing_ok=True)


def _shared_mode() -> int:
    # mkstemp makes files private (0600); an artifact is content-addressed and readable by
    # whoever may read the folder: a container's non-root user, a teammate on a shared store.
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


_SHARED_MODE = _shared_mode()


def _share(fd: int) -> None:
    if hasattr(os, "fchmod"):  # POSIX only; Windows files carry no such bits
        os.fchmod(fd, _SHARED_MODE)


def _default_cache() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache") / "modelrail" / "artifacts"


def _read(path: Path) -> bytes | None:
    try:
        with path.open("rb") as handle:
            return handle.read()
    except (FileNotFoundError, IsADirectoryError):
        return None


def _checked(data: bytes | None, sha256: str, size: int | None, what: str) -> bytes:
    if data is None:
        raise ArtifactIntegrityError(f"artifact {what} is missing from the artifact store")
    if size is not None and len(data) != size:
        raise ArtifactIntegrityError(
            f"artifact {what} is {len(data)} bytes but {size} were stored: "
            "it was truncated or changed; refusing to load it"
        )
    _compare(hashlib.sha256(data).hexdigest(), sha256, what)
    return data


def _open_checked(path: Path, sha256: str, what: str) -> BinaryIO | None:
    try:
        handle = path.open("rb")
    except (FileNotFoundError, IsADirectoryError):
        return None
    try:
        digest = hashlib.sha256()
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
        _compare(digest.hexdigest(), sha256, what)
        handle.seek(0)
    except BaseException:
        handle.close()
        raise
    return handle


def _compare(actual: str, sha256: str, what: str) -> None:
    if actual != sha256:
        raise ArtifactIntegrityError(
            f"artifact {what} has sha256 {actual[:12]}... but the registry recorded "
            f"{sha256[:12]}...: it was changed after it was stored; refusing to load it"
        )


def read_run_artifact(artifacts: ArtifactStore, run: Run, path: str) -> bytes:
    """The bytes of the artifact ``run`` logged at ``path``, checked against its sha256."""
    record = next((a for a in run.artifacts if a.path == path), None)
    if record is None:
        raise ArtifactNotFoundError(f"run {run.short_id} has no artifact {path!r}")
    return artifacts.read_verified(
        record.sha256, size=record.size, label=f"run {run.short_id}: {record.path}"
    )
