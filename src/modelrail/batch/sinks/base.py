"""What every batch output offers the runner.

A sink is prepared once (its table created or checked) before any row is written, then
opened for one run. SQL sinks write a whole run in one transaction, so a reader sees all
of a run or none of it and a killed run leaves nothing behind; the folder and Redis sinks
keep a checkpoint after every batch instead, so a killed run resumes where it stopped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import pyarrow as pa

from modelrail.batch.scorer import RunStamp, ScoredBatch


@dataclass(frozen=True)
class Checkpoint:
    """How far a resumable run got: rows consumed from the input, and what was written."""

    next_row: int = 0
    parts: int = 0
    rows_written: int = 0
    rows_rejected: int = 0

    def to_dict(self) -> dict[str, int]:
        return {
            "next_row": self.next_row,
            "parts": self.parts,
            "rows_written": self.rows_written,
            "rows_rejected": self.rows_rejected,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Checkpoint:
        return cls(**{k: int(v) for k, v in data.items() if k in cls.__dataclass_fields__})


@dataclass(frozen=True)
class Committed:
    """What a run whose commit went through left in the output."""

    rows_written: int
    rows_rejected: int


class Writer(Protocol):
    def write(self, scored: ScoredBatch, scored_at: float) -> None: ...

    def parts_done(self) -> int | None:
        """Batches written so that they survive a kill, or None when the run is
        all-or-nothing."""
        ...

    def commit(self, input_key: str) -> None:
        """Make the run's rows visible; ``input_key`` is the input's fingerprint."""
        ...

    def abort(self) -> None: ...


class Sink(Protocol):
    location: str
    resumable: bool
    # Whether a failed run leaves the output as it was (False: the batches written stay).
    atomic: bool
    # Whether it writes faster than one thread decodes Parquet, so that decoding on two
    # threads pays; a slower output would only have more batches wait for it in memory.
    outpaces_decoding: bool

    def prepare(self, schema: pa.Schema, id_columns: tuple[str, ...], with_rejects: bool) -> None:
        """Create the table (or folder) or check that the existing one fits, writing no row."""
        ...

    def open(self, stamp: RunStamp, resume: Checkpoint | None) -> Writer: ...

    def committed(self, run_id: str) -> Committed | None:
        """The rows of ``run_id`` in the output if its commit went through (None: it did
        not, or the output cannot tell), so that a run killed after its commit but before
        its record said so is finished from what it wrote instead of writing it again."""
        ...

    def staged_runs(self) -> list[str]:
        """Ids of the runs whose unpublished files are in the output (a Parquet run's
        folder), so that those of finished runs can be dropped."""
        ...

    def discard(self, run_id: str) -> None:
        """Drop what a dead run left half-done (its staging), if anything."""
        ...

    def close(self) -> None: ...
