"""Telling waiting clients that the history grew: ``GET /api/v1/history/changes``.

A ``modelrail serve`` following an environment through the team server long-polls here
instead of reading the board over and over: the request waits until the history holds an
event newer than the one the client knows, or until its wait is up, and answers the newest
event's id. However many clients wait, one task reads the store (every half second, and at
once after a change made through this server), so waiting costs the store nothing per client.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from starlette.concurrency import run_in_threadpool

from modelrail.errors import ModelrailError

log = logging.getLogger("modelrail.server")
POLL_S = 0.5
MAX_WAIT_S = 30.0
# The reading task stops after this long with nobody waiting (the next wait starts it).
IDLE_STOP_S = 10.0


class HistoryChanges:
    def __init__(self, read_newest: Callable[[], int], *, poll_s: float = POLL_S) -> None:
        self._read = read_newest
        self._poll_s = poll_s
        self._newest: int | None = None
        self._waiting = 0
        self._task: asyncio.Task[None] | None = None
        self._changed: asyncio.Condition | None = None
        self._poked: asyncio.Event | None = None

    async def wait_beyond(self, after: int, timeout_s: float) -> int:
        """The newest event's id, once it is beyond ``after`` or ``timeout_s`` has passed."""
        changed = self._start()
        self._waiting += 1
        try:
            async with changed:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        changed.wait_for(lambda: (self._newest or 0) > after),
                        min(max(timeout_s, 0.0), MAX_WAIT_S),
                    )
        finally:
            self._waiting -= 1
        if self._newest is None:  # the store could not be read yet: say so as an error
            return await run_in_threadpool(self._read)
        return self._newest

    def poke(self) -> None:
        """A change was just made through this server: read the store now."""
        if self._poked is not None:
            self._poked.set()

    def _start(self) -> asyncio.Condition:
        if self._changed is None:
            self._changed = asyncio.Condition()
            self._poked = asyncio.Event()
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._watch())
        return self._changed

    async def _watch(self) -> None:
        assert self._changed is not None and self._poked is not None
        idle_since = time.monotonic()
        while True:
            try:
                newest = await run_in_threadpool(self._read)
            except ModelrailError as exc:
                log.warning("modelrail server: cannot read the history: %s", exc)
            else:
                if newest != self._newest:
                    self._newest = newest
                    async with self._changed:
                        self._changed.notify_all()
            if self._waiting:
                idle_since = time.monotonic()
            elif time.monotonic() - idle_since > IDLE_STOP_S:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._poked.wait(), self._poll_s)
            self._poked.clear()
