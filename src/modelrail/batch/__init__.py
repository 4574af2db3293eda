"""Batch scoring: read inputs as Arrow batches, score them with one verified model version,
write the predictions into a database, Redis or Parquet exactly once, on demand, on a
schedule or when files arrive.

``from modelrail.batch import JobSpec, run_batch`` is the Python entry point; the names are
loaded on first use, so importing this package stays cheap for the command line.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

# Arrow's jemalloc pool, for C++ allocations too, when pyarrow is not loaded yet and nothing
# chose a pool: it reuses freed batches' memory where the default (mimalloc) faults in fresh
# pages, which the benchmark measured as faster scoring and a peak 20-30 MB lower. Arrow
# reads the variable once, when pyarrow is first imported.
if sys.platform.startswith("linux") and "pyarrow" not in sys.modules:
    os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "jemalloc")

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
