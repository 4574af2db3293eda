"""Fingerprints of a run's components and the lineage each is labelled in.

A lineage is where ``MAJOR.MINOR`` labels count up: data per dataset and role,
code and params per experiment, the environment per project. The *shape*
decides the major number (schema, parameter keys, architecture, Python
version); the full content decides the minor.
"""

from __future__ import annotations

import functools
import hashlib
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from modelrail.entities import ComponentSpec
from modelrail.tracking.provenance import Provenance, capture_environment
from modelrail.tracking.sources import DataLocation

if TYPE_CHECKING:
    from modelrail.tracking.datasets import DatasetFingerprint


def _sha256_json(value: Any) -> str:
    from modelrail.store.codec import dumps

    return hashlib.sha256(dumps(value).encode()).hexdigest()


def code_component(
    experiment: str, architecture: str | None, provenance: Provenance
) -> ComponentSpec:
    git = provenance.git
    entry = provenance.entry_point
    content: dict[str, Any] = {
        "architecture": architecture,
        "commit": git.commit if git else None,
        "diff_sha256": git.diff_sha256 if git else None,
        # Outside git (or for an uncommitted script) the script's bytes are the code.
        "script_sha256": None if git and not git.dirty and git.commit else entry.script_sha256,
    }
    untracked = provenance.code_snapshot.untracked_sha256 if provenance.code_snapshot else None
    if untracked is not None:
        # Only when there are any, so runs without untracked files keep their labels.
        content["untracked_sha256"] = untracked
    details = {
        "architecture": architecture,
        "commit": content["commit"],
        "branch": git.branch if git else None,
        "dirty": git.dirty if git else None,
        "script": entry.script,
    }
    return ComponentSpec(
        role="code",
        kind="code",
        lineage=f"code:{experiment}",
        fingerprint=_sha256_of_items(tuple(sorted(content.items()))),
        shape_fingerprint=_sha256_of_items((("architecture", architecture),)),
        details=details,
    )


@functools.lru_cache(maxsize=256)
def _sha256_of_items(items: tuple[tuple[str, Any], ...]) -> str:
    # Cached: a loop of runs in one process fingerprints the same code again and again.
    return _sha256_json(dict(items))


def params_component(experiment: str, params: Mapping[str, Any]) -> ComponentSpec:
    return ComponentSpec(
        role="params",
        kind="params",
        lineage=f"params:{experiment}",
        fingerprint=_sha256_json(dict(params)),
        shape_fingerprint=_sha256_json(sorted(params)),
        details={"keys": sorted(params)},
    )


@functools.cache
def environment_component(project: str) -> ComponentSpec:
    """The interpreter and every installed package; the same for a whole process."""
    env = capture_environment()
    content = {
        "python": env.python_version,
        "implementation": env.python_implementation,
        "os": env.os,
        "machine": env.machine,
        "packages": env.packages,
    }
    return ComponentSpec(
        role="environment",
        kind="environment",
        lineage=f"environment:{project}",
        fingerprint=_sha256_json(content),
        shape_fingerprint=_sha256_json({"python": env.python_minor, "os": env.os}),
        details=content,
    )


def data_component(
    role: str,
    dataset: str,
    fingerprint: DatasetFingerprint,
    location: DataLocation | None = None,
) -> ComponentSpec:
    """``location``: where the data was read from, when it was not read from a file given to
    ``log_dataset`` itself (that file is the location then)."""
    if location is None and os.path.isabs(fingerprint.source):  # read from that file
        location = DataLocation(fingerprint.source, None)
    return ComponentSpec(
        role=f"data:{role}",
        kind="data",
        lineage=f"data:{dataset}/{role}",
        fingerprint=fingerprint.sha256,
        shape_fingerprint=fingerprint.schema_sha256,
        details={
            "dataset": dataset,
            "role": role,
            "rows": fingerprint.rows,
            "schema": [list(column) for column in fingerprint.schema],
            "source": fingerprint.source,
            "location": None if location is None else location.place,
            "location_sha256": None if location is None else location.sha256,
        },
    )
