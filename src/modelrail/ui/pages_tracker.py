"""The tracker page (``/``): the model tracker table, sorted, filtered and paged by the
server from the query string, with the best value of each metric column marked.

Query string: ``experiment``, ``model``, ``status``, ``metric`` (a column, repeatable),
``min:METRIC`` / ``max:METRIC`` (a range), ``tag`` (``key=value`` or ``key``, repeatable),
``sort`` (``started``, ``version``, ``component:ROLE`` or a metric), ``order``
(``asc`` / ``desc``) and ``page`` (from 1; 50 rows a page).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from urllib.parse import urlencode

from starlette.responses import Response

from modelrail.entities import RUN_STATUSES, TrackerRow
from modelrail.errors import InvalidInputError, NotFoundError
from modelrail.store.tracker_query import COMPONENT_SORT_PREFIX, MetricRange, TrackerQuery
from modelrail.tracking.tracker_columns import ROLE_COLUMNS, cells, header, lower_is_better
from modelrail.ui.state import Page

PAGE_SIZE = 50
_PAGE_LINKS = 2  # pages shown either side of the current one


@dataclass(frozen=True)
class Column:
    label: str
    test_id: str
    sort: str | None  # the ``sort`` value that orders by this column
    metric: str | None = None
    sorted: str | None = None  # "asc" / "desc" when the table is sorted by this column
    link: str | None = None  # the header's sort link


@dataclass(frozen=True)
class Cell:
    text: str
    link: str | None = None
    best: bool = False
    metric: str | None = None


@dataclass(frozen=True)
class Filters:
    query: TrackerQuery
    chosen_metrics: tuple[str, ...]
    ranges: dict[str, tuple[str, str]]  # metric -> (min text, max text), as typed
    tags: tuple[str, ...]
    page: int


def tracker(page: Page) -> Response:
    filters = parse_filters(page)
    client = page.client
    result = client.tracker(filters.query)
    pages = max(1, math.ceil(result.total / PAGE_SIZE))
    if filters.page > pages:
        raise NotFoundError(
            f"page {filters.page} does not exist: {result.total} rows make {pages} page(s)"
        )
    keys = list(result.metric_keys)
    keys += [k for k in filters.ranges if k not in keys]
    policy = client.policy
    lower = {key: lower_is_better(key, policy) for key in keys}
    extremes = client.metric_extremes(filters.query, keys)
    best = {k: (low if lower[k] else high) for k, (low, high) in extremes.items()}
    columns = _columns(page, filters, keys, lower)
    rows = [(row, _cells(row, keys, best)) for row in result.rows]
    return page.render(
        "tracker.html",
        title="Model tracker",
        filters=filters,
        columns=columns,
        rows=rows,
        total=result.total,
        first_row=filters.query.offset + 1,
        last_row=filters.query.offset + len(result.rows),
        page_number=filters.page,
        pages=pages,
        page_links=_page_links(page, filters.page, pages),
        prev_link=_page_link(page, filters.page - 1) if filters.page > 1 else None,
        next_link=_page_link(page, filters.page + 1) if filters.page < pages else None,
        metric_keys=keys,
        lower=lower,
        all_metrics=client.metric_names(),
        experiments=[e.name for e in client.experiments()],
        models=[m.name for m in client.list_models()],
        statuses=RUN_STATUSES,
    )


def parse_filters(page: Page) -> Filters:
    """The query string as a ``TrackerQuery``; a malformed value is a 400 naming it."""
    status = page.param("status")
    if status is not None and status not in RUN_STATUSES:
        raise InvalidInputError(f"status must be one of {', '.join(RUN_STATUSES)}, not {status!r}")
    number = _page_number(page.param("page"))
    order = page.param("order") or "desc"
    if order not in ("asc", "desc"):
        raise InvalidInputError(f"order must be 'asc' or 'desc', not {order!r}")
    ranges: dict[str, tuple[str, str]] = {}
    for name, value in page.request.query_params.multi_items():
        bound, _, key = name.partition(":")
        if bound in ("min", "max") and key and value.strip():
            low, high = ranges.get(key, ("", ""))
            ranges[key] = (value.strip(), high) if bound == "min" else (low, value.strip())
    metric_ranges = tuple(
        MetricRange(key, _number(f"min:{key}", low), _number(f"max:{key}", high))
        for key, (low, high) in ranges.items()
    )
    tags = tuple(page.params("tag"))
    chosen = tuple(dict.fromkeys(page.params("metric")))
    query = TrackerQuery(
        experiment=page.param("experiment"),
        model=page.param("model"),
        status=status,
        metrics=chosen,
        sort=page.param("sort") or "started",
        ascending=order == "asc",
        limit=PAGE_SIZE,
        offset=(number - 1) * PAGE_SIZE,
        metric_ranges=metric_ranges,
        tags=tuple(_tag(text) for text in tags),
    )
    return Filters(query, chosen, ranges, tags, number)


def _page_number(text: str | None) -> int:
    if text is None:
        return 1
    if not text.isdigit() or int(text) < 1:
        raise InvalidInputError(f"page must be a whole number from 1, not {text!r}")
    return int(text)


def _number(field: str, text: str) -> float | None:
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise InvalidInputError(f"{field} must be a number, not {text!r}") from None
    if not math.isfinite(value):
        raise InvalidInputError(f"{field} must be a finite number, not {text!r}")
    return value


def _tag(text: str) -> tuple[str, str | None]:
    key, equals, value = text.partition("=")
    if not key.strip():
        raise InvalidInputError(f"tag filter {text!r} needs a key: key=value or key")
    return key.strip(), (value.strip() if equals else None)


def _columns(page: Page, filters: Filters, keys: list[str], lower: dict[str, bool]) -> list[Column]:
    """The columns of ``header()`` with their sort keys, plus when the run started."""
    labels = header(keys)
    role_sorts = [COMPONENT_SORT_PREFIX + role for role, _ in ROLE_COLUMNS]
    sorts: list[str | None] = [
        "version",
        "version",
        COMPONENT_SORT_PREFIX + "code",
        None,
        *role_sorts,
        *keys,
        None,
        None,
    ]
    ids = [
        "model",
        "version",
        "code",
        "dataset",
        *(label for _, label in ROLE_COLUMNS),
        *(f"metric-{k}" for k in keys),
        "run",
        "status",
    ]
    metrics: list[str | None] = [*([None] * (4 + len(ROLE_COLUMNS))), *keys, None, None]
    built = [
        _sortable(page, filters, label, test_id, sort, metric, lower)
        for label, test_id, sort, metric in zip(labels, ids, sorts, metrics, strict=True)
    ]
    built.append(_sortable(page, filters, "started", "started", "started", None, lower))
    return built


def _sortable(
    page: Page,
    filters: Filters,
    label: str,
    test_id: str,
    sort: str | None,
    metric: str | None,
    lower: dict[str, bool],
) -> Column:
    if sort is None:
        return Column(label, test_id, None, metric)
    query = filters.query
    current = ("asc" if query.ascending else "desc") if query.sort == sort else None
    if current is not None:
        following = "desc" if current == "asc" else "asc"
    else:  # first click: best first for a metric, newest first otherwise
        following = "asc" if metric is not None and lower.get(metric) else "desc"
    pairs = [
        (k, v)
        for k, v in page.request.query_params.multi_items()
        if k not in ("sort", "order", "page") and v != ""
    ]
    link = "/?" + urlencode([*pairs, ("sort", sort), ("order", following)])
    return Column(label, test_id, sort, metric, current, link)


def _cells(row: TrackerRow, keys: list[str], best: dict[str, float]) -> list[Cell]:
    texts = cells(row, keys, plain=False)
    model_link = f"/models/{row.model}" if row.model else None
    version_link = f"/models/{row.model}#version-{row.version}" if row.version else None
    made = [Cell(texts[0], model_link), Cell(texts[1], version_link)]
    made += [Cell(text) for text in texts[2 : 4 + len(ROLE_COLUMNS)]]
    first_metric = 4 + len(ROLE_COLUMNS)
    for offset, key in enumerate(keys):
        value = row.metrics.get(key)
        made.append(
            Cell(texts[first_metric + offset], best=value is not None and value == best.get(key))
        )
    made.append(Cell(texts[-2], f"/runs/{row.run_id}"))
    made.append(Cell(texts[-1]))
    return made


def _page_links(page: Page, current: int, pages: int) -> list[tuple[int | None, str | None]]:
    """(number, link) for page 1, the pages around ``current`` and the last; None is a gap."""
    wanted = sorted(
        {1, pages, *range(max(1, current - _PAGE_LINKS), min(pages, current + _PAGE_LINKS) + 1)}
    )
    links: list[tuple[int | None, str | None]] = []
    previous = 0
    for number in wanted:
        if number > previous + 1:
            links.append((None, None))
        links.append((number, _page_link(page, number)))
        previous = number
    return links


def _page_link(page: Page, number: int) -> str:
    pairs = [(k, v) for k, v in page.request.query_params.multi_items() if k != "page"]
    return "/?" + urlencode([*pairs, ("page", str(number))])
