"""Opening a run on a client (``Client`` or ``RemoteClient``): ``begin_run``."""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping, MutableMapping
from typing import TYPE_CHECKING

from modelrail.refs import validate_name
from modelrail.tracking.ports import RunHost

if TYPE_CHECKING:
    from modelrail.tracking.run import ActiveRun

__all__ = ["begin_run"]


def begin_run(
    host: RunHost,
    *,
    project: str,
    user: str,
    experiment_ids: MutableMapping[str, int],
    experiment: str,
    architecture: str | None,
    name: str | None,
    tags: Mapping[str, str] | None,
) -> ActiveRun:
    """Record a new run (its code and environment captured now) and return it, open."""
    from modelrail.tracking.components import code_component, environment_component
    from modelrail.tracking.provenance import capture_provenance
    from modelrail.tracking.run import ActiveRun
    from modelrail.tracking.snapshot import store_code_snapshot

    validate_name("experiment", experiment)
    experiment_id = experiment_ids.get(experiment)
    if experiment_id is None:
        experiment_id = host.runs.get_or_create_experiment(experiment).id
        experiment_ids[experiment] = experiment_id
    run_id = uuid.uuid4().hex
    provenance = capture_provenance()
    # Stored before the run that names them, so no run ever points at a missing blob.
    snapshot_records = store_code_snapshot(host.artifacts, provenance.code_snapshot)
    host.runs.create_run(
        run_id=run_id,
        experiment_id=experiment_id,
        name=name or f"{experiment}-{run_id[:8]}",
        architecture=architecture,
        user=user,
        started_at=time.time(),
        provenance_json=provenance.json_text,
        tags={str(k): str(v) for k, v in (tags or {}).items()},
        components=[
            code_component(experiment, architecture, provenance),
            environment_component(project),
        ],
    )
    if snapshot_records:
        host.runs.add_artifacts(run_id, snapshot_records)
    return ActiveRun(host, run_id, experiment)
