"""Redis output: one key per id (``PREFIX:ID``) holding the prediction as JSON, with an
optional time to live, for low-latency lookup of precomputed predictions.

Each batch is written in one MULTI/EXEC transaction, so a batch is all there or not at
all, and a checkpoint after each batch lets a killed run resume after its last batch.
Setting a key replaces it, so a re-run never duplicates anything.
"""

from __future__ import annotations

import orjson
import pyarrow as pa

from modelrail.batch import arrays
from modelrail.batch.scorer import RunStamp, ScoredBatch
from modelrail.batch.sinks.base import Checkpoint, Committed
from modelrail.errors import BatchOutputError

_CHUNK = 10_000


class RedisSink:
    resumable = True
    atomic = False
    outpaces_decoding = False

    def __init__(self, url: str, prefix: str | None, ttl_seconds: int | None) -> None:
        try:
            import redis
        except ModuleNotFoundError as exc:
            raise BatchOutputError(
                "a Redis output needs the Redis client: pip install 'modelrail[redis]'"
            ) from exc
        self._redis = redis
        if not prefix:
            raise BatchOutputError(
                "a Redis output needs a {table} to prefix its keys: keys are PREFIX:ID",
                params=("table",),
            )
        self.prefix = prefix
        self.ttl = ttl_seconds
        try:
            self.client = redis.Redis.from_url(url, socket_connect_timeout=10)
        except ValueError as exc:
            raise BatchOutputError(f"malformed Redis URL {url!r}: {exc}") from exc
        kwargs = self.client.connection_pool.connection_kwargs
        where = f"redis://{kwargs.get('host', '?')}:{kwargs.get('port', '?')}/{kwargs.get('db', 0)}"
        self.location = f"{where} keys {prefix}:*"
        self._id_columns: tuple[str, ...] = ()

    def prepare(self, schema: pa.Schema, id_columns: tuple[str, ...], with_rejects: bool) -> None:
        try:
            self.client.ping()
        except self._redis.RedisError as exc:
            raise BatchOutputError(f"cannot reach {self.location}: {exc}") from exc
        self._id_columns = id_columns

    def open(self, stamp: RunStamp, resume: Checkpoint | None) -> RedisWriter:
        return RedisWriter(self, stamp, resume.parts if resume else 0)

    def committed(self, run_id: str) -> Committed | None:
        return None  # no commit: a resume writes the batches after its checkpoint again

    def staged_runs(self) -> list[str]:
        return []

    def discard(self, run_id: str) -> None:
        return None

    def close(self) -> None:
        self.client.close()


class RedisWriter:
    def __init__(self, sink: RedisSink, stamp: RunStamp, parts: int) -> None:
        self.sink = sink
        self.stamp = stamp
        self.parts = parts

    def write(self, scored: ScoredBatch, scored_at: float) -> None:
        output = scored.output
        keys = _keys(self.sink.prefix, [output.column(c) for c in self.sink._id_columns])
        values = self._values(output, scored_at)
        try:
            with self.sink.client.pipeline(transaction=True) as pipe:
                if self.sink.ttl is None:
                    for start in range(0, len(keys), _CHUNK):
                        chunk = zip(
                            keys[start : start + _CHUNK],
                            values[start : start + _CHUNK],
                            strict=True,
                        )
                        pipe.mset(dict(chunk))
                else:
                    for key, value in zip(keys, values, strict=True):
                        pipe.set(key, value, ex=self.sink.ttl)
                if scored.rejects is not None and scored.rejects.num_rows:
                    rows = scored.rejects.to_pylist()
                    pipe.hset(
                        f"{self.sink.prefix}:rejects:{self.stamp.run_id}",
                        mapping={
                            str(r["row_number"]): orjson.dumps(
                                {"row_id": r["row_id"], "reason": r["reason"]}
                            )
                            for r in rows
                        },
                    )
                pipe.execute()
        except self.sink._redis.RedisError as exc:
            raise BatchOutputError(f"writing {self.sink.location} failed: {exc}") from exc
        self.parts += 1

    def _values(self, output: pa.RecordBatch, scored_at: float) -> list[bytes]:
        stamp = orjson.dumps(
            {
                "model": self.stamp.model,
                "model_version": self.stamp.version,
                "batch_run_id": self.stamp.run_id,
                "scored_at": scored_at,
            }
        )[1:]
        names = [n for n in output.schema.names if n not in self.sink._id_columns]
        columns = [arrays.python_values(output.column(n)) for n in names]
        # One JSON object per row: the row's own values, then the run's constants.
        return [
            orjson.dumps(dict(zip(names, row, strict=True)))[:-1] + b"," + stamp
            for row in zip(*columns, strict=True)
        ]

    def parts_done(self) -> int | None:
        return self.parts

    def commit(self, input_key: str) -> None:
        return None

    def abort(self) -> None:
        return None


def _keys(prefix: str, columns: list[pa.Array]) -> list[str]:
    values = [arrays.python_values(c) for c in columns]
    if len(values) == 1:
        return [f"{prefix}:{v}" for v in values[0]]
    return [f"{prefix}:" + ":".join(map(str, parts)) for parts in zip(*values, strict=True)]
