"""The monitoring folder: a local folder or an object-store prefix (``s3://bucket/logs``),
through one small interface, so that prediction logs, labels and checks written by serving
machines can be read by the machine that monitors them.

Files are only ever written whole and never changed. Locally a file is written under a
temporary name, flushed to disk and renamed; in an object store an object becomes visible
only when its upload completes, so readers see whole files or nothing in both. Names that
start with a dot are partial files (or hidden ones) and are never listed.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import pyarrow.fs as pafs

from modelrail.errors import MonitoringDataError
from modelrail.object_store import is_object_store, open_object_store

Writer = Callable[[IO[bytes]], object]


class MonitoringFolder:
    """Where monitoring files live. Paths given to and returned by its methods are
    relative to the folder, with ``/`` between parts."""

    def __init__(self, root: str | Path) -> None:
        location = str(root)
        self.local = not is_object_store(location)
        self.shown: str
        if self.local:
            self.filesystem: Any = pafs.LocalFileSystem()
            self.base = str(Path(location).expanduser().resolve())
            self.shown = self.base
        else:
            self.filesystem, self.base, self.shown = open_object_store(
                location, "the monitoring folder", MonitoringDataError
            )
            self.base = self.base.rstrip("/")

    def __repr__(self) -> str:
        return f"MonitoringFolder({self.shown!r})"

    def full(self, relative: str) -> str:
        """The path of ``relative`` on the folder's file system."""
        return f"{self.base}/{relative}" if relative else self.base

    def shown_path(self, relative: str) -> str:
        """``relative`` as messages show it."""
        return f"{self.shown.rstrip('/')}/{relative}"

    # -- writing ---------------------------------------------------------------------------

    def write_whole(self, relative: str, write: Writer) -> str:
        """A new file at ``relative`` with what ``write`` writes; its relative path."""
        if self.local:
            self._write_local(relative, write)
        else:
            try:
                with self.filesystem.open_output_stream(self.full(relative)) as stream:
                    write(stream)
            except OSError as exc:
                raise MonitoringDataError(
                    f"cannot write {self.shown_path(relative)}: {exc}"
                ) from exc
        return relative

    def _write_local(self, relative: str, write: Writer) -> None:
        target = Path(self.full(relative))
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
        try:
            with partial.open("wb") as handle:
                write(handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(partial, target)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise

    def replace_whole(self, relative: str, data: bytes) -> None:
        """Write ``data`` at ``relative``, replacing what is there, as one whole file."""
        self.write_whole(relative, lambda handle: handle.write(data))

    # -- reading -----------------------------------------------------------------------------

    def read_bytes(self, relative: str) -> bytes | None:
        """The file's content; None when there is no such file."""
        try:
            with self.filesystem.open_input_stream(self.full(relative)) as stream:
                data: bytes = stream.read()
                return data
        except FileNotFoundError:
            return None
        except OSError as exc:
            if not self.exists(relative):
                return None
            raise MonitoringDataError(f"cannot read {self.shown_path(relative)}: {exc}") from exc

    def exists(self, relative: str) -> bool:
        info = self.filesystem.get_file_info(self.full(relative))
        return bool(info.type == pafs.FileType.File)

    def files(self, relative: str, *, suffix: str = "") -> list[str]:
        """Every whole file under the folder ``relative`` (at any depth) whose name ends
        with ``suffix``, sorted; relative paths."""
        selector = pafs.FileSelector(self.full(relative), allow_not_found=True, recursive=True)
        found = []
        for info in self._infos(selector, relative):
            name = info.base_name
            if (
                info.type == pafs.FileType.File
                and not name.startswith(".")
                and name.endswith(suffix)
            ):
                found.append(self._relative(info.path))
        return sorted(found)

    def folders(self, relative: str) -> list[str]:
        """The names of the folders right inside ``relative``, sorted."""
        selector = pafs.FileSelector(self.full(relative), allow_not_found=True)
        return sorted(
            info.base_name
            for info in self._infos(selector, relative)
            if info.type == pafs.FileType.Directory
        )

    def _infos(self, selector: Any, relative: str) -> list[Any]:
        try:
            infos: list[Any] = self.filesystem.get_file_info(selector)
            return infos
        except OSError as exc:
            raise MonitoringDataError(f"cannot list {self.shown_path(relative)}: {exc}") from exc

    def _relative(self, path: str) -> str:
        return path[len(self.base) :].lstrip("/")

    # -- removing ----------------------------------------------------------------------------

    def remove(self, relative: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.filesystem.delete_file(self.full(relative))

    def remove_empty_folder(self, relative: str) -> None:
        """Remove the folder ``relative`` when nothing is left in it (local only: an object
        store has no folders of its own)."""
        if self.local:
            with contextlib.suppress(OSError):  # not empty: a writer got there first
                Path(self.full(relative)).rmdir()
