"""Batch scoring: recent batch runs and the schedules (``/batch``), and one run with its
spec, row counts, duration, error and what it scored (``/batch/{id}``)."""

from __future__ import annotations

import json

from starlette.responses import Response

from modelrail.batch.schedules import timing_of
from modelrail.entities import BATCH_STATUSES
from modelrail.errors import InvalidInputError
from modelrail.ui.state import Page

RECENT_RUNS = 100


def batch(page: Page) -> Response:
    status = page.param("status")
    if status is not None and status not in BATCH_STATUSES:
        raise InvalidInputError(
            f"status must be one of {', '.join(BATCH_STATUSES)}, not {status!r}"
        )
    client = page.client
    runs = client.batch_runs(
        model=page.param("model"), status=status, job=page.param("job"), limit=RECENT_RUNS
    )
    schedules = []
    for item in client.batch_schedules():
        schedule = item.schedule
        if schedule.kind != "cron":
            next_run = "on arrival"
        elif not schedule.enabled:
            next_run = "disabled"
        else:
            next_run = timing_of(schedule).describe(schedule.next_run_at)
        schedules.append((item, next_run))
    return page.render(
        "batch.html",
        title="Batch scoring",
        runs=runs,
        schedules=schedules,
        status_filter=status,
        statuses=BATCH_STATUSES,
        limit=RECENT_RUNS,
    )


def batch_run(page: Page) -> Response:
    record = page.client.batch_run(page.path_param("run_id"))
    try:
        spec = json.dumps(json.loads(record.spec), indent=2, sort_keys=True)
    except ValueError:
        spec = record.spec
    profile = page.client.batch_profile(record.id)  # what it scored: inputs and predictions
    title = f"Batch run {record.id[:12]}"
    return page.render("batch_run.html", title=title, run=record, spec=spec, profile=profile)
