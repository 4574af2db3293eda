"""Plain records of what one store hands to another: runs, model versions and history.

These are the store-independent shapes of modelrail's records, with their original ids,
version numbers, labels, times and authors, and nothing a store assigns for itself (row
ids, table names). ``modelrail export`` writes them into a bundle, ``modelrail import``
reads them back, and any other importer (an MLflow store, say) builds them from what it
reads; ``portability.ingest`` writes them into a store.

Every record converts to and from plain JSON (``to_json`` / ``from_json``). ``from_json``
is strict: a missing or mistyped field raises ``InvalidInputError`` naming where it sits
(``runs/5e1f....json: metrics[3].step``), so a damaged record is refused, never half read.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from modelrail.entities import ArtifactRecord, MetricPoint
from modelrail.errors import InvalidInputError

JSON = Any


@dataclass(frozen=True)
class ComponentRecord:
    """One versioned input of a run: its content fingerprint and, where the source store
    labelled it, that ``major.minor`` label. ``major``/``minor`` None: the receiving store
    labels it by its own rules (an importer that knows no labels)."""

    role: str
    kind: str
    lineage: str
    fingerprint: str
    shape_fingerprint: str
    details: Mapping[str, JSON]
    major: int | None = None
    minor: int | None = None
    created_at: float | None = None

    @property
    def label(self) -> str | None:
        return None if self.major is None or self.minor is None else f"{self.major}.{self.minor}"

    def to_json(self) -> dict[str, JSON]:
        return _plain(self)

    @classmethod
    def from_json(cls, data: JSON, where: str) -> ComponentRecord:
        f = _Fields(data, where)
        return cls(
            role=f.text("role"),
            kind=f.text("kind"),
            lineage=f.text("lineage"),
            fingerprint=f.text("fingerprint"),
            shape_fingerprint=f.text("shape_fingerprint"),
            details=f.mapping("details"),
            major=f.whole("major", optional=True),
            minor=f.whole("minor", optional=True),
            created_at=f.number("created_at", optional=True),
        )


@dataclass(frozen=True)
class RunRecord:
    """A run as it was recorded: every metric point (steps and times), params, tags,
    provenance, components and the artifacts it logged (by sha256)."""

    id: str
    experiment: str
    name: str
    status: str
    user: str
    started_at: float
    ended_at: float | None = None
    error: str | None = None
    architecture: str | None = None
    provenance: Mapping[str, JSON] = field(default_factory=dict)
    params: Mapping[str, JSON] = field(default_factory=dict)
    tags: Mapping[str, str] = field(default_factory=dict)
    metrics: tuple[MetricPoint, ...] = ()
    components: tuple[ComponentRecord, ...] = ()
    artifacts: tuple[ArtifactRecord, ...] = ()
    experiment_created_at: float | None = None

    @property
    def short_id(self) -> str:
        return self.id[:8]

    def to_json(self) -> dict[str, JSON]:
        plain = _plain(self)
        # Columns, not one object per point: a run of 100,000 points stays small.
        plain["metrics"] = {
            "key": [p.key for p in self.metrics],
            "value": [p.value for p in self.metrics],
            "step": [p.step for p in self.metrics],
            "timestamp": [p.timestamp for p in self.metrics],
        }
        return plain

    @classmethod
    def from_json(cls, data: JSON, where: str) -> RunRecord:
        f = _Fields(data, where)
        return cls(
            id=f.text("id"),
            experiment=f.text("experiment"),
            experiment_created_at=f.number("experiment_created_at", optional=True),
            name=f.text("name"),
            status=f.text("status"),
            architecture=f.text("architecture", optional=True),
            user=f.text("user"),
            started_at=f.number("started_at"),
            ended_at=f.number("ended_at", optional=True),
            error=f.text("error", optional=True),
            provenance=f.mapping("provenance"),
            params=f.mapping("params"),
            tags={k: _text(v, f"{where}: tags.{k}") for k, v in f.mapping("tags").items()},
            metrics=_metric_columns(f.mapping("metrics"), f"{where}: metrics"),
            components=tuple(
                ComponentRecord.from_json(c, f"{where}: components[{i}]")
                for i, c in enumerate(f.sequence("components"))
            ),
            artifacts=tuple(
                _artifact(a, f"{where}: artifacts[{i}]")
                for i, a in enumerate(f.sequence("artifacts"))
            ),
        )


@dataclass(frozen=True)
class VersionRecord:
    """A model version as registered: number, run, model file (by sha256), signature,
    example, author and time; ``forms`` is its predictor forms record, when it has one."""

    model: str
    version: int
    run_id: str | None
    flavor: str
    artifact_sha256: str
    artifact_size: int
    signature: Mapping[str, JSON]
    input_example: JSON
    flavor_details: Mapping[str, JSON]
    created_at: float
    created_by: str
    description: str = ""
    forms: Mapping[str, JSON] | None = None
    model_created_at: float | None = None
    # What the version is monitored against (monitoring.profiles.ReferenceProfile's JSON);
    # bundles written before profiles have none.
    reference_profile: Mapping[str, JSON] | None = None

    @property
    def reference(self) -> str:
        return f"{self.model}:{self.version}"

    def to_json(self) -> dict[str, JSON]:
        return _plain(self)

    @classmethod
    def from_json(cls, data: JSON, where: str) -> VersionRecord:
        f = _Fields(data, where)
        forms = f.value("forms")
        profile = data.get("reference_profile") if isinstance(data, Mapping) else None
        return cls(
            model=f.text("model"),
            model_created_at=f.number("model_created_at", optional=True),
            version=f.whole("version"),
            run_id=f.text("run_id", optional=True),
            flavor=f.text("flavor"),
            artifact_sha256=f.text("artifact_sha256"),
            artifact_size=f.whole("artifact_size"),
            signature=f.mapping("signature"),
            input_example=f.value("input_example"),
            flavor_details=f.mapping("flavor_details"),
            created_at=f.number("created_at"),
            created_by=f.text("created_by"),
            description=f.text("description"),
            forms=None if forms is None else f.mapping("forms"),
            reference_profile=None if profile is None else f.mapping("reference_profile"),
        )


@dataclass(frozen=True)
class HistoryRecord:
    """One event of a source store's environment history (promotion, approval, rollback).

    A receiving store keeps it as the version's *imported history*, apart from its own
    history: a promotion in another store passed that store's gates, not these, so it never
    counts here (no version is placed in an environment by an import). ``origin`` names the
    store where it happened and ``origin_id`` its number there, which together identify it."""

    origin: str
    origin_id: int
    model: str
    environment: str
    action: str
    from_version: int | None
    to_version: int | None
    actor: str
    reason: str
    created_at: float
    gates: tuple[Mapping[str, JSON], ...] = ()
    forced: bool = False
    request_id: int | None = None
    policy_version: int | None = None

    def to_json(self) -> dict[str, JSON]:
        return _plain(self)

    @classmethod
    def from_json(cls, data: JSON, where: str) -> HistoryRecord:
        f = _Fields(data, where)
        return cls(
            origin=f.text("origin"),
            origin_id=f.whole("origin_id"),
            model=f.text("model"),
            environment=f.text("environment"),
            action=f.text("action"),
            from_version=f.whole("from_version", optional=True),
            to_version=f.whole("to_version", optional=True),
            actor=f.text("actor"),
            reason=f.text("reason"),
            created_at=f.number("created_at"),
            gates=tuple(
                _mapping(g, f"{where}: gates[{i}]") for i, g in enumerate(f.sequence("gates"))
            ),
            forced=f.flag("forced"),
            request_id=f.whole("request_id", optional=True),
            policy_version=f.whole("policy_version", optional=True),
        )


@dataclass(frozen=True)
class ImportSource:
    """Where imported records came from, as the receiving store's history names it:
    ``kind`` (``bundle``, ``mlflow``), ``name`` (a file or URL), the store they were
    read from, and the sha256 of the file when there is one."""

    kind: str
    name: str
    store: str
    sha256: str | None = None

    def describe(self) -> str:
        return f"{self.kind} {self.name} (store {self.store})"


def _plain(record: Any) -> dict[str, JSON]:
    """A record's fields as plain JSON values (records within it too)."""
    return {f.name: _plain_value(getattr(record, f.name)) for f in dataclasses.fields(record)}


def _plain_value(value: Any) -> JSON:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _plain(value)
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, tuple):
        return [_plain_value(v) for v in value]
    return value


# -- strict reading --------------------------------------------------------------------


class _Fields:
    """Typed access to one JSON object's fields; every refusal names the field."""

    def __init__(self, data: JSON, where: str) -> None:
        self.data = _mapping(data, where)
        self.where = where

    def value(self, name: str) -> JSON:
        if name not in self.data:
            raise InvalidInputError(f"{self.where}: field {name!r} is missing")
        return self.data[name]

    def _fault(self, name: str, expected: str) -> InvalidInputError:
        return InvalidInputError(
            f"{self.where}: field {name!r} should be {expected}, not {self.data.get(name)!r}"
        )

    def text(self, name: str, *, optional: bool = False) -> Any:
        found = self.value(name)
        if isinstance(found, str) or (optional and found is None):
            return found
        raise self._fault(name, "text")

    def whole(self, name: str, *, optional: bool = False) -> Any:
        found = self.value(name)
        if (isinstance(found, int) and not isinstance(found, bool)) or (optional and found is None):
            return found
        raise self._fault(name, "a whole number")

    def number(self, name: str, *, optional: bool = False) -> Any:
        found = self.value(name)
        if optional and found is None:
            return None
        if isinstance(found, int | float) and not isinstance(found, bool) and math.isfinite(found):
            return float(found)
        raise self._fault(name, "a number")

    def flag(self, name: str) -> bool:
        found = self.value(name)
        if isinstance(found, bool):
            return found
        raise self._fault(name, "true or false")

    def mapping(self, name: str) -> Mapping[str, JSON]:
        found = self.value(name)
        if isinstance(found, Mapping):
            return found
        raise self._fault(name, "an object")

    def sequence(self, name: str) -> Sequence[JSON]:
        found = self.value(name)
        if isinstance(found, list):
            return found
        raise self._fault(name, "a list")


def _mapping(data: JSON, where: str) -> Mapping[str, JSON]:
    if not isinstance(data, Mapping):
        raise InvalidInputError(f"{where}: expected an object, not {type(data).__name__}")
    return data


def _text(value: JSON, where: str) -> str:
    if not isinstance(value, str):
        raise InvalidInputError(f"{where}: should be text, not {value!r}")
    return value


def _artifact(data: JSON, where: str) -> ArtifactRecord:
    f = _Fields(data, where)
    return ArtifactRecord(path=f.text("path"), sha256=f.text("sha256"), size=f.whole("size"))


def _metric_columns(data: Mapping[str, JSON], where: str) -> tuple[MetricPoint, ...]:
    f = _Fields(data, where)
    keys, values = f.sequence("key"), f.sequence("value")
    steps, times = f.sequence("step"), f.sequence("timestamp")
    if not len(keys) == len(values) == len(steps) == len(times):
        raise InvalidInputError(
            f"{where}: the key, value, step and timestamp lists differ in length"
        )
    points = []
    for i, (key, value, step, stamp) in enumerate(zip(keys, values, steps, times, strict=True)):
        if not isinstance(key, str):
            raise InvalidInputError(f"{where}: key[{i}] should be text, not {key!r}")
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidInputError(f"{where}: value[{i}] should be a number, not {value!r}")
        if isinstance(step, bool) or not isinstance(step, int):
            raise InvalidInputError(f"{where}: step[{i}] should be a whole number, not {step!r}")
        if isinstance(stamp, bool) or not isinstance(stamp, int | float):
            raise InvalidInputError(f"{where}: timestamp[{i}] should be a number, not {stamp!r}")
        points.append(MetricPoint(key, float(value), step, float(stamp)))
    return tuple(points)
