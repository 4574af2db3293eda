"""Thousands of malformed requests to every route of the team server, over real HTTP: none
gets a 5xx, every refusal is a JSON object with an ``error`` key, no answer holds a Python
traceback or a token's secret, and the server still answers ``/health`` afterwards.

The routes are read from the app itself (``build_app(...).routes``) and the fields of each
body from the route's own refusal of an unknown field, so a route or field added later is
covered without touching this file. Two tests per route:

- a property-based one (Hypothesis, derandomized so CI sends the same requests every time)
  that fills path parameters with junk and sends junk bodies (invalid JSON, each known
  field with junk of its own type or of a wrong one, arrays, deep nesting, NaN, long text,
  binary, a thousand list items), junk query strings and odd headers (content types,
  missing / garbage / valid ``Authorization`` of every user);
- a deterministic sweep that sets each field of a body, in turn, to each edge value of every
  type, beside the fields the route requires, and lists every request that fails.

Every request is still valid HTTP, so each one reaches the app rather than uvicorn's parser.
A route with a known, reported server defect is marked ``xfail(strict=True)`` in
``JUNK_DEFECTS`` / ``EDGE_DEFECTS``: once the server is fixed, the mark has to go.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from hypothesis import HealthCheck, Phase, given, note, settings
from hypothesis import strategies as st
from starlette.routing import BaseRoute, Mount, Route

from modelrail.client import Client
from modelrail.config import init_project, load_settings
from modelrail.server import build_app
from modelrail.server.auth import FAILURE_WINDOW_S
from modelrail.server.payload import MAX_BODY_BYTES, MAX_TEXT
from modelrail.store.tracker_query import TrackerQuery
from tests.server.conftest import MODEL, USERS, Reply, Team, register

# Junk requests per route: 100 to each route with path parameters or a body, 60 to each that
# takes nothing but a query string (about 2,700 today, and a few thousand edge values below),
# so the file runs in well under a minute on two cores. Fixed per route, not shared out: a
# route's examples (derandomized) then stay the same when other routes come and go.
RICH_EXAMPLES = 100
PLAIN_EXAMPLES = 60
# uvicorn refuses a request head over 16 KiB (h11) or a URL over 64 KiB (httptools) itself,
# before the app sees it, with a plain-text 400: the URL and the token stay well under.
MAX_URL = 10_240
MAX_JUNK_TOKEN = 4_000
HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
# Every field a body of the API knows today (the tracker's are its query's); a field added
# later still gets junk under the random keys, and each of these gets values of every type.
BODY_FIELDS = tuple(
    dict.fromkeys(
        [
            "reference",
            "to",
            "reason",
            "force",
            "if_holds",
            "model",
            "environment",
            "to_version",
            *(f.name for f in dataclasses.fields(TrackerQuery)),
        ]
    )
)
QUERY_NAMES = ("model", "environment", "status", "key", "name", "id", "limit")
# Stands for the id of the seeded run (known only once it exists) among the path values.
RUN = "<the seeded run>"
ENVIRONMENTS = ("dev", "staging", "prod")


# -- the routes, read from the app ---------------------------------------------------------


@dataclass(frozen=True)
class Endpoint:
    path: str  # Starlette's path format, e.g. /api/v1/requests/{id}/approve
    methods: tuple[str, ...]

    @property
    def params(self) -> tuple[str, ...]:
        return tuple(re.findall(r"{(\w+)}", self.path))

    def __str__(self) -> str:
        return f"{'|'.join(self.methods)} {self.path}"


def _endpoints(routes: Iterable[BaseRoute], prefix: str = "") -> list[Endpoint]:
    found: list[Endpoint] = []
    for route in routes:
        if isinstance(route, Route):
            methods = tuple(sorted(route.methods or HTTP_METHODS))
            found.append(Endpoint(prefix + route.path_format, methods))
        elif isinstance(route, Mount):
            found.extend(_endpoints(route.routes, prefix + route.path_format))
    return found


def _routes_of_the_app() -> list[Endpoint]:
    """The routes of an app built as the server builds it, over a throwaway project."""
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        init_project(root)
        settings = load_settings(cwd=root, environ={"MODELRAIL_USER": "mallory"}, create=False)
        store_url = f"sqlite:///{root / '.modelrail' / 'modelrail.db'}"
        with Client(store_url=store_url, settings=settings) as client:
            return _endpoints(build_app(client).routes)


ENDPOINTS = _routes_of_the_app()
PLAIN = [e for e in ENDPOINTS if not e.params and set(e.methods) <= {"GET", "HEAD"}]
RICH = [e for e in ENDPOINTS if e not in PLAIN]
# Routes whose failures are known and reported, by str(endpoint), per test: their case is
# expected to fail (strictly, so the mark must go once the server is fixed).
JUNK_DEFECTS: dict[str, str] = {}
EDGE_DEFECTS: dict[str, str] = {}


def _cases(endpoints: list[Endpoint], defects: dict[str, str]) -> list[Any]:
    return [
        pytest.param(
            endpoint,
            id=str(endpoint),
            marks=[pytest.mark.xfail(strict=True, reason=defects[str(endpoint)])]
            if str(endpoint) in defects
            else [],
        )
        for endpoint in endpoints
    ]


# -- junk ------------------------------------------------------------------------------------


def _same(value: Any) -> Any:
    return value


def _shares(*parts: tuple[int, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    """One of ``parts``, each drawn about ``weight`` times as often as a weight of one.
    (``st.one_of`` flattens a nested ``one_of`` into its branches, so each part is wrapped
    to keep its share whatever it holds.)"""
    return st.one_of(*[part.map(_same) for weight, part in parts for _ in range(weight)])


NUMBERS = st.one_of(
    st.integers(),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.sampled_from([0, -1, 1, 2, 2**31 - 1, 2**31, 2**32, 2**63 - 1, 2**63, 2**64, -(2**63) - 1]),
)
FLOATS = st.floats(allow_nan=True, allow_infinity=True)
SPECIAL_TEXT = st.sampled_from(
    [
        "",
        " ",
        "\t",
        "..",
        "../",
        "../../etc/passwd",
        "%2e%2e%2f",
        "%",
        "%00",
        "%FF%FE",
        "a\x00b",
        "\ud800",
        "x\udfffy",
        "\u202e",
        "\ufeff",
        "\u0663",  # an Arabic-Indic digit: str.isdigit() says yes
        "\u00b9",  # superscript one: str.isdigit() says yes
        "\uff11",  # a full-width one
        "1.0",
        "1e3",
        "0x10",
        "+1",
        " 1",
        "1 ",
        "-0",
        "null",
        "true",
        "NaN",
        "Infinity",
        "[]",
        "{}",
        "'; DROP TABLE runs; --",
        "<script>alert(1)</script>",
        "{{7*7}}",
        "${jndi:x}",
        "🦄" * 20,
        "mr_" + "A" * 43,
        "0" * 64,
        "G" * 64,
        "A" * 64,
    ]
)
# Built from small draws: a strategy holding large values has a large repr, which
# Hypothesis warns about (and warnings are errors here).
LONG_TEXT = st.builds(
    lambda c, n: c * n,
    st.sampled_from(["x", "é", "🦄", "\x00", "/"]),
    st.sampled_from([3000, MAX_TEXT - 1, MAX_TEXT, MAX_TEXT + 1, 12_000]),
)
PLAUSIBLE = st.one_of(
    st.sampled_from(
        [MODEL, f"{MODEL}:1", f"{MODEL}:2", f"{MODEL}@dev", *ENVIRONMENTS, "pets", "accuracy"]
    ),
    st.sampled_from(["started", "version", "component:data:train", "component:", "running"]),
    st.builds(lambda n: f"{MODEL}:{n}", NUMBERS),
    st.builds(lambda n: f"{MODEL}:{n}", st.text(max_size=20)),
    st.builds(lambda e: f"{MODEL}@{e}", st.text(max_size=20)),
    st.builds(lambda e: f"{MODEL}@{e}", SPECIAL_TEXT),
    st.builds(lambda a, b: f"{a}:{b}", SPECIAL_TEXT, NUMBERS),
)
# Text no store can hold: lone surrogates (not UTF-8) and NUL characters.
UNSTORABLE = st.sampled_from(["\ud800", "a\udfffb", "\udc80\ud800", "\x00", "a\x00b"])
TEXT = st.one_of(
    st.text(max_size=40),
    UNSTORABLE,
    st.text(st.characters(codec="utf-8"), max_size=40),  # incl. controls and NUL
    SPECIAL_TEXT,
    LONG_TEXT,
    PLAUSIBLE,
)
SCALARS = st.one_of(st.none(), st.booleans(), NUMBERS, FLOATS, TEXT)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=8,
)
INTEGERS = st.one_of(st.integers(1, 3), NUMBERS, st.sampled_from([1.0, 1.5, -0.0, 1e300]), FLOATS)
TYPED_TEXT = st.one_of(PLAUSIBLE, TEXT)


SHORT_TEXT = st.text(max_size=8)


def _lists(
    element: st.SearchStrategy[Any], small: st.SearchStrategy[Any]
) -> st.SearchStrategy[list[Any]]:
    """A few of ``element``, or a ``small`` one repeated very many times (the body staying
    under the server's limit on its size)."""
    return _shares(
        (1, st.builds(lambda item, n: [item] * n, small, st.sampled_from([1_000, 100, 2_000]))),
        (1, st.lists(element, max_size=4)),
    )


LISTS_OF_TEXT = _lists(TEXT, SHORT_TEXT)
RANGES = _lists(
    st.fixed_dictionaries(
        {"key": TYPED_TEXT},
        optional={"low": INTEGERS | SCALARS, "high": INTEGERS | SCALARS, "junk": SCALARS},
    ),
    st.fixed_dictionaries({"key": SHORT_TEXT}, optional={"low": FLOATS, "high": FLOATS}),
)
PAIRS = _lists(
    st.tuples(TYPED_TEXT, st.none() | TYPED_TEXT).map(list)
    | st.lists(st.one_of(TEXT, st.none(), NUMBERS), max_size=3),
    st.tuples(SHORT_TEXT, st.none() | SHORT_TEXT).map(list),
)
# The type each known field takes, with junk inside it: what gets past the type checks and
# reaches the library. Any other field is text.
TYPED = {
    "force": st.booleans(),
    "ascending": st.booleans(),
    "only_models": st.booleans(),
    "if_holds": INTEGERS,
    "to_version": INTEGERS,
    "limit": INTEGERS,
    "offset": INTEGERS,
    "metrics": LISTS_OF_TEXT,
    "metric_ranges": RANGES,
    "tags": PAIRS,
}
FIELD_VALUES = st.one_of(
    PLAUSIBLE,
    TEXT,
    NUMBERS,
    st.booleans(),
    FLOATS,
    JSON_VALUES,
    LISTS_OF_TEXT,
    RANGES,
    PAIRS,
)

TOO_BIG = b'{"reason": "' + b"x" * (MAX_BODY_BYTES + 16) + b'"}'
MALFORMED_JSON = st.sampled_from(
    [
        b"",
        b" ",
        b"\n\n",
        b"{",
        b"}",
        b"{not json",
        b"{'reference': 'tiny:1'}",
        b'{"reference": "tiny:1",}',
        b'{"reference": "tiny:1" "to": "prod"}',
        b'{"reference": tiny}',
        b'{"if_holds": NaN}',
        b'{"to_version": Infinity}',
        b'{"to_version": -Infinity}',
        b'{"reason": NaN, "force": NaN}',
        b"NaN",
        b"[NaN]",
        b'{"to_version": 1e999}',
        b'{"if_holds": -1e-999}',
        b'{"reason": "\\ud800"}',
        b'{"reason": "\\u0000"}',
        b'{"reason": "\\x41"}',
        b'{"reason": "unterminated',
        b'{"reference": "tiny:1", "reference": 5}',  # a repeated key
        b"\xef\xbb\xbf{}",  # a UTF-8 byte-order mark
        b"\xff\xfe{\x00}\x00",
        b'{"reason": "\xff\xfe"}',  # not UTF-8
        b'{"reason": "\xed\xa0\x80"}',  # an encoded surrogate
        b"\x00" * 64,
        b"null",
        b"true",
        b"0",
        b'"prod"',
        b"[]",
        b"[{}]",
        b"reference=tiny%3A1&to=prod",
        b"--x\r\nContent-Disposition: form-data; name=reference\r\n\r\ntiny:1\r\n--x--\r\n",
    ]
)


def _large_body(name: str) -> bytes:
    if name == "too big":
        return TOO_BIG
    if name == "too many digits":  # more digits than int() takes
        return b'{"to_version": 1' + b"0" * 5000 + b"}"
    return b'{"reason": "' + b"x" * (MAX_BODY_BYTES - 20) + b'"}'  # just under the limit


LARGE_BODIES = st.sampled_from(["too big", "too many digits", "just under"]).map(_large_body)


def _json(value: Any, ascii_only: bool) -> bytes:
    return json.dumps(value, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")


def _nested(depth: int, opener: bytes) -> bytes:
    closer = {b"[": b"]", b'{"reason": ': b"}", b'{"a": [': b"]}"}[opener]
    return opener * depth + b"1" + closer * depth


def _bodies(fields: tuple[str, ...]) -> st.SearchStrategy[bytes | None]:
    """Bodies for a route taking ``fields``: two in three are objects of those fields, each
    of its type but junk inside (one field alone, all of them, some of them, or all but one
    of a wrong type), the rest junk of every other kind."""
    typed = {name: TYPED.get(name, TYPED_TEXT) for name in fields}
    one_wrong = st.builds(
        lambda body, name, value: {**body, name: value},
        st.fixed_dictionaries(typed),
        st.sampled_from(fields),
        FIELD_VALUES,
    )
    alone = st.sampled_from(fields).flatmap(lambda name: typed[name].map(lambda v: {name: v}))
    typed_objects = _shares(
        (2, alone),
        (1, st.fixed_dictionaries(typed)),
        (1, st.fixed_dictionaries({}, optional=typed)),
        (1, one_wrong),
    )
    objects = st.one_of(
        typed_objects,
        st.fixed_dictionaries({}, optional={name: FIELD_VALUES for name in fields}),
        st.dictionaries(
            st.sampled_from(BODY_FIELDS) | st.text(max_size=12), FIELD_VALUES, max_size=6
        ),
    )
    return _shares(
        (2, st.builds(_json, typed_objects, st.booleans())),
        (
            1,
            st.one_of(
                st.builds(_json, objects, st.booleans()),
                st.none(),
                st.builds(_json, JSON_VALUES, st.booleans()),  # arrays, strings, numbers
                st.builds(lambda v: json.dumps(v).encode("utf-16"), objects),
                MALFORMED_JSON,
                LARGE_BODIES,
                st.binary(max_size=300),
                st.builds(
                    _nested,
                    st.integers(min_value=1, max_value=100_000),
                    st.sampled_from([b"[", b'{"reason": ', b'{"a": [']),
                ),
                st.builds(
                    lambda b, n: b[:n], st.builds(_json, objects, st.just(True)), st.integers(0, 60)
                ),
            ),
        ),
    )


HEADER_TEXT = st.text(
    st.characters(codec="latin-1", exclude_categories=["Cc"]), max_size=60
)  # what HTTP allows in a header value, so the request still reaches the app
CONTENT_TYPES = st.one_of(
    st.none(),
    st.sampled_from(
        [
            "application/json",
            "application/json; charset=utf-8",
            "application/json; charset=utf-16",
            "application/json; charset=nonsense",
            "text/plain",
            "text/html",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "multipart/form-data",
            "application/octet-stream",
            "application/xml",
            "",
            ";;;",
            "*/*",
        ]
    ),
    HEADER_TEXT,
)
EXTRA_HEADERS = st.dictionaries(
    st.sampled_from(
        [
            "Accept",
            "Accept-Encoding",
            "Content-Encoding",
            "X-Forwarded-For",
            "X-Real-IP",
            "Origin",
            "Cookie",
            "Host",
            "Expect",
            "User-Agent",
            "X-Modelrail-User",
        ]
    ),
    st.one_of(
        st.sampled_from(["gzip", "text/html", "100-continue", "mallory", "ada", "", "*"]),
        HEADER_TEXT,
    ),
    max_size=3,
)


@dataclass(frozen=True)
class Auth:
    """How a request signs in: no header, a user's token (maybe mangled), or raw junk."""

    kind: str
    user: str = ""
    value: str = ""


MANGLES = ("lowercase", "no-scheme", "suffix", "prefix", "truncated", "twice", "basic")
# A valid token of some user two times in three: the junk elsewhere in a request should
# mostly get past signing in.
AUTHS = _shares(
    (2, st.builds(Auth, st.just("token"), st.sampled_from(sorted(USERS)), st.just("valid"))),
    (
        1,
        st.one_of(
            st.builds(
                Auth, st.just("token"), st.sampled_from(sorted(USERS)), st.sampled_from(MANGLES)
            ),
            st.just(Auth("none")),
            st.builds(Auth, st.just("header"), st.just(""), HEADER_TEXT),
            st.builds(
                Auth,
                st.just("header"),
                st.just(""),
                st.sampled_from(
                    ["Bearer", "Bearer ", "Bearer  ", "Bearer mr_", "bearer x", "Basic Og=="]
                )
                | st.builds(lambda s: f"Bearer {s}", HEADER_TEXT)
                | st.builds(lambda n: "Bearer mr_" + "A" * n, st.integers(0, MAX_JUNK_TOKEN)),
            ),
        ),
    ),
)


def _authorization(team: Team, auth: Auth) -> str | None:
    if auth.kind == "none":
        return None
    if auth.kind == "header":
        return auth.value
    secret = team.tokens[auth.user]
    return {
        "valid": f"Bearer {secret}",
        "lowercase": f"bearer {secret}",
        "no-scheme": secret,
        "suffix": f"Bearer {secret}x",
        "prefix": f"Bearer x{secret}",
        "truncated": f"Bearer {secret[:-1]}",
        "twice": f"Bearer {secret} {secret}",
        "basic": f"Basic {secret}",
    }[auth.value]


# -- requests -------------------------------------------------------------------------------

# Path values that exist (or are well formed) are drawn often, so that the junk elsewhere in
# a request reaches the library.
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
EXISTING = st.sampled_from(["1", MODEL, f"{MODEL}:1", f"{MODEL}@staging", RUN, EMPTY_SHA256])
PATH_VALUES = st.one_of(
    EXISTING,
    EXISTING,
    NUMBERS.map(str),
    SPECIAL_TEXT,
    PLAUSIBLE,
    st.text(max_size=30),
    st.text(st.characters(codec="utf-8"), max_size=30),
    st.integers(min_value=1, max_value=2000).map(lambda n: "x" * n),
    LONG_TEXT,
)
# Already percent-encoded, some of it not valid UTF-8 or not valid percent-encoding at all.
RAW_SEGMENTS = st.sampled_from(
    ["%FF", "%C0%AF", "%ED%A0%80", "%00", "%2F", "%2e%2e", "%25", "%", "%G1", "..", ".", ""]
)
QUERIES = st.one_of(
    st.just(""),
    st.lists(
        st.tuples(st.sampled_from(QUERY_NAMES) | st.text(max_size=8), TEXT | PATH_VALUES),
        max_size=4,
    ).map(lambda pairs: urlencode(pairs, quote_via=quote, errors="surrogatepass")),
    st.sampled_from(["status", "status=", "=&&=", "model=%00", "model=%FF", "status=%", "&"]),
)


def _filled(endpoint: Endpoint, value: str) -> str:
    path = endpoint.path
    for name in endpoint.params:
        path = path.replace("{" + name + "}", quote(value, safe=""), 1)
    return path


@dataclass(frozen=True)
class BodyShape:
    """What a route reads from a body, learnt from the route itself."""

    method: str
    path: str  # the route's path, its parameters filled with ones that exist
    fields: tuple[str, ...]


def _body_shape(team: Team, endpoint: Endpoint, run_id: str) -> BodyShape | None:
    """The body fields a route takes, read from its refusal of an unknown field; None when
    it reads no body or does not name its fields."""
    probe = "zz_not_a_field"
    for method in endpoint.methods:
        if method in ("GET", "HEAD"):
            continue
        for value in ("1", MODEL, run_id):
            path = _filled(endpoint, value)
            reply = team.request(method, path, user="ada", body={probe: 1})
            if reply.status != 422 or reply.json().get("field") != probe:
                continue
            listed = str(reply.json()["error"]).partition("the fields are ")[2]
            fields = tuple(name.strip() for name in listed.split(","))
            if listed and all(re.fullmatch(r"\w+", name) for name in fields):
                return BodyShape(method, path, fields)
    return None


def _segment(data: st.DataObject, run_id: str) -> str:
    if data.draw(st.integers(0, 9), label="raw segment?") == 9:
        return data.draw(RAW_SEGMENTS, label="raw segment")
    value = data.draw(PATH_VALUES, label="path value")
    value = run_id if value == RUN else value
    safe = data.draw(st.sampled_from(["", "/", "./", ":@!$&'()*+,;=~"]), label="left unescaped")
    return quote(value, safe=safe, errors="surrogatepass")


def _url(endpoint: Endpoint, data: st.DataObject, run_id: str) -> str:
    path = endpoint.path
    for name in endpoint.params:
        path = path.replace("{" + name + "}", _segment(data, run_id), 1)
    if data.draw(st.integers(0, 9), label="path suffix?") == 9:
        path += data.draw(st.sampled_from(["/", "/x", "/..", "//"]), label="path suffix")
    query = data.draw(QUERIES, label="query")
    return (f"{path}?{query}" if query else path)[:MAX_URL]


def _check(team: Team, reply: Reply, method: str) -> None:
    """What every answer must be, whatever was asked."""
    text = reply.body.decode("utf-8", "replace")
    head = "\n".join(f"{k}: {v}" for k, v in reply.headers.items())
    assert reply.status < 500, f"{reply.status}: {text[:2000]}"
    assert "Traceback" not in text, text[:2000]
    assert 'File "' not in text, text[:2000]
    for secret in team.tokens.values():
        assert secret not in text, "an answer holds a token's secret"
        assert secret not in head, "an answer's headers hold a token's secret"
    if reply.status >= 400 and method != "HEAD":
        try:
            error = json.loads(reply.body)
        except ValueError:
            error = None
        assert isinstance(error, dict) and "error" in error, (
            f"a {reply.status} answer that is not a JSON error: {text[:2000]!r}"
        )


def _seed(team: Team) -> str:
    """A run with metrics, a model version in dev and staging, and a waiting request for
    prod (request 1), so ids and references that exist let the junk elsewhere in a request
    reach the library. Returns the run's id."""
    with team.client.start_run("pets", architecture="Beta") as run:
        run.log_params({"C": 1.0})
        run.log_metrics({"accuracy": 0.9, "loss": 0.5})
        run.log_metrics({"accuracy": 0.95, "loss": 0.25})
    register(team.client)
    team.client.promote(f"{MODEL}:1", "staging", actor="mia")
    outcome = team.client.promote(f"{MODEL}:1", "prod", reason="seed", actor="mia")
    assert outcome.request is not None
    return run.id


def test_the_routes_are_read_from_the_app() -> None:
    paths = {endpoint.path for endpoint in ENDPOINTS}
    assert {"/health", "/api/v1/promotions", "/api/v1/requests/{id}/approve"} <= paths
    assert all(endpoint.methods for endpoint in ENDPOINTS)
    assert set(JUNK_DEFECTS) | set(EDGE_DEFECTS) <= {str(endpoint) for endpoint in ENDPOINTS}


def _settings(examples: int) -> settings:
    """Reproducible (derandomized, no example database), and no shrinking: every step of it
    would be a real request, and the failing request is printed in full (``note``)."""
    return settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.large_base_example,
        ],
    )


class Target:
    """One route of a running, seeded server, and the bodies to send it. Not a dataclass:
    Hypothesis prints a failing example's arguments, and a dataclass field by field, which
    would print the tokens' secrets and the (huge) strategy."""

    def __init__(
        self, team: Team, endpoint: Endpoint, run_id: str, bodies: st.SearchStrategy[bytes | None]
    ) -> None:
        self.team = team
        self.endpoint = endpoint
        self.run_id = run_id
        self.bodies = bodies

    def __repr__(self) -> str:
        return f"Target({self.endpoint})"


@pytest.fixture
def target(
    team: Team, endpoint: Endpoint, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Target]:
    """``endpoint`` on a seeded server; once the junk is sent, the server still answers."""
    monkeypatch.chdir(tmp_path)  # the seeded run's provenance: not this checkout's git diff
    run_id = _seed(team)
    shape = _body_shape(team, endpoint, run_id)
    yield Target(team, endpoint, run_id, _bodies(shape.fields if shape else BODY_FIELDS))
    health = team.get("/health")
    assert (health.status, health.json()) == (200, {"status": "ok"})
    # A fresh user's token: the junk may have revoked a token or disabled a user, as asked.
    team.client.add_user("after-the-junk", ["viewer"])
    _, secret = team.client.create_token("after-the-junk")
    whoami = team.get("/api/v1/whoami", token=secret)
    assert whoami.status == 200, whoami.body
    assert whoami.json()["name"] == "after-the-junk"


# A failing example holding a thousand list items has a repr over Hypothesis's warning size;
# that warning (an error here, like every warning) would hide the failure it reports.
LARGE_REPRS_ALLOWED = pytest.mark.filterwarnings(
    "ignore:Generating overly large repr:hypothesis.errors.HypothesisWarning"
)


def _send_junk(target: Target, data: st.DataObject) -> None:
    """One malformed request to ``target``'s route, and what its answer must be."""
    team, endpoint = target.team, target.endpoint
    other = data.draw(st.integers(0, 9), label="other method?") == 9
    methods = HTTP_METHODS if other else endpoint.methods
    method = data.draw(st.sampled_from(methods), label="method")
    url = _url(endpoint, data, target.run_id)
    body = data.draw(target.bodies, label="body")
    auth = data.draw(AUTHS, label="auth")
    headers = data.draw(EXTRA_HEADERS, label="headers")
    content_type = data.draw(CONTENT_TYPES, label="content type")
    if content_type is not None:
        headers["Content-Type"] = content_type
    authorization = _authorization(team, auth)
    if authorization is not None:
        headers["Authorization"] = authorization
    note(f"{method} {url[:300]} body={body[:300] if body else body!r}")
    # Failed sign-ins are throttled per address: move the throttle's clock past its window,
    # so every request reaches the route and not only the throttle.
    team.clock.now += FAILURE_WINDOW_S + 1
    reply = team.request(method, url, raw=body, headers=headers)
    _check(team, reply, method)


@pytest.mark.parametrize("endpoint", _cases(RICH, JUNK_DEFECTS))
@LARGE_REPRS_ALLOWED
@_settings(RICH_EXAMPLES)
@given(data=st.data())
def test_no_malformed_request_to_a_route_with_inputs_gets_a_5xx_a_traceback_or_a_secret(
    target: Target, data: st.DataObject
) -> None:
    _send_junk(target, data)


@pytest.mark.parametrize("endpoint", _cases(PLAIN, JUNK_DEFECTS))
@LARGE_REPRS_ALLOWED
@_settings(PLAIN_EXAMPLES)
@given(data=st.data())
def test_no_malformed_request_to_a_plain_route_gets_a_5xx_a_traceback_or_a_secret(
    target: Target, data: st.DataObject
) -> None:
    _send_junk(target, data)


# -- every known field, one edge value at a time ---------------------------------------------

EDGE_TEXT = (
    "",
    " ",
    "\ud800",
    "a\udfffb",
    "\x00",
    "a\x00b",
    "x" * (MAX_TEXT + 1),
    "é" * MAX_TEXT,
    "../../etc/passwd",
    "\u202e\ufeff",
    "%00",
    f"{MODEL}:{2**31}",
    f"{MODEL}:{10**30}",
    f"{MODEL}:-1",
    f"{MODEL}@\x00",
)
EDGE_NUMBERS = (0, -1, 2**31, 2**63, 10**30, -(10**30), 1.5, 1e300, -0.0, math.nan, math.inf)
EDGE_ANY: tuple[Any, ...] = (None, True, False, [], {}, [None], [[]], {"a": 1}, "x", 1)
# A well-formed value of each known field, whose every part is replaced in turn by an edge
# value of its own type; a field not listed here is text.
TEMPLATES: dict[str, Any] = {
    "force": True,
    "ascending": True,
    "only_models": True,
    "if_holds": 1,
    "to_version": 1,
    "limit": 1,
    "offset": 1,
    "metrics": ["accuracy"],
    "metric_ranges": [{"key": "accuracy", "low": 0.5, "high": 1.0}],
    "tags": [["a", "b"]],
}
# Values for required fields, so that an edge value elsewhere reaches the library (a required
# field not listed gets the model's name).
DEFAULTS = {"reference": f"{MODEL}:1", "to": "staging", "model": MODEL, "environment": "staging"}


def _variants(template: Any) -> list[Any]:
    """``template`` with each of its parts replaced in turn by each edge value of its type."""
    if isinstance(template, bool):
        return ["true", 1, 0]
    if isinstance(template, str):
        return list(EDGE_TEXT)
    if isinstance(template, int | float):
        return list(EDGE_NUMBERS)
    if isinstance(template, list):
        return [
            [*template[:i], value, *template[i + 1 :]]
            for i, item in enumerate(template)
            for value in _variants(item)
        ] + [template * 1_000]
    if isinstance(template, dict):
        return [
            {**template, key: value} for key, item in template.items() for value in _variants(item)
        ]
    return []


def _required(team: Team, shape: BodyShape) -> dict[str, Any]:
    """Values for the fields the route will not go without, learnt by sending it a body
    lacking them: each refusal that names an absent field adds that field."""
    body: dict[str, Any] = {}
    for _ in shape.fields:
        reply = team.request(shape.method, shape.path, user="ada", body=body)
        named = reply.json().get("field") if reply.status == 422 else None
        if named not in shape.fields or named in body:
            break
        body[named] = DEFAULTS.get(named, MODEL)
    return body


def _edge_bodies(fields: tuple[str, ...], required: dict[str, Any]) -> list[dict[str, Any]]:
    """Each field set to each edge value of every type, beside the required fields."""
    return [
        {**required, name: value}
        for name in fields
        for value in [*EDGE_ANY, *_variants(TEMPLATES.get(name, MODEL))]
    ]


BODY_ROUTES = [e for e in ENDPOINTS if set(e.methods) - {"GET", "HEAD"}]


@pytest.mark.parametrize("endpoint", _cases(BODY_ROUTES, EDGE_DEFECTS))
def test_every_field_of_a_body_takes_each_edge_value_without_a_5xx(
    team: Team, endpoint: Endpoint, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each field the route names, beside the fields it requires, set to each edge value of
    every type (lone surrogates, NUL, text over the limit, numbers past 64 bits, NaN, a
    thousand list items), sent by an admin; a route that names no fields (it reads raw
    bytes) gets each edge value as its whole body. Every failing request is listed."""
    monkeypatch.chdir(tmp_path)
    run_id = _seed(team)
    shape = _body_shape(team, endpoint, run_id)
    sent: list[tuple[str, str, Any]]
    if shape is not None:
        required = _required(team, shape)
        sent = [(shape.method, shape.path, body) for body in _edge_bodies(shape.fields, required)]
    else:
        paths = sorted({_filled(endpoint, value) for value in ("1", MODEL, run_id, EMPTY_SHA256)})
        methods = [method for method in endpoint.methods if method not in ("GET", "HEAD")]
        values = [*EDGE_ANY, *EDGE_TEXT, *EDGE_NUMBERS]
        sent = [(method, path, value) for method in methods for path in paths for value in values]
    failures = []
    for method, path, body in sent:
        raw = json.dumps(body).encode("utf-8", "surrogatepass")
        team.clock.now += FAILURE_WINDOW_S + 1
        reply = team.request(method, path, user="ada", raw=raw)
        try:
            _check(team, reply, method)
        except AssertionError:
            failures.append(f"{method} {path} {raw[:200]!r} -> {reply.status} {reply.body[:300]!r}")
    assert not failures, f"{len(failures)} failing requests:\n" + "\n".join(failures[:20])
    health = team.get("/health")
    assert (health.status, health.json()) == (200, {"status": "ok"})
