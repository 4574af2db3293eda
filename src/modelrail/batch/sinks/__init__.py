"""Batch outputs, chosen by the form of ``output``: ``sqlite:///file.db``,
``postgresql://...``, ``redis://...``, or a folder for a Parquet dataset."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from modelrail.batch.sinks.base import Checkpoint, Committed, Sink, Writer
from modelrail.batch.spec import JobSpec
from modelrail.errors import BatchOutputError

__all__ = ["Checkpoint", "Committed", "Sink", "Writer", "open_sink"]


def open_sink(spec: JobSpec, base: Path) -> Sink:
    """The sink ``spec.output`` names; relative folders and SQLite files are under ``base``."""
    output = spec.output.strip()
    if not output:
        raise BatchOutputError(
            "no {output} given (and the environment has no batch_output setting)",
            params=("output",),
        )
    scheme = output.split("://", 1)[0].lower() if "://" in output else ""
    if scheme in ("redis", "rediss", "unix"):
        from modelrail.batch.sinks.redis import RedisSink

        return RedisSink(output, spec.table, spec.ttl_seconds)
    if scheme.startswith(("postgres", "sqlite")):
        try:
            url = make_url(output)
        except ArgumentError as exc:
            raise BatchOutputError(
                f"malformed database URL for {{output}}: {exc}", params=("output",)
            ) from exc
        if url.get_backend_name() == "sqlite":
            from modelrail.batch.sinks.sqlite import SQLiteSink

            if not url.database or url.database == ":memory:":
                raise BatchOutputError(
                    "a SQLite {output} must name a database file", params=("output",)
                )
            return SQLiteSink(base / url.database, spec.table)
        from modelrail.batch.sinks.postgres import PostgresSink

        return PostgresSink(url, spec.table)
    if scheme not in ("", "file"):
        raise BatchOutputError(
            f"{{output}} {output!r}: unsupported kind {scheme!r}; use sqlite:///FILE, "
            "postgresql://..., redis://... or a folder for Parquet",
            params=("output",),
        )
    from modelrail.batch.sinks.parquet import ParquetSink

    return ParquetSink(base / output.removeprefix("file://"), part_rows=spec.part_rows)
