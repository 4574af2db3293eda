"""What a batch job is: the model, where its rows come from and where predictions go.

A ``JobSpec`` is stored as JSON with every run (so ``batch resume`` can redo it) and with
every schedule (so the scheduler can start it), which is why it holds only plain values.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

import orjson

from modelrail.errors import BatchInputError

OnBadRows = Literal["fail", "skip"]
Engine = Literal["local", "spark"]
# 32,768 rows of 30 float64 features is 8 MB a batch: with Arrow's reader that keeps a run
# of any size under 300 MB; larger batches bought no speed in the benchmark.
DEFAULT_BATCH_ROWS = 32_768
# Parquet output: about a million rows a file (in row groups of one batch each).
DEFAULT_PART_ROWS = 1_048_576


@dataclass(frozen=True)
class JobSpec:
    """One batch job. ``reference`` is resolved to a version once, when a run starts."""

    reference: str
    output: str
    id_columns: tuple[str, ...]
    inputs: tuple[str, ...] = ()
    query: str | None = None
    query_url: str | None = None
    table: str | None = None
    ttl_seconds: int | None = None
    on_bad_rows: OnBadRows = "fail"
    batch_rows: int = DEFAULT_BATCH_ROWS
    engine: Engine = "local"
    # Parquet output: a part file closes at the first whole batch that brings it here; a
    # killed run resumes after its last closed part.
    part_rows: int = DEFAULT_PART_ROWS
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.inputs and self.query is None:
            raise BatchInputError(
                "a batch job needs {inputs} (files) or a {query} (SQL)", params=("inputs", "query")
            )
        if self.inputs and self.query is not None:
            raise BatchInputError(
                "give either {inputs} (files) or a {query} (SQL), not both",
                params=("inputs", "query"),
            )
        if self.query is not None and not self.query_url:
            raise BatchInputError(
                "{query} needs {query_url} (a database URL) to run against",
                params=("query_url", "query"),
            )
        if not self.id_columns:
            raise BatchInputError(
                "a batch job needs {id_columns} (one or more)", params=("id_columns",)
            )
        if len(set(self.id_columns)) != len(self.id_columns):
            raise BatchInputError(
                f"{{id_columns}} repeats a column: {', '.join(self.id_columns)}",
                params=("id_columns",),
            )
        if self.batch_rows < 1:
            raise BatchInputError(
                f"{{batch_rows}} must be at least 1, got {self.batch_rows}",
                params=("batch_rows",),
            )
        if self.part_rows < 1:
            raise BatchInputError(
                f"{{part_rows}} must be at least 1, got {self.part_rows}", params=("part_rows",)
            )
        if self.ttl_seconds is not None and self.ttl_seconds < 1:
            raise BatchInputError(
                f"{{ttl_seconds}} must be at least 1 second, got {self.ttl_seconds}",
                params=("ttl_seconds",),
            )
        if self.on_bad_rows not in ("fail", "skip"):
            raise BatchInputError(
                f"{{on_bad_rows}} must be 'fail' or 'skip', not {self.on_bad_rows!r}",
                params=("on_bad_rows",),
            )
        if self.engine not in ("local", "spark"):
            raise BatchInputError(
                f"{{engine}} must be 'local' or 'spark', not {self.engine!r}", params=("engine",)
            )

    def with_reference(self, reference: str) -> JobSpec:
        return replace(self, reference=reference)

    def to_json(self) -> str:
        return orjson.dumps(asdict(self)).decode()

    @classmethod
    def from_json(cls, raw: str) -> JobSpec:
        data = orjson.loads(raw)
        data["inputs"] = tuple(data.get("inputs", ()))
        data["id_columns"] = tuple(data.get("id_columns", ()))
        return cls(**data)
