"""Frozen records that leave the store. Nothing outside ``store/`` sees a table row."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

JSONValue = Any

RUN_STATUSES = ("running", "finished", "failed")
DATA_ROLES = ("train", "validation", "test")
COMPONENT_ROLES = ("code", "data:train", "data:validation", "data:test", "params", "environment")


@dataclass(frozen=True)
class Experiment:
    id: int
    name: str
    created_at: float


@dataclass(frozen=True)
class ComponentVersion:
    """One version of one input of a run, labelled ``MAJOR.MINOR`` within its lineage."""

    id: int
    kind: str
    lineage: str
    fingerprint: str
    shape_fingerprint: str
    major: int
    minor: int
    details: Mapping[str, JSONValue]
    created_at: float

    @property
    def label(self) -> str:
        return f"{self.major}.{self.minor}"


@dataclass(frozen=True)
class ComponentSpec:
    """A component's content, fingerprinted but not yet labelled within its lineage."""

    role: str
    kind: str
    lineage: str
    fingerprint: str
    shape_fingerprint: str
    details: Mapping[str, JSONValue]


@dataclass(frozen=True)
class MetricPoint:
    key: str
    value: float
    step: int
    timestamp: float


@dataclass(frozen=True)
class ArtifactRecord:
    path: str
    sha256: str
    size: int


@dataclass(frozen=True)
class ModelVersionRef:
    """The short link from a run to the model version it registered."""

    model: str
    version: int


@dataclass(frozen=True)
class RunOwner:
    """Whose a run is and whether it still takes changes: what a write into it checks."""

    id: str
    user: str
    status: str

    @property
    def short_id(self) -> str:
        return self.id[:8]


@dataclass(frozen=True)
class Run:
    id: str
    experiment: str
    name: str
    status: str
    architecture: str | None
    user: str
    started_at: float
    ended_at: float | None
    error: str | None
    params: Mapping[str, JSONValue]
    metrics: Mapping[str, float]
    tags: Mapping[str, str]
    components: Mapping[str, ComponentVersion]
    provenance: Mapping[str, JSONValue]
    artifacts: tuple[ArtifactRecord, ...] = ()
    model_versions: tuple[ModelVersionRef, ...] = ()

    @property
    def short_id(self) -> str:
        return self.id[:8]

    @property
    def duration(self) -> float | None:
        return None if self.ended_at is None else self.ended_at - self.started_at


@dataclass(frozen=True)
class ColumnSpec:
    """One input or output column: ``dtype`` is float64, int64, bool, string or datetime;
    ``nullable`` says the model scores a row with this value missing (checked when the
    version was registered)."""

    name: str
    dtype: str
    nullable: bool = False

    def to_json(self) -> dict[str, JSONValue]:
        shown: dict[str, JSONValue] = {"name": self.name, "dtype": self.dtype}
        if self.nullable:
            shown["nullable"] = True
        return shown

    @classmethod
    def from_json(cls, data: Mapping[str, JSONValue]) -> ColumnSpec:
        return cls(str(data["name"]), str(data["dtype"]), bool(data.get("nullable", False)))


@dataclass(frozen=True)
class Signature:
    """Input columns a version expects and the shape of what it returns."""

    inputs: tuple[ColumnSpec, ...]
    outputs: tuple[ColumnSpec, ...]
    has_probabilities: bool = False
    classes: tuple[JSONValue, ...] = ()

    def to_json(self) -> dict[str, JSONValue]:
        return {
            "inputs": [c.to_json() for c in self.inputs],
            "outputs": [c.to_json() for c in self.outputs],
            "has_probabilities": self.has_probabilities,
            "classes": list(self.classes),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, JSONValue]) -> Signature:
        return cls(
            inputs=tuple(ColumnSpec.from_json(c) for c in data.get("inputs", [])),
            outputs=tuple(ColumnSpec.from_json(c) for c in data.get("outputs", [])),
            has_probabilities=bool(data.get("has_probabilities", False)),
            classes=tuple(data.get("classes", [])),
        )


@dataclass(frozen=True)
class ModelVersion:
    model: str
    version: int
    run_id: str | None
    flavor: str
    artifact_sha256: str
    artifact_size: int
    signature: Signature
    input_example: JSONValue
    flavor_details: Mapping[str, JSONValue]
    created_at: float
    created_by: str
    description: str = ""
    # The predictor forms built for it (at registration or by ``models compile``): what was
    # tried and which form serves each workload; None for a version without any.
    forms: Mapping[str, JSONValue] | None = None

    @property
    def reference(self) -> str:
        return f"{self.model}:{self.version}"


@dataclass(frozen=True)
class Model:
    name: str
    created_at: float
    latest_version: int | None
    version_count: int


@dataclass(frozen=True)
class TrackerRow:
    """One row of the model tracker: a run and the model version it produced, if any."""

    run_id: str
    experiment: str
    status: str
    started_at: float
    model: str | None
    version: int | None
    architecture: str | None
    dataset: str | None
    labels: Mapping[str, str]
    metrics: Mapping[str, float]
    tags: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class TrackerPage:
    rows: tuple[TrackerRow, ...]
    total: int
    metric_keys: tuple[str, ...]


# -- environments ------------------------------------------------------------------------


@dataclass(frozen=True)
class GateResult:
    gate: str
    passed: bool
    detail: str

    def to_json(self) -> dict[str, JSONValue]:
        return {"gate": self.gate, "passed": self.passed, "detail": self.detail}


@dataclass(frozen=True)
class Holding:
    """The version an environment holds for a model, and since when."""

    model: str
    environment: str
    version: int
    since: float
    revision: int


@dataclass(frozen=True)
class EnvironmentEvent:
    """One line of the append-only history."""

    id: int
    model: str
    environment: str
    action: str  # auto, promote, rollback, request, approve, reject
    from_version: int | None
    to_version: int | None
    actor: str
    reason: str
    gates: tuple[GateResult, ...]
    forced: bool
    request_id: int | None
    created_at: float
    # The shared policy's version that judged this change; None: the project's own file.
    policy_version: int | None = None


@dataclass(frozen=True)
class PolicyRecord:
    """One applied version of the team's shared policy: its canonical TOML and who applied it."""

    version: int
    document: str
    sha256: str
    author: str
    reason: str
    created_at: float


@dataclass(frozen=True)
class ApprovalRequest:
    id: int
    model: str
    version: int
    environment: str
    requested_by: str
    reason: str
    gates: tuple[GateResult, ...]
    status: str  # pending, approved, rejected
    created_at: float
    expires_at: float
    decided_by: str | None
    decided_at: float | None
    decision_reason: str | None


@dataclass(frozen=True)
class PromotionOutcome:
    """What ``promote`` did: changed the holder, or opened an approval request."""

    model: str
    environment: str
    version: int
    previous_version: int | None
    gates: tuple[GateResult, ...]
    event: EnvironmentEvent | None
    request: ApprovalRequest | None

    @property
    def waiting_for_approval(self) -> bool:
        return self.request is not None and self.event is None


# -- batch scoring ---------------------------------------------------------------------

BATCH_STATUSES = ("running", "succeeded", "failed")


@dataclass(frozen=True)
class BatchRun:
    id: str
    job: str | None
    trigger: str
    model: str
    version: int
    reference: str
    engine: str
    spec: str
    status: str
    input_fingerprint: str
    input_description: str
    output: str
    rows_read: int
    rows_written: int
    rows_rejected: int
    checkpoint: str | None
    user: str
    host: str
    pid: int
    started_at: float
    heartbeat_at: float
    finished_at: float | None
    error: str | None
    # JSON: {"input": <profile>, "prediction": <column profile>} of what was scored (or None).
    profile: str | None = None

    @property
    def duration(self) -> float | None:
        return None if self.finished_at is None else self.finished_at - self.started_at

    def is_stale(self, now: float, after: float) -> bool:
        """A running record whose process has not reported for ``after`` seconds was
        killed (or lost its store): it can be resumed."""
        return self.status == "running" and now - self.heartbeat_at > after


# -- identity: users, roles and API tokens ---------------------------------------------


@dataclass(frozen=True)
class RoleGrant:
    """A role a user holds: in one environment, or (``environment`` None) in every one."""

    role: str
    environment: str | None = None

    def __str__(self) -> str:
        return self.role if self.environment is None else f"{self.role} in {self.environment}"


@dataclass(frozen=True)
class User:
    name: str
    created_at: float
    created_by: str
    roles: tuple[RoleGrant, ...] = ()
    disabled_at: float | None = None
    disabled_by: str | None = None

    @property
    def disabled(self) -> bool:
        return self.disabled_at is not None


@dataclass(frozen=True)
class ApiToken:
    """A personal API token as listed: never its secret, nor the secret's hash."""

    id: int
    user: str
    label: str
    created_at: float
    created_by: str
    expires_at: float | None
    revoked_at: float | None
    last_used_at: float | None

    def state(self, now: float) -> str:
        """``revoked``, ``expired`` or ``active`` at time ``now``."""
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and now >= self.expires_at:
            return "expired"
        return "active"


# -- model cards -------------------------------------------------------------------------


@dataclass(frozen=True)
class CardSection:
    """One edit of a free-text section of a model's card (intended use, limitations, ...):
    about one version, or (``version`` None) every version of the model. An empty ``text``
    removes the section; every edit is kept."""

    id: int
    model: str
    version: int | None
    title: str
    text: str
    author: str
    created_at: float
