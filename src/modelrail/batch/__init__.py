"""Batch scoring: read inputs as Arrow batches, score them with one verified model version,
write the predictions into a database, Redis or Parquet exactly once, on demand, on a
schedule or when files arrive.

``from modelrail.batch import JobSpec, run_batch`` is the Python entry point; the names are
loaded on first use, so importing this package stays cheap for the command line.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "JobSpec",
    "Scheduler",
    "create_schedule",
    "delete_schedule",
    "list_schedules",
    "resume_batch",
    "run_batch",
]

_HOMES = {
    "JobSpec": "modelrail.batch.spec",
    "run_batch": "modelrail.batch.runner",
    "resume_batch": "modelrail.batch.runner",
    "Scheduler": "modelrail.batch.scheduler",
    "create_schedule": "modelrail.batch.schedules",
    "delete_schedule": "modelrail.batch.schedules",
    "list_schedules": "modelrail.batch.schedules",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'modelrail.batch' has no attribute {name!r}")
    return getattr(importlib.import_module(home), name)
