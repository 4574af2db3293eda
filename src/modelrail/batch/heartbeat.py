"""A running batch run's signs of life: its record is beaten every few seconds, so that a
``running`` record whose beat stopped is known to belong to a killed process (and may be
resumed or superseded), and the input's fingerprint is recorded as soon as it is known."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from modelrail.errors import ModelrailError
from modelrail.store.batch_runs_repo import BatchRunRepository

if TYPE_CHECKING:
    from modelrail.batch.sources import Source

HEARTBEAT_SECONDS = 5.0
STALE_AFTER_SECONDS = 30.0


class Heartbeat:
    """Beats the run's record while it works; records the input fingerprint once known."""

    def __init__(
        self,
        repo: BatchRunRepository,
        run_id: str,
        source: Source,
        clock: Callable[[], float],
    ) -> None:
        self.repo = repo
        self.run_id = run_id
        self.source = source
        self.clock = clock
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="batch-heartbeat", daemon=True)
        self._fingerprint = threading.Thread(
            target=self._save_fingerprint, name="batch-fingerprint", daemon=True
        )

    def start(self) -> None:
        self._thread.start()
        self._fingerprint.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _loop(self) -> None:
        while not self._stop.wait(HEARTBEAT_SECONDS):
            try:
                self.repo.update(self.run_id, heartbeat_at=self.clock())
            except ModelrailError:
                continue  # the store is briefly unreachable: the next beat tries again

    def _save_fingerprint(self) -> None:
        """Recorded as soon as it is known, so a resume can tell a changed input."""
        try:
            fingerprint = self.source.fingerprint()
            if not self._stop.is_set():
                self.repo.update(self.run_id, input_fingerprint=fingerprint)
        except ModelrailError:
            return  # the end of the run records it, or the run failed anyway
