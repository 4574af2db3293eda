"""The design matrix of a statsmodels model, saved as data and rebuilt with numpy from the
input columns: a model fitted on arrays or frames takes its exog columns (the constant column
``sm.add_constant`` added is filled in); a formula model takes the raw columns its formula reads.

patsy and formulaic evaluate a formula's terms as Python code, so a formula stored in a model
file and handed back to them at load time would run whatever it says. Instead the design the
engine built is described as data: blocks of columns in the engine's order, each the row-wise
product of its factors, where a factor is either a categorical column (its levels in order and
the coding matrix the engine used, which carries the reference level and the contrast) or a
numeric expression in a small whitelisted language (column names, numbers, ``+ - * / **``,
``I()``, ``Q("name")``, ``np.log``/``exp``/``sqrt``/...). Loading parses that language itself and
never calls ``eval``. Transforms that learn state from the training data (``center()``,
``scale()``, ``bs()``, ``poly()``) are refused: the caller then offers pickle.
"""

from __future__ import annotations

import ast
import itertools
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from modelrail.errors import InvalidRequestError, ModelFlavorError

FloatArray = np.ndarray[Any, np.dtype[np.float64]]
Expression = Callable[[Mapping[str, FloatArray]], Any]

# Stateless elementwise numpy functions a term may apply (``np.log(age)``).
_FUNCTIONS: dict[str, Callable[[Any], Any]] = {
    name: getattr(np, name)
    for name in ("log", "log1p", "log2", "log10", "exp", "expm1", "sqrt", "abs", "absolute")
}
_FUNCTIONS["square"] = np.square
_OPERATORS: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: np.add,
    ast.Sub: np.subtract,
    ast.Mult: np.multiply,
    ast.Div: np.true_divide,
    ast.Pow: np.power,
}


def compile_expression(code: str) -> tuple[tuple[str, ...], Expression]:
    """The input columns a numeric term reads and a function computing it from them.
    Anything outside the whitelisted language raises ``ModelFlavorError``."""
    try:
        tree = ast.parse(code, mode="eval")
    except SyntaxError as exc:
        raise ModelFlavorError(f"the term {code!r} is not an expression modelrail reads") from exc
    columns: list[str] = []
    function = _compile(tree.body, code, columns)
    return tuple(dict.fromkeys(columns)), function


def _compile(node: ast.expr, code: str, columns: list[str]) -> Expression:
    if isinstance(node, ast.Name):
        columns.append(node.id)
        name = node.id
        return lambda values: values[name]
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        # Numbers become float64 at once: ``10 ** 10 ** 10`` must not run as Python ints.
        constant = np.float64(node.value)
        return lambda values: constant
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        operand = _compile(node.operand, code, columns)
        if isinstance(node.op, ast.USub):
            return lambda values: np.negative(operand(values))
        return operand
    if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
        operator = _OPERATORS[type(node.op)]
        left, right = _compile(node.left, code, columns), _compile(node.right, code, columns)
        return lambda values: operator(left(values), right(values))
    if isinstance(node, ast.Call) and len(node.args) == 1 and not node.keywords:
        callee = _callee(node.func)
        argument = node.args[0]
        if callee == "Q" and isinstance(argument, ast.Constant) and isinstance(argument.value, str):
            return _compile(ast.Name(id=argument.value), code, columns)
        if callee == "I":
            return _compile(argument, code, columns)
        if callee in _FUNCTIONS:
            function, inner = _FUNCTIONS[callee], _compile(argument, code, columns)
            return lambda values: function(inner(values))
    raise ModelFlavorError(
        f"the term {code!r} is not one modelrail rebuilds safely (it does column names, "
        "numbers, + - * / **, I(), Q(), C() and np.log/log1p/log2/log10/exp/expm1/sqrt/abs/"
        "square; transforms that learn from the data, such as center() or bs(), are not)"
    )


def _callee(func: ast.expr) -> str | None:
    if isinstance(func, ast.Name) and func.id in ("I", "Q"):
        return func.id
    if (
        isinstance(func, ast.Attribute)
        and isinstance(func.value, ast.Name)
        and func.value.id in ("np", "numpy")
    ):
        return func.attr
    return None


def categorical_column(code: str) -> str:
    """The input column of a categorical term: ``x``, ``Q("x")`` or ``C(x, ...)``. The
    other arguments of ``C()`` (levels, contrast) are already in the recorded coding."""
    try:
        node = ast.parse(code, mode="eval").body
    except SyntaxError as exc:
        raise ModelFlavorError(f"the term {code!r} is not an expression modelrail reads") from exc
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "C":
        node = node.args[0] if node.args else node
    columns, _ = compile_expression(ast.unparse(node))
    if not isinstance(node, ast.Name | ast.Call) or len(columns) != 1:
        raise ModelFlavorError(f"the categorical term {code!r} is not a column modelrail reads")
    if isinstance(node, ast.Call) and _callee(node.func) != "Q":
        raise ModelFlavorError(f"the categorical term {code!r} is not a column modelrail reads")
    return columns[0]


# -- describing the engine's design -------------------------------------------------------------


def describe_design(spec: Any) -> dict[str, Any]:
    """The design of a patsy ``DesignInfo`` or a formulaic ``ModelSpec`` as JSON-able data."""
    module = type(spec).__module__.split(".", 1)[0]
    if module == "patsy":
        blocks = _patsy_blocks(spec)
    elif module == "formulaic":
        if getattr(spec, "transform_state", None):
            raise ModelFlavorError(
                f"the formula uses transforms that learned state from the training data "
                f"({', '.join(sorted(spec.transform_state))})"
            )
        blocks = _formulaic_blocks(spec)
    else:
        raise ModelFlavorError(f"the formula was built by {module}, which modelrail cannot read")
    document = {"engine": module, "blocks": blocks}
    FormulaDesign(document)  # every term must compile: refuse now rather than at load time
    return document


def _patsy_blocks(info: Any) -> list[dict[str, Any]]:
    blocks = []
    for subterms in info.term_codings.values():
        for subterm in subterms:
            factors = []
            for factor in subterm.factors:
                factor_info = info.factor_infos[factor]
                code = str(getattr(factor, "code", ""))
                if factor_info.type == "categorical":
                    matrix = subterm.contrast_matrices[factor].matrix
                    factors.append(_categorical(code, factor_info.categories, matrix))
                elif factor_info.num_columns == 1 and code:
                    factors.append({"kind": "numeric", "code": code})
                else:
                    raise ModelFlavorError(f"the term {factor.name()!r} gives several columns")
            blocks.append({"scale": 1.0, "factors": factors})
    return blocks


def _formulaic_blocks(spec: Any) -> list[dict[str, Any]]:
    blocks = []
    for structure in spec.structure:
        for scoped in structure.scoped_terms:
            factors = []
            for scoped_factor in scoped.factors:
                code = str(scoped_factor.factor.expr)
                kind, state = spec.encoder_state.get(code, (None, {}))
                kind = getattr(kind, "value", kind)
                contrasts = state.get("contrasts") if isinstance(state, dict) else None
                if kind == "categorical" and contrasts is not None:
                    levels = list(contrasts.levels)
                    coding = contrasts.contrasts.get_coding_matrix(
                        levels, reduced_rank=bool(scoped_factor.reduced)
                    )
                    factors.append(_categorical(code, levels, coding.loc[levels].to_numpy()))
                elif kind == "numerical":
                    factors.append({"kind": "numeric", "code": code})
                else:
                    raise ModelFlavorError(f"the term {code!r} is encoded as {kind}")
            scale = 1.0 if scoped.scale is None else float(scoped.scale)
            blocks.append({"scale": scale, "factors": factors})
    return blocks


def _categorical(code: str, levels: Any, matrix: Any) -> dict[str, Any]:
    plain = [level.item() if isinstance(level, np.generic) else level for level in levels]
    if not all(type(level) in (str, int, float, bool) for level in plain):
        raise ModelFlavorError(f"the levels of {code!r} are not text, numbers or booleans")
    coding = np.asarray(matrix, dtype=np.float64)
    return {
        "kind": "categorical",
        "code": code,
        "column": categorical_column(code),
        "levels": plain,
        "coding": coding.tolist(),
    }


# -- rebuilding it -------------------------------------------------------------------------------


class FormulaDesign:
    """Builds the engine's design matrix from a DataFrame of raw columns."""

    def __init__(self, document: Mapping[str, Any]) -> None:
        self.blocks: list[tuple[float, list[str]]] = []
        self.numeric: dict[str, Expression] = {}
        self.categorical: dict[str, tuple[str, list[Any], FloatArray]] = {}
        columns: list[str] = []
        for block in document["blocks"]:
            keys = []
            for factor in block["factors"]:
                key = f"{factor['kind']}:{factor['code']}"
                if factor["kind"] == "categorical":
                    coding = np.asarray(factor["coding"], dtype=np.float64)
                    if coding.ndim != 2 or coding.shape[0] != len(factor["levels"]):
                        raise ModelFlavorError(f"the coding of {factor['code']!r} is malformed")
                    column = categorical_column(factor["code"])
                    self.categorical[key] = (column, list(factor["levels"]), coding)
                    columns.append(column)
                else:
                    names, self.numeric[key] = compile_expression(factor["code"])
                    columns.extend(names)
                keys.append(key)
            self.blocks.append((float(block["scale"]), keys))
        self.inputs: tuple[str, ...] = tuple(dict.fromkeys(columns))
        self.width = sum(int(np.prod([self._width(k) for k in keys])) for _, keys in self.blocks)

    def _width(self, key: str) -> int:
        return self.categorical[key][2].shape[1] if key in self.categorical else 1

    def build(self, frame: Any) -> FloatArray:
        rows = len(frame)
        numbers = _NumericColumns(frame)
        encoded: dict[str, FloatArray] = {}
        for key, function in self.numeric.items():
            value = np.asarray(function(numbers), dtype=np.float64)
            encoded[key] = np.broadcast_to(value.reshape(-1), (rows,)).reshape(rows, 1)
        for key, (column, levels, coding) in self.categorical.items():
            encoded[key] = _encode(frame[column], column, levels, coding)
        design = np.empty((rows, self.width), dtype=np.float64)
        position = 0
        for scale, keys in self.blocks:
            widths = [self._width(k) for k in keys]
            # patsy and formulaic both iterate the left-most factor fastest (as R does).
            for reversed_combination in itertools.product(*(range(w) for w in reversed(widths))):
                column_values = np.full(rows, scale)
                for key, index in zip(keys, reversed_combination[::-1], strict=True):
                    column_values *= encoded[key][:, index]
                design[:, position] = column_values
                position += 1
        return design


class _NumericColumns(dict[str, FloatArray]):
    """Input columns as float64, converted on first use (missing values become NaN)."""

    def __init__(self, frame: Any) -> None:
        super().__init__()
        self.frame = frame

    def __missing__(self, name: str) -> FloatArray:
        try:
            values: FloatArray = self.frame[name].to_numpy(dtype=np.float64, na_value=np.nan)
        except (TypeError, ValueError) as exc:
            raise InvalidRequestError(
                f"column {name!r} must hold numbers: {exc}", field=name
            ) from exc
        self[name] = values
        return values


def _encode(values: Any, column: str, levels: list[Any], coding: FloatArray) -> FloatArray:
    import pandas as pd

    codes = pd.Index(levels, dtype=object).get_indexer(values.astype(object))
    missing = np.asarray(pd.isna(values), dtype=bool)
    unknown = (codes < 0) & ~missing
    if unknown.any():
        seen = sorted({str(v) for v in np.asarray(values, dtype=object)[unknown]})[:3]
        known = ", ".join(repr(level) for level in levels[:20])
        raise InvalidRequestError(
            f"column {column!r} has {', '.join(map(repr, seen))}, which the model never saw: "
            f"it knows {known}{' ...' if len(levels) > 20 else ''}",
            field=column,
            rows=np.flatnonzero(unknown),
        )
    encoded = coding[np.where(codes < 0, 0, codes)]
    encoded[missing] = np.nan  # a missing level scores NaN, as statsmodels' own predict does
    return encoded


# -- the columns a model is given ---------------------------------------------------------------


def exog_names(model: Any) -> list[str]:
    """The exog columns, without the extra parameters some count models list after them
    (the negative binomial's ``alpha``)."""
    names = [str(n) for n in model.exog_names]
    extra = int(getattr(model, "k_extra", 0) or 0)
    return names[: len(names) - extra] if 0 < extra < len(names) else names


def exog_layout(model: Any) -> dict[str, Any]:
    """Which exog column is the constant ``sm.add_constant`` added, and its value."""
    index = getattr(model.data, "const_idx", None)
    exog = getattr(model, "exog", None)
    value = 1.0
    if index is not None and exog is not None and len(exog):
        value = float(exog[0, int(index)])
    named = type(model.data).__name__ == "PandasData"
    return {"const_index": None if index is None else int(index), "const": value, "named": named}


class FormulaColumns:
    """A formula model's input: the raw columns its formula reads, by name."""

    def __init__(self, design: FormulaDesign) -> None:
        self.formula, self.inputs, self.width = design, design.inputs, design.width

    def design(self, X: Any) -> FloatArray:
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            return self.formula.build(input_frame(X, self.inputs))


class ExogColumns:
    """A model fitted without a formula: its exog columns, by name when it was fitted on a
    DataFrame, else by position."""

    def __init__(self, names: list[str], layout: Mapping[str, Any]) -> None:
        self.names, self.width = names, len(names)
        index = layout.get("const_index")
        self.const_index: int | None = None if index is None else int(index)
        self.const = float(layout.get("const", 1.0))
        given = [n for i, n in enumerate(names) if i != self.const_index]
        self.given = given
        self.inputs: tuple[str, ...] | None = tuple(given) if layout.get("named") else None

    def design(self, X: Any) -> FloatArray:
        if self.inputs is not None and hasattr(X, "columns"):
            matrix = input_frame(X, self.inputs)[list(self.given)]
            values: FloatArray = matrix.to_numpy(dtype=np.float64, na_value=np.nan)
        else:
            values = np.asarray(X, dtype=np.float64)
            values = values.reshape(1, -1) if values.ndim == 1 else values
        if values.ndim != 2 or values.shape[1] not in (len(self.given), self.width):
            raise InvalidRequestError(
                f"the model takes {len(self.given)} columns ({', '.join(self.given)}), "
                f"got {values.shape[-1]}"
            )
        if values.shape[1] == self.width or self.const_index is None:
            return values
        # The constant column is the model's own: it is filled in rather than asked for.
        return np.insert(values, self.const_index, self.const, axis=1)


def input_frame(X: Any, inputs: tuple[str, ...]) -> Any:
    import pandas as pd

    if not hasattr(X, "columns"):
        values = np.asarray(X, dtype=object)
        if values.ndim != 2 or values.shape[1] != len(inputs):
            raise InvalidRequestError(f"the model takes the columns {', '.join(inputs)}")
        return pd.DataFrame(values, columns=list(inputs))
    missing = [c for c in inputs if c not in X.columns]
    if missing:
        raise InvalidRequestError(
            f"the model needs the column(s) {', '.join(missing)}", field=missing[0]
        )
    return X


def verification_rows(result: Any, columns: FormulaColumns | ExogColumns) -> tuple[Any, Any]:
    """Rows from the training data (when the result still has it) and generated rows: what
    statsmodels predicts from, and what modelrail's callers give (without the constant)."""
    import pandas as pd

    rng = np.random.default_rng(0)
    model = result.model
    if isinstance(columns, FormulaColumns):
        design = columns.formula
        generated: dict[str, Any] = {c: rng.uniform(0.5, 5.0, 64) for c in design.inputs}
        for column, levels, _ in design.categorical.values():
            generated[column] = [levels[i % len(levels)] for i in range(64)]
        frame = pd.DataFrame(generated)
        training = getattr(model.data, "frame", None)
        if training is not None and set(design.inputs) <= set(training.columns):
            frame = pd.concat([training[list(design.inputs)].head(256), frame], ignore_index=True)
        return frame, frame
    exog = getattr(model, "exog", None)
    rows = [np.asarray(exog[:256], dtype=np.float64)] if exog is not None else []
    matrix = np.vstack([*rows, rng.normal(size=(64, columns.width))])
    given: Any = matrix
    if columns.const_index is not None:
        matrix[:, columns.const_index] = columns.const
        given = np.delete(matrix, columns.const_index, axis=1)
    if columns.inputs is not None:
        given = pd.DataFrame(given, columns=list(columns.given))
    return matrix, given
