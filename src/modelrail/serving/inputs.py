"""Prediction request bodies -> the model's input, in its column order: a float64 matrix for
all-numeric models, ``Columns`` of the signature's types otherwise (see ``input_spec``).

Accepted: modelrail's own ``{"inputs": [{...}]}`` (records) and
``{"columns": [...], "data": [[...]]}``, and MLflow's scoring protocol:
``dataframe_split``, ``dataframe_records``, ``instances``, ``inputs`` and CSV.
Column-shaped bodies become a matrix in one numpy call; records need one pass
over the rows to pick values by name, done with C-level list and dict operations.
Every problem is an ``InvalidRequestError`` naming the field at fault.

JSON ``true`` / ``false`` (and CSV's) are numbers to numpy; they are refused unless the
column is boolean in the model's signature, found by one C-level pass over the values'
types.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import chain
from typing import Any

import numpy as np
import orjson

from modelrail.errors import InvalidRequestError
from modelrail.serving.input_spec import InputSpec, check_finite, numeric_matrix, typed_columns

# A float64 matrix (all-numeric models) or Columns (text or date columns).
ModelInput = Any


@dataclass(frozen=True)
class Limits:
    max_rows: int = 10_000
    max_body_bytes: int = 16 * 1024 * 1024


def parse_json(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequestError(f"malformed JSON: {exc}", field="body", status=400) from exc


def matrix_from_json(
    body: bytes,
    spec: InputSpec,
    limits: Limits,
    *,
    mlflow: bool,
) -> ModelInput:
    """A JSON body in modelrail's protocol or (``mlflow``) MLflow's, as the model's input."""
    payload = parse_json(body)
    parse = matrix_from_mlflow if mlflow else matrix_from_native
    return parse(payload, spec, limits)


def matrix_from_native(payload: Any, spec: InputSpec, limits: Limits) -> ModelInput:
    """modelrail's protocol: records under "inputs" or "columns" + "data"."""
    if not isinstance(payload, dict):
        raise InvalidRequestError(
            'the body must be a JSON object with "inputs" (records) or "columns" and "data"',
            field="body",
        )
    if "inputs" in payload:
        if len(payload) != 1:
            _only(payload, {"inputs"})
        return _from_records(payload["inputs"], spec, limits, "inputs")
    if "data" in payload or "columns" in payload:
        _only(payload, {"columns", "data"})
        return _from_split(payload, spec, limits, "")
    raise InvalidRequestError(
        'the body needs "inputs" (a list of records) or "columns" and "data"', field="body"
    )


def matrix_from_mlflow(payload: Any, spec: InputSpec, limits: Limits) -> ModelInput:
    """MLflow's scoring protocol, so existing clients work unchanged."""
    if not isinstance(payload, dict) or len(payload.keys() & _MLFLOW_KEYS) != 1:
        raise InvalidRequestError(
            "the body must be a JSON object with exactly one of " + ", ".join(sorted(_MLFLOW_KEYS)),
            field="body",
        )
    (key,) = payload.keys() & _MLFLOW_KEYS
    extra = set(payload) - _MLFLOW_KEYS - {"params"}
    if extra:
        raise InvalidRequestError(f"unknown field {sorted(extra)[0]!r}", field=sorted(extra)[0])
    value = payload[key]
    if key == "dataframe_split":
        if not isinstance(value, dict):
            raise InvalidRequestError('"dataframe_split" must be an object', field=key)
        return _from_split(value, spec, limits, f"{key}.")
    if key == "dataframe_records":
        return _from_records(value, spec, limits, key)
    # "instances" and "inputs": a list of records, a list of rows, or an object of columns.
    if isinstance(value, dict):
        return _from_column_lists(value, spec, limits, key)
    if isinstance(value, list) and value and isinstance(value[0], dict):
        return _from_records(value, spec, limits, key)
    return _from_rows(value, spec, limits, key)


def matrix_from_csv(body: bytes, spec: InputSpec, limits: Limits) -> ModelInput:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    text_columns = {
        name: pa.string()
        for name, dtype in zip(spec.columns, spec.dtypes, strict=True)
        if dtype in ("string", "datetime")
    }
    options = pacsv.ConvertOptions(column_types=text_columns, strings_can_be_null=True)
    # Read on this thread from Arrow's own buffer: a threaded reader over a Python file
    # object leaves a pool thread holding that object, which aborts the process when the
    # thread releases it during interpreter shutdown ("terminate called without an active
    # exception", SIGABRT), and a request body is too small to gain from threads anyway.
    reading = pacsv.ReadOptions(use_threads=False)
    try:
        table = pacsv.read_csv(pa.BufferReader(body), read_options=reading, convert_options=options)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise InvalidRequestError(f"unreadable CSV: {exc}", field="body", status=400) from exc
    _check_names(list(table.column_names), spec.columns, "CSV header")
    _check_rows(table.num_rows, limits, "CSV")
    columns = {}
    for name, dtype in zip(spec.columns, spec.dtypes, strict=True):
        column = table.column(name)
        if column.null_count and name not in spec.nullable:
            raise InvalidRequestError(f"column {name!r} has empty values", field=name)
        columns[name] = _csv_column(name, dtype, column)
    if not spec.numeric:
        rows = [list(values) for values in zip(*columns.values(), strict=True)]
        return typed_columns(rows, spec, "CSV")
    matrix = np.empty((table.num_rows, len(spec.columns)))
    for index, values in enumerate(columns.values()):
        matrix[:, index] = values
    return check_finite(matrix, spec)


def _csv_column(name: str, dtype: str, column: Any) -> Any:
    """A CSV column's values, refused by name when its type does not fit the signature."""
    import pyarrow as pa
    import pyarrow.compute as pc

    kind = column.type
    if dtype in ("string", "datetime"):
        return column.to_pylist()
    if pa.types.is_boolean(kind) and dtype != "bool":
        raise InvalidRequestError(
            f"column {name!r} must be a number, CSV has true/false values", field=name
        )
    numeric = pa.types.is_integer(kind) or pa.types.is_floating(kind)
    if not (numeric or pa.types.is_boolean(kind) or pa.types.is_null(kind)):
        raise InvalidRequestError(f"column {name!r} must be numeric, CSV has {kind}", field=name)
    # Empty cells (allowed where the model scores them missing) become NaN.
    return pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False)


_MLFLOW_KEYS = frozenset({"dataframe_split", "dataframe_records", "instances", "inputs"})


def _only(payload: dict[str, Any], allowed: set[str]) -> None:
    extra = set(payload) - allowed
    if extra:
        name = sorted(extra)[0]
        raise InvalidRequestError(f"unknown field {name!r}", field=name)


def _check_rows(count: int, limits: Limits, where: str) -> None:
    if count == 0:
        raise InvalidRequestError(f"{where} has no rows", field=where)
    if count > limits.max_rows:
        raise InvalidRequestError(
            f"{where} has {count} rows; at most {limits.max_rows} per request",
            field=where,
            status=413,
        )


def _check_names(names: list[Any], columns: tuple[str, ...], where: str) -> None:
    if names == list(columns):
        return
    missing = [c for c in columns if c not in names]
    if missing:
        raise InvalidRequestError(f"missing column {missing[0]!r} in {where}", field=missing[0])
    extra = [n for n in names if n not in columns]
    if extra:
        raise InvalidRequestError(f"unknown column {extra[0]!r} in {where}", field=str(extra[0]))
    duplicated = next((n for n in names if names.count(n) > 1), None)
    if duplicated is not None:
        raise InvalidRequestError(
            f"column {duplicated!r} appears twice in {where}", field=str(duplicated)
        )
    # Otherwise the same columns in another order: the caller reorders them.


def _from_split(
    value: dict[str, Any],
    spec: InputSpec,
    limits: Limits,
    prefix: str,
) -> ModelInput:
    names = value.get("columns", list(spec.columns))
    data = value.get("data")
    if not isinstance(names, list):
        raise InvalidRequestError(
            f'"{prefix}columns" must be a list of names', field=f"{prefix}columns"
        )
    if not isinstance(data, list):
        raise InvalidRequestError(f'"{prefix}data" must be a list of rows', field=f"{prefix}data")
    _check_names(names, spec.columns, f"{prefix}columns")
    given = tuple(names)
    if given == spec.columns:
        return _from_rows(data, spec, limits, f"{prefix}data")
    converted = _from_rows(data, spec.reordered(given), limits, f"{prefix}data")
    if isinstance(converted, np.ndarray):
        return converted[:, [names.index(c) for c in spec.columns]]
    return converted.select(spec.columns)


def _from_rows(rows: Any, spec: InputSpec, limits: Limits, where: str) -> ModelInput:
    if not isinstance(rows, list):
        raise InvalidRequestError(f'"{where}" must be a list of rows', field=where)
    _check_rows(len(rows), limits, where)
    return _converted(rows, spec, where)


def _converted(rows: list[Any], spec: InputSpec, where: str) -> ModelInput:
    """Rows (lists, or tuples picked from records) of values in column order, as the model's
    input; every value is checked against its column's type."""
    if not spec.numeric:
        return typed_columns(rows, spec, where)
    columns = spec.columns
    try:
        # Without a dtype numpy keeps strings as strings ("12.5" must not pass as 12.5)
        # and None as objects; numbers and booleans come out numeric.
        parsed = np.array(rows)
    except (TypeError, ValueError) as exc:
        raise _locate(rows, spec, where) from exc
    matrix = numeric_matrix(rows, parsed, spec, where)
    if matrix is None:
        raise _locate(rows, spec, where)
    if matrix.ndim != 2 or matrix.shape[1] != len(columns):
        width = len(rows[0]) if isinstance(rows[0], list | tuple) else 1
        raise InvalidRequestError(
            f'rows in "{where}" must have {len(columns)} values ({", ".join(columns)}); '
            f"got {width}",
            field=where,
        )
    if len(spec.booleans) < len(columns) and _holds_booleans(rows):
        _refuse_booleans(rows, columns, spec.booleans)
    # JSON has no NaN or infinity and orjson refuses numbers beyond float64's range, so
    # values numpy parsed as numbers are finite: only nulls (NaN) need a look.
    return matrix if parsed.dtype.kind in "biuf" else check_finite(matrix, spec)


def _holds_booleans(rows: list[Any]) -> bool:
    """Whether any value is a JSON true / false, which numpy took as 1 / 0 (one C-level pass
    over the values' types)."""
    if len(rows) == 1:
        return bool in set(map(type, rows[0]))
    return bool in set(map(type, chain.from_iterable(rows)))


def _refuse_booleans(rows: list[Any], columns: tuple[str, ...], allowed: frozenset[str]) -> None:
    for r, row in enumerate(rows):
        for c, value in enumerate(row):
            if value.__class__ is bool and columns[c] not in allowed:
                raise InvalidRequestError(
                    f"row {r}, column {columns[c]!r}: expected a number, got "
                    f"{str(value).lower()} (only boolean columns take true / false)",
                    field=columns[c],
                )


def _from_records(records: Any, spec: InputSpec, limits: Limits, where: str) -> ModelInput:
    if not isinstance(records, list):
        raise InvalidRequestError(f'"{where}" must be a list of records', field=where)
    _check_rows(len(records), limits, where)
    # A record with as many keys as there are columns, each column among them, has exactly
    # the signature's columns: one C-level pick per record, no key set built or compared.
    width = len(spec.columns)
    pick = spec.pick
    try:
        rows: list[Any] = [pick(record) for record in records if len(record) == width]
    except (KeyError, TypeError):  # a missing column, or a record that is not an object
        rows = []
    if len(rows) != len(records):
        _refuse_records(records, spec.columns, where)
        rows = [[record[c] for c in spec.columns] for record in records]
    return _converted(rows, spec, where)


def _refuse_records(records: list[Any], columns: tuple[str, ...], where: str) -> None:
    """Name the first record that is not an object of the signature's columns."""
    expected = set(columns)
    for index, record in enumerate(records):
        if not isinstance(record, dict):
            raise InvalidRequestError(
                f'"{where}[{index}]" must be an object', field=f"{where}[{index}]"
            )
        if record.keys() != expected:
            _check_names(list(record), columns, f"{where}[{index}]")


def _from_column_lists(
    value: dict[str, Any],
    spec: InputSpec,
    limits: Limits,
    where: str,
) -> ModelInput:
    _check_names(list(value), spec.columns, where)
    lengths = {len(v) if isinstance(v, list) else -1 for v in value.values()}
    if len(lengths) != 1 or -1 in lengths:
        raise InvalidRequestError(
            f'every column in "{where}" must be a list of the same length', field=where
        )
    return _from_rows(
        [list(r) for r in zip(*(value[c] for c in spec.columns), strict=True)],
        spec,
        limits,
        where,
    )


def _locate(rows: list[Any], spec: InputSpec, where: str) -> InvalidRequestError:
    """Find the first value that is not a number (only on the error path)."""
    columns = spec.columns
    for r, row in enumerate(rows):
        if not isinstance(row, list | tuple):
            return InvalidRequestError(
                f'"{where}[{r}]" must be a list of values', field=f"{where}[{r}]"
            )
        if len(row) != len(columns):
            return InvalidRequestError(
                f'"{where}[{r}]" has {len(row)} values; expected {len(columns)}',
                field=f"{where}[{r}]",
            )
        for c, value in enumerate(row):
            if value is None:
                if columns[c] in spec.nullable:
                    continue
                return InvalidRequestError(
                    f"row {r}, column {columns[c]!r}: missing value (null)", field=columns[c]
                )
            if isinstance(value, str) or not isinstance(value, int | float):
                kind = type(value).__name__
                return InvalidRequestError(
                    f"row {r}, column {columns[c]!r}: expected a number, got {kind}",
                    field=columns[c],
                )
    return InvalidRequestError(f'"{where}" holds values that are not numbers', field=where)
