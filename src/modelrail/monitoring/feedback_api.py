"""True outcomes sent over HTTP (``POST /v1/feedback`` on the prediction server).

```json
{"model": "churn",
 "labels": [{"request_id": "5f0c9a1e3b7d2c44-1a2b", "row": 0, "label": true},
            {"request_id": "order-1789", "label": "fraud"}]}
```

``request_id`` is the ``x-request-id`` of the answer (or a batch output row's id), ``row``
the row within that request (default 0), ``label`` the outcome: all labels of one request
are numbers, all ``true`` / ``false``, or all text. A later label for the same request and
row replaces an earlier one when they are read (``logfiles.read_feedback``).

Labels are written by ``FeedbackWriter``: what arrives within ``window_s`` of the first
request waiting is written together, one file per model, so many small requests do not make
many tiny files; each request is answered once its labels are on disk.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pyarrow as pa

from modelrail.errors import InvalidRequestError
from modelrail.monitoring.logfiles import feedback_table, write_feedback

__all__ = ["MAX_ID_LENGTH", "MAX_LABELS", "FeedbackWriter", "labels_from_json"]

log = logging.getLogger("modelrail.monitoring")

MAX_LABELS = 10_000  # in one request
MAX_ID_LENGTH = 1024  # a batch row's id is its id columns joined, so longer than a header's
_KEYS = frozenset({"request_id", "row", "label"})
_ROW_LIMIT = 2**31


def _refuse(message: str, field: str) -> InvalidRequestError:
    return InvalidRequestError(message, field=field, status=400)


def labels_from_json(
    payload: Any, *, loaded_by: str, now: float, max_labels: int = MAX_LABELS
) -> tuple[str, pa.Table]:
    """The model named and its labels in the feedback file layout; an InvalidRequestError
    (400) naming the field at fault otherwise."""
    if not isinstance(payload, dict):
        raise _refuse('the body must be a JSON object with "model" and "labels"', "body")
    extra = sorted(set(payload) - {"model", "labels"})
    if extra:
        raise _refuse(f"unknown field {extra[0]!r}", extra[0])
    model = payload.get("model")
    if not isinstance(model, str) or not model:
        raise _refuse('"model" must be the name of a served model', "model")
    labels = payload.get("labels")
    if not isinstance(labels, list) or not labels:
        raise _refuse('"labels" must be a non-empty list of {request_id, row, label}', "labels")
    if len(labels) > max_labels:
        raise InvalidRequestError(
            f'"labels" has {len(labels)} items; at most {max_labels} per request',
            field="labels",
            status=413,
        )
    ids: list[str] = []
    rows: list[int] = []
    values: list[Any] = []
    kind: type | None = None
    for index, item in enumerate(labels):
        where = f"labels[{index}]"
        if not isinstance(item, dict):
            raise _refuse(f"{where} must be an object with request_id and label", where)
        unknown = sorted(set(item) - _KEYS)
        if unknown:
            raise _refuse(f"unknown field {unknown[0]!r} in {where}", f"{where}.{unknown[0]}")
        ids.append(_request_id(item.get("request_id"), f"{where}.request_id"))
        rows.append(_row(item.get("row", 0), f"{where}.row"))
        label = item.get("label")
        this = _kind(label, f"{where}.label")
        if kind is None:
            kind = this
        elif this is not kind:
            raise _refuse(
                f"{where}.label is {_NAMES[this]} but the labels before it are {_NAMES[kind]}: "
                "send labels of one kind per request",
                f"{where}.label",
            )
        values.append(label)
    array = pa.array(values, pa.float64() if kind is float else None)
    table = feedback_table(ids, array, rows=rows, source="api", loaded_by=loaded_by, now=now)
    return model, table


def _request_id(value: Any, field: str) -> str:
    if not isinstance(value, str) or not value:
        raise _refuse(f"{field} must be the request's id (text, as x-request-id answered)", field)
    if len(value) > MAX_ID_LENGTH:
        raise _refuse(f"{field} is {len(value)} characters; at most {MAX_ID_LENGTH}", field)
    return value


def _row(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < _ROW_LIMIT:
        raise _refuse(f"{field} must be the row's index in its request (0, 1, ...)", field)
    return value


_NAMES = {float: "a number", bool: "true/false", str: "text"}


def _kind(value: Any, field: str) -> type:
    if value is None:
        raise _refuse(f"{field} is missing: every label needs its outcome", field)
    if isinstance(value, bool):
        return bool
    if isinstance(value, int | float):
        return float
    if isinstance(value, str):
        return str
    raise _refuse(f"{field} must be a number, true/false or text", field)


class FeedbackWriter:
    """Writes labels handed over by ``submit`` from a thread of its own, grouped."""

    def __init__(
        self,
        root: str | Path,
        *,
        window_s: float = 0.1,
        write: Callable[[str | Path, str, pa.Table], int] = write_feedback,
    ) -> None:
        self.root = root
        self.window_s = window_s
        self._write = write
        self._items: list[tuple[str, pa.Table, Future[int]]] = []
        self._ready = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None

    def submit(self, model: str, table: pa.Table) -> Future[int]:
        """Labels to write; the future gives their count once they are on disk (or the
        error that kept them off it)."""
        done: Future[int] = Future()
        with self._ready:
            if self._stopping:
                done.set_exception(RuntimeError("the server is stopping"))
                return done
            self._items.append((model, table, done))
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="modelrail-feedback", daemon=True
                )
                self._thread.start()
            self._ready.notify()
        return done

    def stop(self) -> None:
        with self._ready:
            self._stopping = True
            self._ready.notify()
            thread = self._thread
        if thread is not None:
            thread.join(timeout=30)

    def _run(self) -> None:
        while True:
            with self._ready:
                while not self._items and not self._stopping:
                    self._ready.wait()
                if not self._items:
                    return
                first_at = time.monotonic()
                # Wait out the window for more labels to join these in one file.
                while not self._stopping:
                    left = self.window_s - (time.monotonic() - first_at)
                    if left <= 0:
                        break
                    self._ready.wait(left)
                items, self._items = self._items, []
            self._write_all(items)

    def _write_all(self, items: list[tuple[str, pa.Table, Future[int]]]) -> None:
        by_model: dict[str, list[tuple[pa.Table, Future[int]]]] = {}
        for model, table, done in items:
            by_model.setdefault(model, []).append((table, done))
        for model, entries in by_model.items():
            try:
                self._write(self.root, model, pa.concat_tables([t for t, _ in entries]))
            except Exception as exc:  # answered as an error; the writer goes on
                log.error("modelrail: could not store labels of %s: %s", model, exc)
                for _, done in entries:
                    done.set_exception(exc)
                continue
            for table, done in entries:
                done.set_result(int(table.num_rows))
