"""Records (``{"inputs": [{...}]}``) become the model's input in column order, whatever the
keys' order, and a record that is not an object of exactly the signature's columns is refused
naming it, even when it has as many keys or items as there are columns."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import pytest

from modelrail.errors import InvalidRequestError
from modelrail.serving.input_spec import InputSpec
from modelrail.serving.inputs import Limits, matrix_from_json

SPEC = InputSpec(("a", "b", "c"), ("float64", "float64", "int64"))


def convert(payload: Any, spec: InputSpec = SPEC) -> Any:
    return matrix_from_json(orjson.dumps(payload), spec, Limits(), mlflow=False)


def refusal(payload: Any, spec: InputSpec = SPEC) -> InvalidRequestError:
    with pytest.raises(InvalidRequestError) as caught:
        convert(payload, spec)
    return caught.value


def test_records_in_any_key_order_give_the_signature_order() -> None:
    matrix = convert({"inputs": [{"c": 3, "a": 1.5, "b": 2.0}, {"b": 5.0, "c": 6, "a": 4.0}]})
    assert matrix.dtype == np.float64
    np.testing.assert_array_equal(matrix, [[1.5, 2.0, 3.0], [4.0, 5.0, 6.0]])


def test_a_one_column_model_takes_records() -> None:
    spec = InputSpec(("x",), ("float64",))
    np.testing.assert_array_equal(convert({"inputs": [{"x": 1.0}, {"x": 2}]}, spec), [[1.0], [2.0]])
    assert refusal({"inputs": [{"y": 1.0}]}, spec).field == "x"


def test_a_record_with_as_many_keys_but_a_wrong_one_names_the_missing_column() -> None:
    problem = refusal({"inputs": [{"a": 1.0, "b": 2.0, "c": 3}, {"a": 1.0, "b": 2.0, "z": 3}]})
    assert problem.field == "c"
    assert "missing column 'c'" in problem.message


@pytest.mark.parametrize("record", [[1.0, 2.0, 3], "abc", 7, None, True])
def test_a_record_that_is_not_an_object_is_refused_naming_it(record: Any) -> None:
    problem = refusal({"inputs": [{"a": 1.0, "b": 2.0, "c": 3}, record]})
    assert problem.field == "inputs[1]"
    assert "must be an object" in problem.message


def test_an_extra_key_is_refused_naming_it() -> None:
    problem = refusal({"inputs": [{"a": 1.0, "b": 2.0, "c": 3, "d": 4.0}]})
    assert problem.field == "d"


def test_text_in_a_number_column_is_refused_naming_the_column() -> None:
    problem = refusal({"inputs": [{"a": 1.0, "b": "2.0", "c": 3}]})
    assert problem.field == "b"


def test_records_of_a_model_with_text_columns_become_typed_columns() -> None:
    spec = InputSpec(("n", "t"), ("float64", "string"))
    columns = convert({"inputs": [{"t": "x", "n": 1}, {"n": 2.5, "t": "y"}]}, spec)
    assert columns.names == ("n", "t") and columns.complete
    assert [a.dtype.kind for a in columns.arrays] == ["f", "O"]
    frame = columns.to_frame()  # what a predictor that needs pandas gets
    assert list(frame.columns) == ["n", "t"]
    assert frame["n"].tolist() == [1.0, 2.5]
    assert frame["t"].tolist() == ["x", "y"]
    assert refusal({"inputs": [{"n": 1.0, "t": 5}]}, spec).field == "t"
