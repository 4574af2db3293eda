"""The error tree: an error names the parameters at fault by their Python names, and a front
end can spell them its own way without parsing the message."""

from __future__ import annotations

import pickle

import pytest

from modelrail.errors import BatchInputError, GateFailedError, ModelrailError, PromotionError


def test_an_error_names_its_parameters_by_their_python_names() -> None:
    error = PromotionError("{force} needs a {reason}", params=("reason", "force"))
    assert str(error) == error.message == "force needs a reason"
    assert error.params == ("reason", "force")
    assert error.param == "reason"  # the one at fault comes first
    assert error.args == ("force needs a reason",)


def test_a_front_end_spells_the_same_error_its_own_way() -> None:
    error = BatchInputError("{query} needs {query_url}", params=("query_url", "query"))
    spelled = error.render({"query": "--query", "query_url": "--query-url"})
    assert spelled == "--query needs --query-url"
    assert error.render({"query": "--query"}) == "--query needs query_url"  # the rest as named


def test_only_the_named_parameters_are_replaced() -> None:
    error = BatchInputError("{table} {other} {'a': 1}", params=("table",))
    assert error.render({"table": "--table"}) == "--table {other} {'a': 1}"
    assert str(error) == "table {other} {'a': 1}"


def test_an_error_without_parameters_is_its_message() -> None:
    error = ModelrailError("plain {braces} stay")
    assert error.param is None and error.params == ()
    assert str(error) == error.render({"braces": "--braces"}) == "plain {braces} stay"


def test_an_error_that_crosses_processes_keeps_its_readable_message() -> None:
    error = BatchInputError("{engine} is wrong", params=("engine",))
    assert str(pickle.loads(pickle.dumps(error))) == "engine is wrong"


def test_gate_failures_carry_results_and_parameters() -> None:
    error = GateFailedError("{force} does not override it", ("a gate",), params=("force",))
    assert error.results == ("a gate",) and str(error) == "force does not override it"
    with pytest.raises(GateFailedError, match=r"^force does not override it$"):
        raise error
