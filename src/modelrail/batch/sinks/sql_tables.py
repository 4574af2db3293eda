"""Output and rejects tables in a relational database: created with proper column types when
missing, checked when present, so a mismatch is an error before any row is written."""

from __future__ import annotations

import datetime
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pyarrow as pa
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Engine,
    Float,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    func,
    inspect,
    select,
)
from sqlalchemy import column as column_clause
from sqlalchemy import table as table_clause
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.types import TypeEngine

from modelrail.batch.scorer import REJECT_SCHEMA, STAMP_FIELDS
from modelrail.batch.sinks.base import Committed
from modelrail.errors import BatchOutputError

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


@dataclass(frozen=True)
class TableName:
    schema: str | None
    name: str

    @classmethod
    def parse(cls, raw: str | None) -> TableName:
        if not raw:
            raise BatchOutputError(
                "a database output needs a {table} name (or a batch_table setting)",
                params=("table",),
            )
        parts = raw.split(".")
        if len(parts) > 2 or not all(_IDENTIFIER.match(p) for p in parts):
            raise BatchOutputError(
                f"table name {raw!r} is not a plain SQL name: use letters, digits and _ "
                "(optionally schema.table)"
            )
        return cls(parts[0], parts[1]) if len(parts) == 2 else cls(None, parts[0])

    def __str__(self) -> str:
        return f"{self.schema}.{self.name}" if self.schema else self.name

    @property
    def rejects(self) -> TableName:
        return TableName(self.schema, f"{self.name}_rejects"[:63])


def sql_type(arrow_type: pa.DataType, column: str) -> TypeEngine[Any]:
    kind = _kind_of_arrow(arrow_type)
    if kind is None:
        raise BatchOutputError(
            f"column {column!r} has type {arrow_type}, which batch outputs do not store; "
            "use integers, floats, text, booleans, dates or timestamps"
        )
    if kind == "integer" and arrow_type == pa.int32():
        return Integer()
    return _new_sql_type(kind)


def output_table(
    name: TableName,
    schema: pa.Schema,
    id_columns: tuple[str, ...],
    metadata: MetaData,
    *,
    keyed: bool = True,
) -> Table:
    fields = [*schema, *STAMP_FIELDS]
    columns = [
        Column(f.name, sql_type(f.type, f.name), nullable=f.name not in id_columns and f.nullable)
        for f in fields
    ]
    if len(id_columns) == 1 and pa.types.is_integer(schema.field(id_columns[0]).type):
        # SQLite makes a lone INTEGER primary key the rowid itself: no second index to fill.
        key_column = next(c for c in columns if c.name == id_columns[0])
        key_column.type = BigInteger().with_variant(Integer(), "sqlite")
    if not keyed:
        return Table(name.name, metadata, *columns, schema=name.schema)
    key = PrimaryKeyConstraint(*id_columns, name=key_name(name))
    return Table(name.name, metadata, *columns, key, schema=name.schema)


def key_name(name: TableName) -> str:
    return f"pk_{name.name}"[:63]


def rejects_table(name: TableName, metadata: MetaData) -> Table:
    columns = [Column(f.name, sql_type(f.type, f.name), nullable=False) for f in REJECT_SCHEMA]
    columns.append(Column("rejected_at", DateTime(timezone=True), nullable=False))
    key = PrimaryKeyConstraint("batch_run_id", "row_number", name=f"pk_{name.name}"[:63])
    return Table(name.name, metadata, *columns, key, schema=name.schema)


def create_or_check(
    engine: Engine, table: Table, id_columns: tuple[str, ...], where: str, *, create: bool = True
) -> bool:
    """Create ``table`` if missing (unless ``create`` is False); otherwise check its columns and
    key fit what we write. Whether the table was there."""
    try:
        inspector = inspect(engine)
        if not inspector.has_table(table.name, schema=table.schema):
            if create:
                table.create(engine, checkfirst=True)
            return False
        present = {c["name"]: c for c in inspector.get_columns(table.name, schema=table.schema)}
        key = inspector.get_pk_constraint(table.name, schema=table.schema)
        uniques = [
            tuple(u["column_names"])
            for u in inspector.get_unique_constraints(table.name, schema=table.schema)
        ]
        indexes = [
            tuple(str(c) for c in i["column_names"])
            for i in inspector.get_indexes(table.name, schema=table.schema)
            if i.get("unique")
        ]
    except SQLAlchemyError as exc:
        raise BatchOutputError(
            f"cannot read table {table.fullname} in {where}: {one_line(exc)}"
        ) from exc
    _check_columns(table, present, where)
    keys = {tuple(key.get("constrained_columns") or ()), *uniques, *indexes}
    if not any(set(k) == set(id_columns) for k in keys if k):
        raise BatchOutputError(
            f"table {table.fullname} in {where} has no primary key or unique index on "
            f"({', '.join(id_columns)}): a re-run could not replace its rows; add one or "
            "choose another {table}",
            params=("table",),
        )
    return True


def committed_rows(engine: Engine, name: TableName, run_id: str, where: str) -> Committed | None:
    """The rows of ``run_id`` in the output table and its rejects table. A run commits whole,
    so any row of it there means that its commit went through."""
    counts = []
    try:
        inspector = inspect(engine)
        with engine.connect() as conn:
            for each in (name, name.rejects):
                if not inspector.has_table(each.name, schema=each.schema):
                    counts.append(0)
                    continue
                rows = table_clause(each.name, column_clause("batch_run_id"), schema=each.schema)
                query = select(func.count()).select_from(rows).where(rows.c.batch_run_id == run_id)
                counts.append(int(conn.execute(query).scalar_one()))
    except SQLAlchemyError as exc:
        raise BatchOutputError(f"cannot read table {name} in {where}: {one_line(exc)}") from exc
    written, rejected = counts
    return Committed(written, rejected) if written or rejected else None


def one_line(exc: BaseException) -> str:
    """The database's own message on one line: without SQLAlchemy's wrapper and its link."""
    text = str(getattr(exc, "orig", None) or exc)
    return "; ".join(line.strip() for line in text.splitlines() if line.strip())


def _check_columns(table: Table, present: Mapping[str, Mapping[str, Any]], where: str) -> None:
    for column in table.columns:
        found = present.get(column.name)
        if found is None:
            raise BatchOutputError(
                f"table {table.fullname} in {where} has no column {column.name!r} "
                f"(it has: {', '.join(present)}); nothing was written"
            )
        want = _kind_of_sql(column.type)
        have = _kind_of_sql(found["type"])
        if want != have and not (want == "integer" and have == "float"):
            raise BatchOutputError(
                f"column {column.name!r} of table {table.fullname} in {where} is "
                f"{found['type']}, but batch scoring writes {want} values there; "
                "nothing was written"
            )
    for name, found in present.items():
        if name not in table.columns and not found.get("nullable") and found.get("default") is None:
            raise BatchOutputError(
                f"table {table.fullname} in {where} has a required column {name!r} that "
                "batch scoring does not fill; make it nullable or choose another {table}",
                params=("table",),
            )


def _new_sql_type(kind: str) -> TypeEngine[Any]:
    types: dict[str, TypeEngine[Any]] = {
        "integer": BigInteger(),
        "float": Float(precision=53),
        "text": Text(),
        "boolean": Boolean(),
        "date": Date(),
        "timestamp": DateTime(timezone=True),
    }
    return types[kind]


def _kind_of_arrow(arrow_type: pa.DataType) -> str | None:
    if pa.types.is_integer(arrow_type):
        return "integer"
    if pa.types.is_floating(arrow_type):
        return "float"
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return "text"
    if pa.types.is_boolean(arrow_type):
        return "boolean"
    if pa.types.is_timestamp(arrow_type):
        return "timestamp"
    if pa.types.is_date(arrow_type):
        return "date"
    return None


def _kind_of_sql(sql: TypeEngine[Any]) -> str:
    python_type: type | None
    try:
        python_type = sql.python_type
    except NotImplementedError:
        python_type = None
    kinds: dict[type, str] = {
        bool: "boolean",
        int: "integer",
        float: "float",
        str: "text",
        datetime.datetime: "timestamp",
        datetime.date: "date",
    }
    if python_type is not None and python_type in kinds:
        return kinds[python_type]
    if python_type is Decimal:
        return "float"
    return str(sql).lower()


def quote_identifier(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'
