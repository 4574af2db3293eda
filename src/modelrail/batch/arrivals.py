"""Which files a file-trigger schedule may take now: those matching its pattern that have
settled, so a file still being copied is left for a later look.

A file has settled when its size and modification time are unchanged since the previous
look (of this watcher, for this schedule), or when it was last modified at least
``settle_seconds`` ago, so a one-off pass also takes files that have been sitting there.
Names starting with ``.`` or ``_`` are ignored (temporary files, ``_SUCCESS``). A file is
identified by the sha256 of its resolved path, size and modification time (ns): a file
rewritten after it was scored is a new arrival.
"""

from __future__ import annotations

import glob
import hashlib
from dataclasses import dataclass
from pathlib import Path

SETTLE_SECONDS = 60.0


@dataclass(frozen=True)
class Arrival:
    path: str
    fingerprint: str
    mtime_ns: int


class ArrivalWatch:
    """Remembers, per schedule, the size and mtime of each matching file at the last look."""

    def __init__(self, settle_seconds: float = SETTLE_SECONDS) -> None:
        self.settle_seconds = settle_seconds
        self._seen: dict[str, dict[str, tuple[int, int]]] = {}

    def settled(self, schedule: str, pattern: str, at: float) -> list[Arrival]:
        """Files matching ``pattern`` that have settled by time ``at``, oldest first."""
        previous = self._seen.get(schedule, {})
        current: dict[str, tuple[int, int]] = {}
        settled: list[Arrival] = []
        for match in glob.glob(pattern, recursive=True):
            path = Path(match)
            if path.name.startswith((".", "_")):
                continue
            try:
                if not path.is_file():
                    continue
                resolved = str(path.resolve())
                stat = path.stat()
            except OSError:
                continue  # removed or renamed while we looked
            signature = (stat.st_size, stat.st_mtime_ns)
            current[resolved] = signature
            if previous.get(resolved) == signature or at - stat.st_mtime >= self.settle_seconds:
                raw = f"{resolved}\n{stat.st_size}\n{stat.st_mtime_ns}".encode()
                fingerprint = hashlib.sha256(raw).hexdigest()
                settled.append(Arrival(resolved, fingerprint, stat.st_mtime_ns))
        self._seen[schedule] = current
        return sorted(settled, key=lambda a: (a.mtime_ns, a.path))
