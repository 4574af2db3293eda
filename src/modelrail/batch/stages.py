"""Pipeline stages on their own threads: a batch run decodes, scores and writes at once.

Arrow, numpy and the database drivers release the GIL for most of their work, so a stage
that makes the next items while the caller works on the current one uses the second core.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from queue import Empty, Full, Queue
from typing import Any, TypeVar

Item = TypeVar("Item")


def ahead(items: Iterator[Item], name: str, depth: int = 2) -> Iterator[Item]:
    """``items``, made on a thread called ``name`` up to ``depth`` items ahead of the caller.
    An error of that thread is raised to the caller; when the caller stops early, the thread
    stops and ``items`` is closed (a stage before it stops in turn)."""
    queue: Queue[tuple[str, Any]] = Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        queue.put(("item", item), timeout=0.1)
                        break
                    except Full:
                        continue
                if stop.is_set():
                    return
            queue.put(("end", None))
        except BaseException as exc:  # handed to the consumer, which raises it
            queue.put(("error", exc))
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    worker = threading.Thread(target=produce, name=name, daemon=True)
    worker.start()
    try:
        while True:
            kind, value = queue.get()
            if kind == "end":
                return
            if kind == "error":
                raise value
            yield value
    finally:
        stop.set()
        while worker.is_alive():
            try:
                queue.get(timeout=0.1)
            except Empty:
                continue
        worker.join()
