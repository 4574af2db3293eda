"""Parquet output: a dataset folder with one partition per input, ``input=<fingerprint>``.

A run writes its part files into a hidden staging folder (readers of the dataset skip
names starting with ``.`` or ``_``), each part atomically, so a killed run resumes after
its last whole part. At the end the staging folder replaces the partition of the same
input by renames, so a re-run on the same input replaces its rows instead of adding them.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from modelrail.batch.scorer import STAMP_FIELDS, RunStamp, ScoredBatch
from modelrail.batch.sinks.base import Checkpoint
from modelrail.errors import BatchOutputError

_PART = "part-{:06d}.parquet"


class ParquetSink:
    resumable = True
    atomic = True

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.location = str(folder)
        if folder.suffix == ".parquet":
            raise BatchOutputError(
                f"Parquet output {folder} names a file: give a folder, batch scoring writes "
                "a dataset of part files there"
            )
        self._schema: pa.Schema | None = None

    def prepare(self, schema: pa.Schema, id_columns: tuple[str, ...], with_rejects: bool) -> None:
        full = pa.schema([*schema, *STAMP_FIELDS])
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise BatchOutputError(f"cannot create output folder {self.folder}: {exc}") from exc
        self._recover()
        existing = next(iter(sorted(self.folder.glob("input=*/*.parquet"))), None)
        if existing is not None:
            try:
                found = pq.read_schema(existing)
            except (OSError, pa.ArrowException) as exc:
                raise BatchOutputError(f"cannot read {existing}: {exc}") from exc
            if not found.remove_metadata().equals(full, check_metadata=False):
                raise BatchOutputError(
                    f"the dataset in {self.folder} has other columns ({_describe(found)}) than "
                    f"this job writes ({_describe(full)}); choose another --output folder"
                )
        self._schema = full

    def open(self, stamp: RunStamp, resume: Checkpoint | None) -> ParquetWriter:
        assert self._schema is not None, "prepare() first"
        return ParquetWriter(self, self._schema, stamp, resume)

    def discard(self, run_id: str) -> None:
        shutil.rmtree(self.folder / f".staging-{run_id}", ignore_errors=True)

    def close(self) -> None:
        return None

    def _recover(self) -> None:
        """Finish a publish that a kill interrupted between its two renames."""
        for marker in self.folder.glob(".replaced-*-of-*"):
            partition = self.folder / marker.name.split("-of-", 1)[1]
            if partition.exists():
                shutil.rmtree(marker, ignore_errors=True)
            else:
                marker.rename(partition)


class ParquetWriter:
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
        self.staging = sink.folder / f".staging-{stamp.run_id}"
        self.parts = resume.parts if resume is not None else 0
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

    def write(self, scored: ScoredBatch, scored_at: float) -> None:
        output = scored.output
        stamped = pa.Table.from_arrays(
            [*output.columns, *self.stamp.columns(output.num_rows, scored_at)],
            schema=self.schema,
        )
        self._write(stamped, self.staging / _PART.format(self.parts))
        if scored.rejects is not None and scored.rejects.num_rows:
            rejects = pa.Table.from_batches([scored.rejects])
            self._write(rejects, self.staging / "_rejects" / _PART.format(self.parts))
        self.parts += 1

    def _write(self, table: pa.Table, path: Path) -> None:
        partial = path.with_suffix(".tmp")
        try:
            # Dictionary pages only where values repeat (texts: model, run id, labels); trying
            # them on float columns first costs more than the whole rest of the write.
            texts = [f.name for f in table.schema if pa.types.is_string(f.type)]
            pq.write_table(table, partial, compression="snappy", use_dictionary=texts)
            os.replace(partial, path)
        except OSError as exc:
            raise BatchOutputError(f"writing {path} failed: {exc}") from exc

    def parts_done(self) -> int | None:
        return self.parts

    def commit(self, input_key: str) -> None:
        partition = self.sink.folder / f"input={input_key[:16]}"
        if self.parts == 0:
            self._write(self.schema.empty_table(), self.staging / _PART.format(0))
        rejects = self.staging / "_rejects"
        if any(rejects.iterdir()):
            target = self.sink.folder / "_rejects" / f"run={self.stamp.run_id}"
            target.parent.mkdir(exist_ok=True)
            shutil.rmtree(target, ignore_errors=True)
            rejects.rename(target)
        else:
            rejects.rmdir()
        try:
            old = self.sink.folder / f".replaced-{self.stamp.run_id}-of-{partition.name}"
            if partition.exists():
                partition.rename(old)
            self.staging.rename(partition)
            shutil.rmtree(old, ignore_errors=True)
        except OSError as exc:
            raise BatchOutputError(f"publishing {partition} failed: {exc}") from exc

    def abort(self) -> None:
        shutil.rmtree(self.staging, ignore_errors=True)


def _describe(schema: pa.Schema) -> str:
    return ", ".join(f"{f.name} {f.type}" for f in schema)
