"""A dataset's profile computed beside its fingerprint (``tracking.datasets``), where a
failure in profiling must never cost the fingerprint, nor logging the dataset."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from modelrail.monitoring.profiles import DatasetProfile
from modelrail.monitoring.profiling import ProfileBuilder

if TYPE_CHECKING:
    from modelrail.tracking.datasets import DatasetFingerprint

__all__ = ["ProfiledDataset", "SafeProfiling", "fingerprint_and_profile"]

log = logging.getLogger("modelrail")


@dataclass(frozen=True)
class ProfiledDataset:
    """A dataset's fingerprint and its profile, from one pass
    (``fingerprint_and_profile``). ``profile`` is None when profiling
    failed (``problem`` says why): that never costs the fingerprint."""

    fingerprint: DatasetFingerprint
    profile: DatasetProfile | None
    problem: str | None = None


class SafeProfiling:
    """A ``ProfileBuilder`` fed the same batches as a fingerprint's hashers. A failure in it
    is noted and profiling stops, while fingerprinting goes on."""

    def __init__(self) -> None:
        self.builder = ProfileBuilder()
        self.problem: str | None = None

    def start(self, schema: pa.Schema) -> None:
        self._guarded(self.builder.start, schema)

    def update(self, batch: pa.RecordBatch) -> None:
        if self.problem is None:
            self._guarded(self.builder.update, batch)

    def result(self, fingerprint: DatasetFingerprint) -> ProfiledDataset:
        if self.problem is not None:
            return ProfiledDataset(fingerprint, None, self.problem)
        try:
            return ProfiledDataset(fingerprint, self.builder.finish(fingerprint.rows))
        except Exception as exc:  # see _guarded
            return ProfiledDataset(fingerprint, None, _failed(exc))

    def _guarded(self, step: Any, value: Any) -> None:
        try:
            step(value)
        except Exception as exc:  # a bug in profiling must not stop a dataset being logged
            self.problem = _failed(exc)


def _failed(exc: Exception) -> str:
    log.warning("modelrail: profiling the dataset failed", exc_info=True)
    return f"profiling failed: {type(exc).__name__}: {exc}"


def fingerprint_and_profile(data: object, *, batch_rows: int = 65_536) -> ProfiledDataset:
    """``tracking.datasets.fingerprint_dataset(data)`` and the data's profile, computed
    from the same batches in one pass; the fingerprint is the same as without."""
    from modelrail.tracking.datasets import fingerprint_dataset

    profiling = SafeProfiling()
    return profiling.result(fingerprint_dataset(data, batch_rows=batch_rows, watcher=profiling))
