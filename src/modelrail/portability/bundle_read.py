"""Reading a bundle: open it, check ALL of it, then hand out its records and files.

``BundleReader.verify`` reads every member in chunks and compares its sha256 and size with
the manifest, refuses members the manifest does not list (or lists but the archive lacks),
parses every record strictly and checks that each file a record names is in the bundle:
only a bundle that passes is imported. The records and files are read again when they are
imported, and checked again as they are, so a file changed in between is refused too.
Nothing is unpacked to disk; members are reached by their known names only.

The bundle's identity (``sha256``) is that of its manifest, which lists the sha256 of
every other member: the same contents give the same identity without hashing the whole
file once more.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from modelrail.artifacts import ArtifactStore
from modelrail.errors import BundleError
from modelrail.portability import bundle_format as fmt
from modelrail.portability.bundle_write import Progress
from modelrail.portability.ingest import form_blobs
from modelrail.portability.records import HistoryRecord, RunRecord, VersionRecord

_CHUNK = 1 << 20
# What a damaged or truncated archive raises while it is read.
_DAMAGE = (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, NotImplementedError)


class BundleReader:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.name = str(path)
        if not self.path.exists():
            raise BundleError(f"bundle file {self.name} does not exist")
        if not self.path.is_file():
            raise BundleError(f"{self.name} is not a file; a bundle is one file (.mrbundle)")
        try:
            self.zip = zipfile.ZipFile(self.path)
        except zipfile.BadZipFile as exc:
            raise BundleError(
                f"{self.name} is not a modelrail bundle, or it is truncated: it is not a "
                f"readable zip archive ({exc}); nothing was imported"
            ) from exc
        except OSError as exc:
            raise BundleError(f"cannot read bundle {self.name}: {exc}") from exc
        try:
            self.manifest, self.sha256 = self._manifest()
        except BaseException:
            self.zip.close()
            raise

    def close(self) -> None:
        self.zip.close()

    def __enter__(self) -> BundleReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _manifest(self) -> tuple[fmt.Manifest, str]:
        names = self.zip.namelist()
        if fmt.MANIFEST not in names:
            # A truncated bundle can look like a zip it carries (a model file often is one).
            raise BundleError(
                f"{self.name} is not a modelrail bundle, or it is truncated: it holds no "
                f"{fmt.MANIFEST}; nothing was imported"
            )
        content = self._bytes(fmt.MANIFEST)
        try:
            data = json.loads(content)
        except ValueError as exc:
            raise BundleError(f"{self.name}: its manifest is not JSON ({exc})") from exc
        manifest = fmt.Manifest.from_json(data, self.name)
        listed, present = set(manifest.members), set(names) - {fmt.MANIFEST}
        if len(names) != len(set(names)):
            raise BundleError(f"{self.name} holds a member twice: it was tampered with")
        for name in sorted(present - listed):
            raise BundleError(
                f"{self.name} holds {name}, which its manifest does not list: it was "
                "tampered with; nothing was imported"
            )
        for name in sorted(listed - present):
            raise BundleError(
                f"{self.name} lacks {name}, which its manifest lists: it is incomplete; "
                "nothing was imported"
            )
        for name in sorted(listed):
            if fmt.member_kind(name) is None:
                raise BundleError(f"{self.name}: member {name} is not one a bundle holds")
        return manifest, hashlib.sha256(content).hexdigest()

    # -- checking ---------------------------------------------------------------------------

    def verify(self, progress: Progress | None = None) -> None:
        """Check every member against the manifest and every record's references; raise
        ``BundleError`` naming the first fault."""
        members = self.manifest.members
        if progress is not None:
            progress.begin("verify", sum(m.size for m in members.values()))
        for name in sorted(members):
            self._check_member(name, progress)
        blobs = {fmt.blob_sha256(n) for n in members if fmt.member_kind(n) == "blob"}
        references = []
        for run in self.runs():
            references += [(a.sha256, f"run {run.short_id}: {a.path}") for a in run.artifacts]
        versions = []
        for version in self.versions():
            versions.append(version.reference)
            references.append((version.artifact_sha256, version.reference))
            references += [(s, f"{version.reference} form") for s, _ in form_blobs(version)]
        for sha256, what in references:
            if sha256 not in blobs:
                raise BundleError(
                    f"{self.name}: {what} names file {sha256[:12]}..., which the bundle "
                    "lacks; nothing was imported"
                )
        if sorted(versions) != sorted(self.manifest.versions):
            raise BundleError(
                f"{self.name}: its version records do not match its manifest's list; "
                "nothing was imported"
            )
        self.history()

    def _check_member(self, name: str, progress: Progress | None) -> None:
        expected = self.manifest.members[name]
        digest, size = hashlib.sha256(), 0
        for chunk in self._chunks(name):
            digest.update(chunk)
            size += len(chunk)
            if progress is not None:
                progress.advance(len(chunk))
        if size != expected.size or digest.hexdigest() != expected.sha256:
            raise BundleError(
                f"{self.name}: member {name} has sha256 {digest.hexdigest()[:12]}... "
                f"({size:,} bytes) but the manifest records {expected.sha256[:12]}... "
                f"({expected.size:,} bytes): it was damaged or tampered with; nothing was imported"
            )
        if fmt.member_kind(name) == "blob" and fmt.blob_sha256(name) != expected.sha256:
            raise BundleError(f"{self.name}: member {name} is not named by its sha256")

    # -- contents -----------------------------------------------------------------------------

    def runs(self) -> Iterator[RunRecord]:
        for name in self._names("run"):
            run = RunRecord.from_json(self._record(name), f"{self.name}: {name}")
            if fmt.run_member(run.id) != name:
                raise BundleError(f"{self.name}: {name} holds run {run.id}")
            yield run

    def versions(self) -> Iterator[VersionRecord]:
        for name in self._names("version"):
            version = VersionRecord.from_json(self._record(name), f"{self.name}: {name}")
            if fmt.version_member(version.model, version.version) != name:
                raise BundleError(f"{self.name}: {name} holds {version.reference}")
            yield version

    def history(self) -> list[HistoryRecord]:
        data = self._record(fmt.HISTORY)
        where = f"{self.name}: {fmt.HISTORY}"
        if not isinstance(data, list):
            raise BundleError(f"{where}: expected a list of events")
        return [HistoryRecord.from_json(e, f"{where}[{i}]") for i, e in enumerate(data)]

    def blobs(self) -> list[tuple[str, int]]:
        return [
            (fmt.blob_sha256(name), member.size)
            for name, member in sorted(self.manifest.members.items())
            if fmt.member_kind(name) == "blob"
        ]

    def copy_blob(self, sha256: str, artifacts: ArtifactStore, progress: Progress | None) -> None:
        """Stream one file into the artifact store; it lands under the sha256 of the bytes
        read, so a file changed since ``verify`` is stored harmlessly and refused here."""
        name = fmt.blob_member(sha256)
        stream = _Counting(self._open(name), progress)
        try:
            with stream:
                stored = artifacts.put_stream(stream)  # type: ignore[arg-type]
        except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
            raise self._damaged(name, exc) from exc
        if stored.sha256 != sha256:
            raise BundleError(
                f"{self.name}: member {name} changed after it was checked; nothing was imported"
            )

    # -- reading members --------------------------------------------------------------------

    def _names(self, kind: str) -> list[str]:
        return sorted(n for n in self.manifest.members if fmt.member_kind(n) == kind)

    def _record(self, name: str) -> Any:
        content = self._bytes(name)
        expected = self.manifest.members[name]
        if hashlib.sha256(content).hexdigest() != expected.sha256:
            raise BundleError(
                f"{self.name}: member {name} changed after it was checked; nothing was imported"
            )
        try:
            return json.loads(content)
        except ValueError as exc:
            raise BundleError(f"{self.name}: member {name} is not JSON ({exc})") from exc

    def _open(self, name: str) -> Any:
        try:
            return self.zip.open(name)
        except _DAMAGE as exc:
            raise self._damaged(name, exc) from exc

    def _bytes(self, name: str) -> bytes:
        return b"".join(self._chunks(name))

    def _chunks(self, name: str) -> Iterator[bytes]:
        try:
            with self.zip.open(name) as member:
                while chunk := member.read(_CHUNK):
                    yield chunk
        except _DAMAGE as exc:
            raise self._damaged(name, exc) from exc

    def _damaged(self, name: str, exc: BaseException) -> BundleError:
        return BundleError(
            f"{self.name} is damaged or truncated: member {name} cannot be read ({exc}); "
            "nothing was imported"
        )


class _Counting:
    """A member's stream that reports the bytes read to a progress bar."""

    def __init__(self, stream: Any, progress: Progress | None) -> None:
        self.stream = stream
        self.progress = progress

    def read(self, size: int = -1) -> bytes:
        chunk: bytes = self.stream.read(size)
        if self.progress is not None and chunk:
            self.progress.advance(len(chunk))
        return chunk

    def __enter__(self) -> _Counting:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stream.close()
