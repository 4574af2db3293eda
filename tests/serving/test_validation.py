"""Bad prediction requests: each answers 4xx with a JSON error naming the field at fault, and
no input at all makes the server answer 5xx or stop (a property-based test sends thousands)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelrail.serving.server import ServeOptions
from tests.serving.conftest import Http, RunningServer, Zoo, records, running_server

MAX_ROWS = 5
MAX_BODY = 64 * 1024
PREDICT = "/v1/models/cancer/predict"


@pytest.fixture(scope="module")
def small_server(zoo: Zoo) -> Iterator[RunningServer]:
    """One model (so /invocations answers) with small limits on rows and body size."""
    options = ServeOptions(references=("cancer:1",), max_rows=MAX_ROWS, max_body_bytes=MAX_BODY)
    with running_server(zoo.settings, options) as server:
        yield server


@pytest.fixture(scope="module")
def columns(zoo: Zoo) -> list[str]:
    return zoo.columns["cancer"]


@pytest.fixture(scope="module")
def good(zoo: Zoo) -> list[dict[str, float]]:
    return records(zoo.rows("cancer", start=0, count=3))


def assert_refused(reply: Any, status: int, field: str, *, named: bool = True) -> dict[str, Any]:
    """A JSON error with this status that names ``field`` (also in its message if ``named``)."""
    assert reply.status == status, reply.text
    assert reply.headers["content-type"] == "application/json"
    error = reply.json()
    assert set(error) == {"error", "field", "status"}
    assert error["status"] == status
    assert error["field"] == field, error
    if named:
        assert field in error["error"], error
    return error


def without(record: dict[str, float], name: str) -> dict[str, float]:
    return {k: v for k, v in record.items() if k != name}


def split(good: list[dict[str, float]]) -> dict[str, Any]:
    return {"columns": list(good[0]), "data": [list(r.values()) for r in good]}


# -- columns ----------------------------------------------------------------------------------


def test_a_missing_column_in_records_is_refused_naming_it(
    small_server: RunningServer, good: list[dict[str, float]]
) -> None:
    body = {"inputs": [good[0], without(good[1], "mean texture")]}
    assert_refused(small_server.post(PREDICT, body), 422, "mean texture")


def test_a_missing_column_in_columns_and_data_is_refused_naming_it(
    small_server: RunningServer, good: list[dict[str, float]]
) -> None:
    body = split(good)
    index = body["columns"].index("worst area")
    del body["columns"][index]
    body["data"] = [row[:index] + row[index + 1 :] for row in body["data"]]
    assert_refused(small_server.post(PREDICT, body), 422, "worst area")


def test_an_extra_column_in_records_is_refused_naming_it(
    small_server: RunningServer, good: list[dict[str, float]]
) -> None:
    body = {"inputs": [good[0], {**good[1], "colour": 3.0}]}
    assert_refused(small_server.post(PREDICT, body), 422, "colour")


def test_an_extra_column_in_columns_and_data_is_refused_naming_it(
    small_server: RunningServer, good: list[dict[str, float]]
) -> None:
    body = split(good)
    body["columns"].append("colour")
    body["data"] = [[*row, 1.0] for row in body["data"]]
    assert_refused(small_server.post(PREDICT, body), 422, "colour")


def test_a_column_given_twice_is_refused_naming_it(
    small_server: RunningServer, good: list[dict[str, float]]
) -> None:
    body = split(good)
    body["columns"].append("mean area")
    body["data"] = [[*row, 1.0] for row in body["data"]]
    assert_refused(small_server.post(PREDICT, body), 422, "mean area")


def test_an_extra_top_level_field_is_refused_naming_it(
    small_server: RunningServer, good: list[dict[str, float]]
) -> None:
    assert_refused(small_server.post(PREDICT, {"inputs": good, "mode": 1}), 422, "mode")
    assert_refused(
        small_server.post("/invocations", {"dataframe_records": good, "mode": 1}), 422, "mode"
    )


# -- values -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    ["abc", "", "12.5", "nan", [1.0], {"value": 1.0}],
    ids=["word", "empty string", "numeric string", "string nan", "list", "object"],
)
@pytest.mark.parametrize("shape", ["records", "columns and data", "mlflow instances"])
def test_a_value_that_is_not_a_number_is_refused_naming_its_column(
    small_server: RunningServer, good: list[dict[str, float]], value: Any, shape: str
) -> None:
    rows = [dict(r) for r in good]
    rows[1]["mean smoothness"] = value
    if shape == "records":
        reply = small_server.post(PREDICT, {"inputs": rows})
    elif shape == "columns and data":
        reply = small_server.post(PREDICT, split(rows))
    else:
        reply = small_server.post("/invocations", {"instances": [list(r.values()) for r in rows]})
    assert_refused(reply, 422, "mean smoothness")


@pytest.mark.parametrize("shape", ["records", "columns and data", "mlflow inputs as columns"])
def test_a_null_is_refused_naming_its_column(
    small_server: RunningServer, good: list[dict[str, float]], shape: str
) -> None:
    rows = [dict(r) for r in good]
    rows[2]["worst symmetry"] = None  # type: ignore[assignment]
    if shape == "records":
        reply = small_server.post(PREDICT, {"inputs": rows})
    elif shape == "columns and data":
        reply = small_server.post(PREDICT, split(rows))
    else:
        columns = {c: [r[c] for r in rows] for c in rows[0]}
        reply = small_server.post("/invocations", {"inputs": columns})
    assert_refused(reply, 422, "worst symmetry")


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999", "-1e999"])
def test_non_finite_number_literals_are_malformed_json(
    small_server: RunningServer, good: list[dict[str, float]], literal: str
) -> None:
    body = json.dumps({"inputs": good}).replace(str(good[0]["mean radius"]), literal, 1)
    assert literal in body
    error = assert_refused(small_server.post(PREDICT, body), 400, "body", named=False)
    assert "malformed JSON" in error["error"]


def test_an_empty_csv_cell_is_refused_naming_its_column(
    small_server: RunningServer, zoo: Zoo
) -> None:
    frame = zoo.rows("cancer", count=2).copy()
    csv = frame.to_csv(index=False).splitlines()
    header, row = csv[0], csv[1].split(",")
    position = header.split(",").index("mean perimeter")
    row[position] = ""
    body = "\n".join([header, ",".join(row), csv[2]]) + "\n"
    reply = small_server.post("/invocations", body, content_type="text/csv")
    assert_refused(reply, 422, "mean perimeter")


def test_a_text_csv_column_is_refused_naming_it(small_server: RunningServer, zoo: Zoo) -> None:
    frame = zoo.rows("cancer", count=2).copy().astype(object)
    frame["mean area"] = ["big", "small"]
    reply = small_server.post("/invocations", frame.to_csv(index=False), content_type="text/csv")
    assert_refused(reply, 422, "mean area")


# -- limits -----------------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", ["records", "columns and data", "instances", "csv"])
def test_too_many_rows_answer_413(small_server: RunningServer, zoo: Zoo, protocol: str) -> None:
    rows = zoo.rows("cancer", count=MAX_ROWS + 1)
    if protocol == "csv":
        reply = small_server.post("/invocations", rows.to_csv(index=False), content_type="text/csv")
        field = "CSV"
    elif protocol == "instances":
        reply = small_server.post("/invocations", {"instances": rows.to_numpy().tolist()})
        field = "instances"
    elif protocol == "records":
        reply = small_server.post(PREDICT, {"inputs": records(rows)})
        field = "inputs"
    else:
        body = {"columns": list(rows.columns), "data": rows.to_numpy().tolist()}
        reply = small_server.post(PREDICT, body)
        field = "data"
    error = assert_refused(reply, 413, field)
    assert str(MAX_ROWS) in error["error"]
    # As many rows as allowed are fine.
    at_limit = zoo.rows("cancer", count=MAX_ROWS)
    assert small_server.post(PREDICT, {"inputs": records(at_limit)}).status == 200


def test_too_large_a_body_answers_413_and_the_server_keeps_answering(
    small_server: RunningServer, good: list[dict[str, float]]
) -> None:
    padding = " " * (MAX_BODY + 1)
    body = json.dumps({"inputs": good[:1]}) + padding
    error = assert_refused(small_server.post(PREDICT, body), 413, "body", named=False)
    assert str(MAX_BODY) in error["error"]
    assert small_server.post(PREDICT, {"inputs": good}).status == 200
    assert small_server.get("/health").status == 200


def test_too_large_a_chunked_body_answers_413_and_the_server_keeps_answering(
    small_server: RunningServer, good: list[dict[str, float]]
) -> None:
    chunk = b" " * 8192
    chunks = [json.dumps({"inputs": good[:1]}).encode()] + [chunk] * (MAX_BODY // len(chunk) + 2)
    with small_server.connect() as http_:
        reply = http_.request(
            "POST", PREDICT, iter(chunks), encode_chunked=True, content_type="application/json"
        )
        error = assert_refused(reply, 413, "body", named=False)
        assert str(MAX_BODY) in error["error"]
    with small_server.connect() as http_:
        assert http_.post(PREDICT, {"inputs": good}).status == 200


def test_a_body_just_under_the_limit_is_accepted(
    small_server: RunningServer, good: list[dict[str, float]]
) -> None:
    body = json.dumps({"inputs": good})
    body += " " * (MAX_BODY - len(body))
    assert len(body) == MAX_BODY
    assert small_server.post(PREDICT, body).status == 200


# -- content type and syntax ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        (PREDICT, "text/plain"),
        (PREDICT, "text/csv"),
        (PREDICT, "application/xml"),
        (PREDICT, "multipart/form-data; boundary=x"),
        ("/invocations", "text/plain"),
        ("/invocations", "application/octet-stream"),
    ],
)
def test_a_wrong_content_type_answers_415(
    small_server: RunningServer, good: list[dict[str, float]], path: str, content_type: str
) -> None:
    body = json.dumps({"inputs": good})
    error = assert_refused(
        small_server.post(path, body, content_type=content_type), 415, "content-type", named=False
    )
    assert content_type.split(";")[0] in error["error"]


@pytest.mark.parametrize(
    "content_type",
    ["application/json; charset=utf-8", "APPLICATION/JSON", "application/vnd.api+json"],
)
def test_json_content_types_with_parameters_or_suffixes_are_accepted(
    small_server: RunningServer, good: list[dict[str, float]], content_type: str
) -> None:
    reply = small_server.post(PREDICT, json.dumps({"inputs": good}), content_type=content_type)
    assert reply.status == 200, reply.text


@pytest.mark.parametrize(
    "body",
    [b'{"inputs": [', b"", b"{'inputs': []}", b'{"inputs": []}}', b"\xff\xfe\x00", b"[1, 2,]"],
    ids=["unterminated", "empty", "single quotes", "trailing brace", "binary", "trailing comma"],
)
@pytest.mark.parametrize("path", [PREDICT, "/invocations"])
def test_malformed_json_answers_400(small_server: RunningServer, body: bytes, path: str) -> None:
    error = assert_refused(small_server.post(path, body), 400, "body", named=False)
    assert "malformed JSON" in error["error"]


def test_unreadable_csv_answers_4xx(small_server: RunningServer) -> None:
    reply = small_server.post("/invocations", b'a,b\n1,"2\n', content_type="text/csv")
    assert 400 <= reply.status < 500, reply.text
    assert reply.json()["field"] in ("body", "a", "mean radius")


# -- empty and wrongly shaped inputs ----------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        (PREDICT, {"inputs": []}, "inputs"),
        (PREDICT, {"columns": None, "data": []}, "columns"),
        (PREDICT, {"data": []}, "data"),
        (PREDICT, {}, "body"),
        ("/invocations", {"dataframe_records": []}, "dataframe_records"),
        ("/invocations", {"instances": []}, "instances"),
        ("/invocations", {"dataframe_split": {"data": []}}, "dataframe_split.data"),
        ("/invocations", {}, "body"),
    ],
)
def test_empty_inputs_are_refused_naming_the_field(
    small_server: RunningServer, path: str, body: Any, field: str
) -> None:
    assert_refused(small_server.post(path, body), 422, field, named=False)


def test_an_empty_csv_is_refused(small_server: RunningServer, columns: list[str]) -> None:
    reply = small_server.post("/invocations", ",".join(columns) + "\n", content_type="text/csv")
    assert_refused(reply, 422, "CSV", named=False)
    assert 400 <= small_server.post("/invocations", b"", content_type="text/csv").status < 500


def _shapes(columns: list[str], row: list[float]) -> list[tuple[str, str, Any, str]]:
    return [
        ("rows too short", PREDICT, {"columns": columns, "data": [row[:-1], row[:-1]]}, "data"),
        ("rows too long", PREDICT, {"columns": columns, "data": [[*row, 1.0]]}, "data"),
        ("one ragged row", PREDICT, {"columns": columns, "data": [row, row[:3]]}, "data[1]"),
        ("data a number", PREDICT, {"columns": columns, "data": 5}, "data"),
        ("data a string", PREDICT, {"columns": columns, "data": "1,2,3"}, "data"),
        ("data an object", PREDICT, {"columns": columns, "data": {"a": row}}, "data"),
        ("data a flat row", PREDICT, {"columns": columns, "data": row[:3]}, "data"),
        ("rows nested", PREDICT, {"columns": columns, "data": [[row]]}, "data"),
        ("row an object", PREDICT, {"columns": columns, "data": [row, {"a": 1}]}, "data[1]"),
        ("columns a string", PREDICT, {"columns": "mean radius", "data": [row]}, "columns"),
        ("inputs an object", PREDICT, {"inputs": dict(zip(columns, row, strict=True))}, "inputs"),
        ("inputs rows", PREDICT, {"inputs": [row]}, "inputs[0]"),
        ("inputs a number", PREDICT, {"inputs": 7}, "inputs"),
        ("body a list", PREDICT, [row], "body"),
        ("body a string", PREDICT, "inputs", "body"),
        ("body null", PREDICT, None, "body"),
        ("two mlflow keys", "/invocations", {"instances": [row], "inputs": [row]}, "body"),
        ("split not an object", "/invocations", {"dataframe_split": [row]}, "dataframe_split"),
        ("instances ragged", "/invocations", {"instances": [row, row[:2]]}, "instances[1]"),
        ("instances flat", "/invocations", {"instances": row[:3]}, "instances"),
        (
            "records a list of lists",
            "/invocations",
            {"dataframe_records": [row]},
            "dataframe_records[0]",
        ),
        (
            "columns of unequal length",
            "/invocations",
            {
                "inputs": {
                    c: [v] * (2 if i else 1)
                    for i, (c, v) in enumerate(zip(columns, row, strict=True))
                }
            },
            "inputs",
        ),
        (
            "a column not a list",
            "/invocations",
            {"inputs": dict(zip(columns, row, strict=True))},
            "inputs",
        ),
    ]


SHAPE_IDS = [case[0] for case in _shapes(["a"], [1.0])]


@pytest.mark.parametrize("case", range(len(SHAPE_IDS)), ids=SHAPE_IDS)
def test_wrongly_shaped_inputs_are_refused_naming_the_field(
    small_server: RunningServer, good: list[dict[str, float]], case: int
) -> None:
    columns, row = list(good[0]), list(good[0].values())
    _, path, body, field = _shapes(columns, row)[case]
    reply = small_server.request("POST", path, json.dumps(body))
    assert_refused(reply, 422, field, named=False)


# -- thousands of generated bodies --------------------------------------------------------------

JSON_CONTENT_TYPES = [
    "application/json",
    "application/json; charset=utf-8",
    "application/x-www-form-urlencoded",
    "application/problem+json",
    "text/csv",
    "text/plain",
    "application/octet-stream",
    "multipart/form-data; boundary=zz",
    ";",
    "application/json;;;",
]

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=8), inner, max_size=6)
    ),
    max_leaves=10,
)
numbers = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False) | st.integers(-1000, 1000)


@st.composite
def mutated_records(draw: st.DrawFn, columns: list[str], valid: list[dict[str, float]]) -> Any:
    rows = [dict(r) for r in draw(st.lists(st.sampled_from(valid), min_size=0, max_size=7))]
    for _ in range(draw(st.integers(0, 3))):
        if not rows:
            break
        row = draw(st.sampled_from(rows))
        action = draw(st.sampled_from(["drop", "add", "replace", "number", "rename"]))
        name = draw(st.sampled_from(columns))
        if action == "drop":
            row.pop(name, None)
        elif action == "add":
            row[draw(st.text(max_size=10))] = draw(json_values)
        elif action == "replace":
            row[name] = draw(json_values)
        elif action == "number":
            row[name] = draw(numbers)
        elif name in row:
            row[name + draw(st.text(min_size=1, max_size=3))] = row.pop(name)
    wrapper = draw(
        st.sampled_from(["inputs", "dataframe_records", "instances", "split", "dataframe_split"])
    )
    if wrapper == "split" or wrapper == "dataframe_split":
        names = list(columns)
        if draw(st.booleans()):
            names = draw(st.permutations(names))
        if draw(st.booleans()) and names:
            names = names[: draw(st.integers(0, len(names)))]
        filler = draw(json_values)  # for the columns a mutation dropped
        data = [[r.get(c, filler) for c in names] for r in rows]
        body: Any = {"columns": names, "data": data}
        return body if wrapper == "split" else {"dataframe_split": body}
    return {wrapper: rows}


@st.composite
def mutated_rows(draw: st.DrawFn, valid: list[list[float]]) -> Any:
    rows = [list(r) for r in draw(st.lists(st.sampled_from(valid), max_size=7))]
    for _ in range(draw(st.integers(0, 3))):
        if not rows:
            break
        row = draw(st.sampled_from(rows))
        index = draw(st.integers(0, len(row)))
        action = draw(st.sampled_from(["drop", "insert", "replace"]))
        if action == "drop" and index < len(row):
            del row[index]
        elif action == "insert":
            row.insert(index, draw(json_values))
        elif index < len(row):
            row[index] = draw(json_values | numbers)
    return {draw(st.sampled_from(["instances", "inputs"])): rows}


@st.composite
def mutated_csv(draw: st.DrawFn, columns: list[str], valid: list[list[float]]) -> bytes:
    names = draw(st.permutations(columns)) if draw(st.booleans()) else list(columns)
    if draw(st.booleans()):
        names = names[: draw(st.integers(0, len(names)))]
    lines = [",".join(names)]
    for row in draw(st.lists(st.sampled_from(valid), max_size=7)):
        cells = [str(v) for v in row[: len(names)]]
        if cells and draw(st.booleans()):
            cells[draw(st.integers(0, len(cells) - 1))] = draw(st.text(max_size=6))
        lines.append(",".join(cells))
    text = "\n".join(lines)
    if draw(st.booleans()):
        cut = draw(st.integers(0, len(text)))
        text = text[:cut] + draw(st.text(max_size=8)) + text[cut:]
    return text.encode("utf-8", errors="replace")


def bodies(columns: list[str], valid: list[dict[str, float]]) -> st.SearchStrategy[bytes]:
    rows = [list(r.values()) for r in valid]
    as_json = st.one_of(
        json_values,
        mutated_records(columns, valid),
        mutated_rows(rows),
        st.fixed_dictionaries({"inputs": json_values}),
        st.fixed_dictionaries({"columns": json_values, "data": json_values}),
        st.dictionaries(st.sampled_from(["dataframe_split", "instances", "params"]), json_values),
    ).map(lambda value: json.dumps(value).encode())
    return st.one_of(as_json, st.binary(max_size=300), mutated_csv(columns, rows))


content_types = st.one_of(
    st.sampled_from(JSON_CONTENT_TYPES),
    st.none(),
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=30),
)

# Each example is a pair of requests sent back to back on the same keep-alive connection (a
# bad request must not spoil the next one); 1,100 examples send 2,200 bodies.
FUZZ_EXAMPLES = 1100
REQUESTS_PER_EXAMPLE = 2


def test_generated_bad_bodies_never_get_a_5xx_and_the_server_stays_up(
    small_server: RunningServer, dev_server: RunningServer, zoo: Zoo
) -> None:
    """Random JSON values, mutated valid bodies, random bytes and random content types."""
    columns = zoo.columns["cancer"]
    valid = records(zoo.rows("cancer", start=0, count=10))
    cancer, forest = Http(small_server.port), Http(dev_server.port)
    targets = [
        (cancer, PREDICT),
        (cancer, "/invocations"),
        (forest, "/v1/models/forest/predict"),  # scikit-learn's own predict, not compiled
    ]
    answered: dict[int, int] = {}
    request = st.tuples(st.sampled_from(range(len(targets))), bodies(columns, valid), content_types)

    @settings(
        max_examples=FUZZ_EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(st.lists(request, min_size=REQUESTS_PER_EXAMPLE, max_size=REQUESTS_PER_EXAMPLE))
    def send(exchange: list[tuple[int, bytes, str | None]]) -> None:
        for target, body, content_type in exchange:
            http_, path = targets[target]
            reply = http_.request("POST", path, body, content_type=content_type)
            answered[reply.status] = answered.get(reply.status, 0) + 1
            assert reply.status < 500, (path, body[:300], content_type, reply.text)
            document = reply.json()
            if reply.status >= 400:
                assert document["status"] == reply.status
                assert isinstance(document["error"], str) and document["error"]
            else:
                assert reply.status == 200
                assert document["model"] in ("cancer", "forest") and document["predictions"]

    try:
        send()
        total = sum(answered.values())
        assert total >= 2000, answered
        assert answered.get(200, 0) > 0, answered  # some mutations stay valid
        assert sum(v for k, v in answered.items() if 400 <= k < 500) > 1000, answered
        # One keep-alive connection per server, reopened only where the server closed it.
        assert cancer.connections + forest.connections < total / 20, answered
        for server in (small_server, dev_server):
            with server.connect() as fresh:
                assert fresh.get("/health").status == 200
                assert fresh.get("/ready").status == 200
        assert small_server.post(PREDICT, {"inputs": valid[:2]}).status == 200
    finally:
        cancer.close()
        forest.close()
