"""Parquet output: a dataset folder with one partition per input, ``input=<fingerprint>``.

A run writes its part files (about a million rows each, a row group per batch) into a
folder of its own, ``.runs/<run id>``, hidden from readers of the dataset (they skip names
starting with ``.`` or ``_``), each part atomically, so a killed run resumes after its last
whole part. At the end the run publishes that folder as the partition of its input by one
atomic rename (``parquet_links``): readers see the old files or the new ones, never none and
never both, and a re-run on the same input replaces its rows instead of adding them. On
Spark, the executors write their partitions' part files into the run's folder themselves
(``StagedParts``) and the driver publishes them the same way.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from modelrail.batch.scorer import STAMP_FIELDS, RunStamp, ScoredBatch
from modelrail.batch.sinks.base import Checkpoint, Committed
from modelrail.batch.sinks.parquet_links import PartitionLinks
from modelrail.batch.spec import DEFAULT_PART_ROWS
from modelrail.errors import BatchOutputError

_PART = "part-{:06d}.parquet"


class ParquetSink:
    resumable = True
    atomic = True
    outpaces_decoding = True

    def __init__(self, folder: Path, *, part_rows: int = DEFAULT_PART_ROWS) -> None:
        self.folder = folder
        self.part_rows = part_rows
        self.location = str(folder)
        if folder.suffix == ".parquet":
            raise BatchOutputError(
                f"Parquet output {folder} names a file: give a folder, batch scoring writes "
                "a dataset of part files there"
            )
        self.links = PartitionLinks(folder)
        self._schema: pa.Schema | None = None

    def prepare(self, schema: pa.Schema, id_columns: tuple[str, ...], with_rejects: bool) -> None:
        full = pa.schema([*schema, *STAMP_FIELDS])
        try:
            self.links.runs.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise BatchOutputError(f"cannot create output folder {self.folder}: {exc}") from exc
        self.links.finish_interrupted()
        existing = next(iter(sorted(self.folder.glob("input=*/*.parquet"))), None)
        if existing is not None:
            try:
                found = pq.read_schema(existing)
            except (OSError, pa.ArrowException) as exc:
                raise BatchOutputError(f"cannot read {existing}: {exc}") from exc
            if not found.remove_metadata().equals(full, check_metadata=False):
                raise BatchOutputError(
                    f"the dataset in {self.folder} has other columns ({_describe(found)}) than "
                    f"this job writes ({_describe(full)}); choose another {{output}} folder",
                    params=("output",),
                )
        self._schema = full

    def open(self, stamp: RunStamp, resume: Checkpoint | None) -> ParquetWriter:
        assert self._schema is not None, "prepare() first"
        return ParquetWriter(self, self._schema, stamp, resume)

    def committed(self, run_id: str) -> Committed | None:
        self.links.finish_interrupted()
        partition = self.links.partition_of(run_id)
        if partition is None:
            return None
        rejects = self.folder / "_rejects" / f"run={run_id}"
        return Committed(_rows_in(partition), _rows_in(rejects))

    def staged_runs(self) -> list[str]:
        return self.links.unpublished()

    def discard(self, run_id: str) -> None:
        self.links.discard(run_id)

    def close(self) -> None:
        return None


class ParquetWriter:
    """Writes a run's batches as row groups of part files in the staging folder. A part is
    written under a ``.tmp`` name and renamed once closed, so a kill leaves only whole parts
    (those the checkpoint counts) and one partial file that a resume deletes."""

    def __init__(
        self,
        sink: ParquetSink,
        schema: pa.Schema,
        stamp: RunStamp,
        resume: Checkpoint | None,
    ) -> None:
        self.sink = sink
        self.schema = schema
        self.stamp = stamp
        self.staging = sink.links.run_folder(stamp.run_id)
        self.parts = resume.parts if resume is not None else 0
        self._layout = _Layout.of(schema)
        self._part: _OpenPart | None = None
        earlier = sink.folder / f".staging-{stamp.run_id}"  # where modelrail 0.1 staged
        if resume is not None and earlier.is_dir() and not self.staging.exists():
            earlier.rename(self.staging)
        if resume is None and self.staging.exists():
            shutil.rmtree(self.staging)
        (self.staging / "_rejects").mkdir(parents=True, exist_ok=True)
        # Parts after the checkpoint were written by the killed process after its last
        # checkpoint reached the store: they are redone.
        for part in [*self.staging.glob("*.parquet"), *self.staging.glob("_rejects/*.parquet")]:
            if int(part.stem.split("-")[1]) >= self.parts:
                part.unlink()
        for partial in self.staging.rglob("*.tmp"):
            partial.unlink()
        lost = [n for n in range(self.parts) if not (self.staging / _PART.format(n)).is_file()]
        if lost:
            raise BatchOutputError(
                f"{self.staging / _PART.format(lost[0])} is missing ({len(lost)} of the "
                f"{self.parts} part files the checkpoint of batch run {stamp.run_id[:12]} "
                "counts): resuming would publish the partition without their rows; run the "
                "job again"
            )

    def write(self, scored: ScoredBatch, scored_at: float) -> None:
        if not scored.output.num_rows and scored.rejects is None:
            return  # nothing here (on Spark, an executor wrote this batch's rows)
        stamped = self._layout.stamped(self.stamp, scored.output, scored_at)
        if self._part is None:
            self._part = _OpenPart(self.staging, self.parts, self._layout)
        self._part.write(stamped, scored.rejects)
        if self._part.rows >= self.sink.part_rows:
            self._close_part()

    def _close_part(self) -> None:
        assert self._part is not None
        self._part.close()
        self._part = None
        self.parts += 1

    def parts_done(self) -> int | None:
        return self.parts

    def staged_parts(self) -> StagedParts:
        return StagedParts(str(self.staging), self._layout, self.stamp)

    def adopt(self, names: list[str]) -> None:
        """Count the part files that Spark executors wrote into the staging folder."""
        missing = [name for name in names if not (self.staging / name).is_file()]
        if missing:
            raise BatchOutputError(
                f"{len(missing)} part file(s) that Spark executors wrote are not in "
                f"{self.staging} (first: {missing[0]}): the {{output}} folder must be one that "
                "the driver and every executor share",
                params=("output",),
            )
        self.parts += len(names)

    def commit(self, input_key: str) -> None:
        if self._part is not None:
            self._close_part()
        for partial in self.staging.rglob("*.tmp"):  # of failed Spark task attempts
            partial.unlink(missing_ok=True)
        partition = self.sink.folder / f"input={input_key[:16]}"
        if self.parts == 0:
            empty = _OpenPart(self.staging, 0, self._layout)
            empty.write(_empty(self._layout.schema), None)
            empty.close()
        self.sink.links.publish(self.stamp.run_id, partition)

    def abort(self) -> None:
        if self._part is not None:
            self._part.discard()
            self._part = None
        self.sink.discard(self.stamp.run_id)


@dataclass(frozen=True)
class StagedParts:
    """What a Spark executor needs to write its partition into a run's staging folder,
    which must be a folder the driver and every executor share."""

    staging: str
    layout: _Layout
    stamp: RunStamp

    def write(
        self, numbered: Iterable[tuple[int, ScoredBatch]], attempt: int
    ) -> tuple[str | None, int, int, int]:
        """One part file (and its rejects) named after its first row's number, from
        ``(first row, batch)`` pairs; returns the part's name (None: no batch) and the rows
        read, written and rejected. An attempt writes under names of its own and renames at
        the end, so a retried task replaces its part whole."""
        part: _OpenPart | None = None
        read = rejected = 0
        try:
            for first_row, scored in numbered:
                if part is None:
                    part = _OpenPart(Path(self.staging), first_row, self.layout, attempt)
                part.write(
                    self.layout.stamped(self.stamp, scored.output, time.time()), scored.rejects
                )
                read += scored.rows_read
                rejected += 0 if scored.rejects is None else scored.rejects.num_rows
            if part is None:
                return None, 0, 0, 0
            part.close()
        except BaseException:
            if part is not None:
                part.discard()
            raise
        return part.path.name, read, part.rows, rejected


class _OpenPart:
    """One part file being written (and its rejects beside it), a row group per batch."""

    def __init__(
        self, staging: Path, number: int, layout: _Layout, attempt: int | None = None
    ) -> None:
        self.path = staging / _PART.format(number)
        self.rejects_path = staging / "_rejects" / _PART.format(number)
        self._attempt = attempt
        self.rows = 0
        # Dictionary pages only where values repeat (texts: model, run id, labels); trying
        # them on float columns first costs more than the whole rest of the write.
        repeating = [
            f.name
            for f in layout.schema
            if pa.types.is_string(f.type) or pa.types.is_dictionary(f.type)
        ]
        self._writer = self._open(
            _partial(self.path, attempt), layout.schema, repeating, layout.store_schema
        )
        self._rejects: pq.ParquetWriter | None = None

    def write(self, table: pa.Table, rejects: pa.RecordBatch | None) -> None:
        try:
            self._writer.write_table(table, row_group_size=max(table.num_rows, 1))
            if rejects is not None and rejects.num_rows:
                if self._rejects is None:
                    partial = _partial(self.rejects_path, self._attempt)
                    self._rejects = self._open(partial, rejects.schema, True, True)
                self._rejects.write_batch(rejects)
        except (OSError, pa.ArrowException) as exc:
            raise BatchOutputError(f"writing {self.path} failed: {exc}") from exc
        self.rows += table.num_rows

    def close(self) -> None:
        try:
            for writer, path in ((self._writer, self.path), (self._rejects, self.rejects_path)):
                if writer is not None:
                    writer.close()
                    os.replace(_partial(path, self._attempt), path)
        except (OSError, pa.ArrowException) as exc:
            raise BatchOutputError(f"writing {self.path} failed: {exc}") from exc

    def discard(self) -> None:
        for writer in (self._writer, self._rejects):
            if writer is not None:
                with contextlib.suppress(OSError, pa.ArrowException):
                    writer.close()

    @staticmethod
    def _open(
        partial: Path, schema: pa.Schema, dictionary: bool | list[str], store_schema: bool
    ) -> pq.ParquetWriter:
        try:
            return pq.ParquetWriter(
                partial,
                schema,
                compression="snappy",
                use_dictionary=dictionary,
                store_schema=store_schema,
            )
        except (OSError, pa.ArrowException) as exc:
            raise BatchOutputError(f"writing {partial} failed: {exc}") from exc


@dataclass(frozen=True)
class _Layout:
    """How part files are written: the run's constant columns as dictionaries (a single
    value each, which the writer stores as is, where encoding the plain columns row by row
    took a third of the write) wherever that cannot change what readers get back."""

    schema: pa.Schema
    store_schema: bool

    @classmethod
    def of(cls, schema: pa.Schema) -> _Layout:
        constants = {f.name for f in STAMP_FIELDS}
        encoded = pa.schema(
            [
                f.with_type(pa.dictionary(pa.int32(), f.type)) if f.name in constants else f
                for f in schema
            ]
        )
        # Without Arrow's own schema in the file (it would name the dictionaries), readers
        # take the types from Parquet's: the same for the common ones, not for all (a
        # time zone other than UTC, large strings), so this is checked on an empty file.
        sample = pa.BufferOutputStream()
        pq.write_table(_empty(encoded), sample, store_schema=False)
        back = pq.read_schema(pa.BufferReader(sample.getvalue()))
        if back.remove_metadata().equals(schema.remove_metadata()):
            return cls(encoded, store_schema=False)
        return cls(schema, store_schema=True)

    def stamped(self, stamp: RunStamp, output: pa.RecordBatch, scored_at: float) -> pa.Table:
        rows = output.num_rows
        if self.store_schema:
            constants = stamp.columns(rows, scored_at)
        else:
            constants = stamp.dictionary_columns(rows, scored_at)
        return pa.Table.from_arrays([*output.columns, *constants], schema=self.schema)


def _empty(schema: pa.Schema) -> pa.Table:
    return pa.Table.from_batches([], schema=schema)  # (Schema.empty_table imports pandas)


def _partial(path: Path, attempt: int | None = None) -> Path:
    if attempt is None:
        return path.with_suffix(".tmp")
    # Hidden, so that a task attempt Spark gave up on never shows in the dataset.
    return path.with_name(f".{path.stem}.attempt-{attempt}.tmp")


def _rows_in(folder: Path) -> int:
    try:
        return sum(pq.ParquetFile(part).metadata.num_rows for part in folder.glob("*.parquet"))
    except (OSError, pa.ArrowException) as exc:
        raise BatchOutputError(f"cannot read {folder}: {exc}") from exc


def _describe(schema: pa.Schema) -> str:
    return ", ".join(f"{f.name} {f.type}" for f in schema)
