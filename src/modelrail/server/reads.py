"""The team server's read routes beyond models and environments: a version by reference,
the environments with their policy, the model tracker, runs, experiments and metric series.

Each takes the server's ``Client`` and the request, checks what the request sends, and returns
what the library returns; ``app`` signs the request in and checks ``read`` first.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from starlette.requests import Request

from modelrail.client import Client
from modelrail.errors import InvalidRequestError
from modelrail.remote.decode import decode_body
from modelrail.server import payload
from modelrail.store.tracker_query import TrackerQuery

MAX_PAGE = 10_000
# Filters a query may hold: each becomes a clause, and a database limits their nesting.
MAX_LIST = 100
TRACKER_FIELDS = tuple(f.name for f in dataclasses.fields(TrackerQuery))


def model_version(client: Client, request: Request) -> Any:
    reference = payload.checked_text("reference", request.path_params["reference"])
    return client.get_model_version(reference)


def environments(client: Client, request: Request) -> Any:
    return client.environments()


async def tracker_query(request: Request) -> TrackerQuery:
    """The body as a ``TrackerQuery`` (its fields, by name), bounded."""
    body = await payload.read_object(request, TRACKER_FIELDS)
    return checked_query(decode_body(TrackerQuery, body, "body"))


def checked_query(query: TrackerQuery) -> TrackerQuery:
    """``query`` when a store can answer it: a bounded page, few filters, storable text."""
    if not 0 < query.limit <= MAX_PAGE or not 0 <= query.offset <= 2**62:
        raise InvalidRequestError(
            f"'limit' must be 1-{MAX_PAGE:,} and 'offset' 0 or more", field="limit"
        )
    lists = {"metrics": query.metrics, "metric_ranges": query.metric_ranges, "tags": query.tags}
    for field, items in lists.items():
        if len(items) > MAX_LIST:
            raise InvalidRequestError(f"{field!r} has more than {MAX_LIST} items", field=field)
    texts = [query.experiment, query.model, query.status, query.sort, *query.metrics]
    texts += [r.key for r in query.metric_ranges]
    texts += [text for pair in query.tags for text in pair]
    for text in texts:
        if text is not None:
            payload.checked_text("body", text)
    return query


def run(client: Client, request: Request) -> Any:
    return client.get_run(_run_id(request))


def experiments(client: Client, request: Request) -> Any:
    return client.experiments()


def metric_history(client: Client, request: Request) -> Any:
    return client.metric_history(_run_id(request), payload.query_text(request, "key"))


def _run_id(request: Request) -> str:
    run_id = payload.checked_text("run", request.path_params["run"])
    if not run_id.isascii() or not run_id.isalnum():
        raise InvalidRequestError("a run id is letters and digits", field="run")
    return run_id


def datasets(client: Client, request: Request) -> Any:
    return client.datasets()


def metric_names(client: Client, request: Request) -> Any:
    return client.metric_names()


async def extremes_request(request: Request) -> tuple[TrackerQuery, list[str]]:
    """The body ``{"query": {TrackerQuery fields}, "keys": [metric, ...]}``, bounded."""
    body = await payload.read_object(request, ("query", "keys"))
    query = checked_query(decode_body(TrackerQuery, body.get("query") or {}, "query"))
    keys = decode_body(list[str], body.get("keys") or [], "keys")
    if len(keys) > MAX_LIST:
        raise InvalidRequestError(f"'keys' has more than {MAX_LIST} items", field="keys")
    for key in keys:
        payload.checked_text("keys", key)
    return query, keys
