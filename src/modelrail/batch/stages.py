"""Pipeline stages on their own threads: a batch run decodes, scores and writes at once.

Arrow, numpy and the database drivers release the GIL for most of their work, so a stage
that makes the next items while its consumer works on the current one uses the second core.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from queue import Empty, Full, Queue
from typing import Any, Generic, TypeVar

Item = TypeVar("Item")


class Stage(Generic[Item]):
    """``items``, made on a thread called ``name`` (started at once) up to ``depth`` items
    ahead of the consumer. An error of that thread is raised to the consumer. ``close()``
    stops the thread and closes ``items``, so the stages before it stop in turn; a consumer
    must call it (or use the stage as a context manager) unless it reads to the end."""

    def __init__(self, items: Iterator[Item], name: str, depth: int = 2) -> None:
        self._items = items
        self._queue: Queue[tuple[str, Any]] = Queue(maxsize=depth)
        self._stop = threading.Event()
        self._finished = False
        self._worker = threading.Thread(target=self._produce, name=name, daemon=True)
        self._worker.start()

    def __iter__(self) -> Stage[Item]:
        return self

    def __next__(self) -> Item:
        if self._finished:
            raise StopIteration
        kind, value = self._queue.get()
        if kind == "item":
            return value  # type: ignore[no-any-return]
        self.close()
        if kind == "error":
            raise value
        raise StopIteration

    def __enter__(self) -> Stage[Item]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._finished = True
        self._stop.set()
        while self._worker.is_alive():
            try:
                self._queue.get(timeout=0.1)
            except Empty:
                continue
        self._worker.join()

    def _produce(self) -> None:
        try:
            for item in self._items:
                while not self._stop.is_set():
                    try:
                        self._queue.put(("item", item), timeout=0.1)
                        break
                    except Full:
                        continue
                if self._stop.is_set():
                    return
            self._queue.put(("end", None))
        except BaseException as exc:  # handed to the consumer, which raises it
            self._queue.put(("error", exc))
        finally:
            close = getattr(self._items, "close", None)
            if close is not None:
                close()
