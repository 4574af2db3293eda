"""A model version's card as data, gathered from its records.

``build_card`` reads what the store knows about one version (the version, its run, the
history of its model, what environments hold now and the owner's free-text sections) through
the public methods of ``Client`` (or of ``RemoteClient``: the same card through a team
server) and returns a ``ModelCard``. ``card_markdown`` renders it; the dashboard renders that
Markdown, so there is one generator.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from modelrail.entities import (
    COMPONENT_ROLES,
    CardSection,
    ComponentVersion,
    EnvironmentEvent,
    GateResult,
    Holding,
    ModelVersion,
    Run,
)
from modelrail.errors import RunNotFoundError
from modelrail.gates import load_risk
from modelrail.refs import Ref
from modelrail.scoring.forms.record import describe, forms_record, library_name
from modelrail.store.environments_repo import HOLDER_ACTIONS

# Metric names that say they were measured on the test data: test_auc, auc_test, test/auc.
_TEST_METRIC = re.compile(r"(^|[_./:-])test($|[_./:-])", re.IGNORECASE)
# Libraries worth naming beside the model's own, when the run's environment recorded them.
_MAIN_PACKAGES = ("numpy", "pandas", "pyarrow", "scikit-learn", "scipy", "modelrail")


class CardReads(Protocol):
    """What a card is read through: ``Client`` and ``RemoteClient`` both offer it."""

    def get_model_version(self, reference: str | Ref) -> ModelVersion: ...

    def get_run(self, run_id: str) -> Run: ...

    def history(
        self, model: str | None = None, environment: str | None = None
    ) -> list[EnvironmentEvent]: ...

    def board(self) -> list[Holding]: ...

    def card_sections(self, model: str, version: int | None = None) -> list[CardSection]: ...


@dataclass(frozen=True)
class DataVersion:
    """One dataset the run recorded: its role, name, version label and shape."""

    role: str
    dataset: str
    label: str
    rows: int | None
    columns: tuple[tuple[str, str], ...]
    source: str | None
    fingerprint: str


@dataclass(frozen=True)
class Decision:
    """One line of the version's promotion history: what was done, by whom, with the gates."""

    action: str
    environment: str
    from_version: int | None
    to_version: int | None
    actor: str
    reason: str
    created_at: float
    gates: tuple[GateResult, ...]
    forced: bool
    request_id: int | None


@dataclass(frozen=True)
class Tenure:
    """A time the version was held by an environment (``until`` None: it still is)."""

    environment: str
    since: float
    until: float | None


@dataclass(frozen=True)
class Code:
    commit: str | None
    branch: str | None
    dirty: bool | None
    remote: str | None
    script: str | None
    label: str | None


@dataclass(frozen=True)
class ModelCard:
    """Everything a card shows about one model version."""

    version: ModelVersion
    estimator: str
    load_risk: str | None
    run: Run | None
    data: tuple[DataVersion, ...]
    params: Mapping[str, Any]
    metrics: Mapping[str, float]
    test_metrics: Mapping[str, float]
    test_data: str | None
    decisions: tuple[Decision, ...]
    tenures: tuple[Tenure, ...]
    held_now: tuple[str, ...]
    predictor: Mapping[str, Any]
    python: str | None
    packages: Mapping[str, str]
    environment_packages: int
    code: Code | None
    sections: tuple[CardSection, ...]

    @property
    def reference(self) -> str:
        return self.version.reference

    def to_json(self) -> dict[str, Any]:
        """The card's data for scripts (``modelrail card --json``)."""
        v = self.version
        run = self.run
        return {
            "model": v.model,
            "version": v.version,
            "flavor": v.flavor,
            "library": library_name(v.flavor),
            "estimator": self.estimator,
            "load_risk": self.load_risk,
            "architecture": run.architecture if run else None,
            "registered_by": v.created_by,
            "registered_at": v.created_at,
            "description": v.description,
            "artifact": {"sha256": v.artifact_sha256, "size": v.artifact_size},
            "signature": v.signature.to_json(),
            "run": None
            if run is None
            else {
                "id": run.id,
                "experiment": run.experiment,
                "name": run.name,
                "user": run.user,
                "status": run.status,
                "started_at": run.started_at,
                "ended_at": run.ended_at,
            },
            "data": [asdict(d) | {"columns": [list(c) for c in d.columns]} for d in self.data],
            "params": dict(self.params),
            "metrics": dict(self.metrics),
            "test_metrics": dict(self.test_metrics),
            "test_data": self.test_data,
            "gates": [
                asdict(d) | {"gates": [g.to_json() for g in d.gates]} for d in self.decisions
            ],
            "environments": {
                "held": [asdict(t) for t in self.tenures],
                "now": list(self.held_now),
            },
            "predictor": dict(self.predictor),
            "packages": {"python": self.python, **self.packages},
            "environment_packages": self.environment_packages,
            "code": None if self.code is None else asdict(self.code),
            "sections": [
                {
                    "title": s.title,
                    "text": s.text,
                    "scope": "model" if s.version is None else "version",
                    "author": s.author,
                    "updated_at": s.created_at,
                }
                for s in self.sections
            ],
        }


def build_card(reads: CardReads, reference: str | Ref) -> ModelCard:
    """The card of the version ``reference`` names (``churn:7``, ``churn@prod``, ``churn``)."""
    version = reads.get_model_version(reference)
    run = _run_of(reads, version)
    history = reads.history(version.model)
    board = reads.board()
    components = run.components if run else {}
    test_component = components.get("data:test")
    metrics = dict(run.metrics) if run else {}
    test_metrics = {k: v for k, v in metrics.items() if _TEST_METRIC.search(k)}
    environment = components.get("environment")
    return ModelCard(
        version=version,
        estimator=str(version.flavor_details.get("estimator") or library_name(version.flavor)),
        load_risk=load_risk(version),
        run=run,
        data=tuple(
            _data_version(components[r])
            for r in COMPONENT_ROLES
            if r.startswith("data:") and r in components
        ),
        params=dict(run.params) if run else {},
        metrics={k: v for k, v in metrics.items() if k not in test_metrics},
        test_metrics=test_metrics,
        test_data=_data_name(test_component) if test_component else None,
        decisions=tuple(_decisions(history, version.version)),
        tenures=tuple(_tenures(history, version.version)),
        held_now=_held_now(board, history, version),
        predictor=describe(forms_record(version), version.flavor),
        python=_python(run, environment),
        packages=_packages(version, environment),
        environment_packages=len(_environment_packages(environment)),
        code=_code(run),
        sections=tuple(reads.card_sections(version.model, version.version)),
    )


def _run_of(reads: CardReads, version: ModelVersion) -> Run | None:
    if version.run_id is None:
        return None
    try:
        return reads.get_run(version.run_id)
    except RunNotFoundError:  # a version carried in without its run
        return None


def _data_name(component: ComponentVersion) -> str:
    dataset = component.details.get("dataset") or component.lineage.removeprefix("data:")
    return f"{dataset} {component.label}"


def _data_version(component: ComponentVersion) -> DataVersion:
    details = component.details
    schema = details.get("schema") or []
    rows = details.get("rows")
    source = details.get("location") or details.get("source")
    return DataVersion(
        role=str(details.get("role") or component.lineage.rpartition("/")[2]),
        dataset=str(details.get("dataset") or component.lineage.removeprefix("data:")),
        label=component.label,
        rows=int(rows) if isinstance(rows, int) else None,
        columns=tuple((str(c[0]), str(c[1])) for c in schema if isinstance(c, Sequence)),
        source=None if source is None else str(source),
        fingerprint=component.fingerprint,
    )


def _decisions(history: list[EnvironmentEvent], version: int) -> list[Decision]:
    """The history lines about ``version``: its entries, requests, approvals, rejections,
    rollbacks to it, and the changes that replaced it."""
    return [
        Decision(
            action=e.action,
            environment=e.environment,
            from_version=e.from_version,
            to_version=e.to_version,
            actor=e.actor,
            reason=e.reason,
            created_at=e.created_at,
            gates=e.gates,
            forced=e.forced,
            request_id=e.request_id,
        )
        for e in history
        if e.to_version == version or (e.from_version == version and e.action in HOLDER_ACTIONS)
    ]


def _tenures(history: list[EnvironmentEvent], version: int) -> list[Tenure]:
    """When each environment held ``version``: from a change that put it there until the
    next change of that environment's holder."""
    open_since: dict[str, float] = {}
    found: list[Tenure] = []
    for event in history:  # oldest first
        if event.action not in HOLDER_ACTIONS:
            continue
        env = event.environment
        if env in open_since and event.to_version != version:
            found.append(Tenure(env, open_since.pop(env), event.created_at))
        if event.to_version == version and env not in open_since:
            open_since[env] = event.created_at
    found.extend(Tenure(env, since, None) for env, since in open_since.items())
    return sorted(found, key=lambda t: t.since)


def _held_now(
    board: list[Holding], history: list[EnvironmentEvent], version: ModelVersion
) -> tuple[str, ...]:
    """The environments holding ``version`` now, in the order the model first reached them
    (the chain's order, as far as the model went along it)."""
    order: dict[str, int] = {}
    for event in history:
        order.setdefault(event.environment, len(order))
    held = [
        h.environment for h in board if h.model == version.model and h.version == version.version
    ]
    return tuple(sorted(held, key=lambda env: order.get(env, len(order))))


def _environment_packages(environment: ComponentVersion | None) -> Mapping[str, Any]:
    packages = environment.details.get("packages") if environment else None
    return packages if isinstance(packages, Mapping) else {}


def _python(run: Run | None, environment: ComponentVersion | None) -> str | None:
    if environment is not None and environment.details.get("python"):
        return str(environment.details["python"])
    recorded = run.provenance.get("environment") if run else None
    if isinstance(recorded, Mapping) and recorded.get("python_version"):
        return str(recorded["python_version"])
    return None


def _packages(version: ModelVersion, environment: ComponentVersion | None) -> dict[str, str]:
    """The libraries loading the model needs (as saved), then the main ones the run had."""
    found: dict[str, str] = {}
    needed = version.flavor_details.get("packages")
    if isinstance(needed, Mapping):
        found.update({str(k): str(v) for k, v in needed.items()})
    recorded = _environment_packages(environment)
    for name in _MAIN_PACKAGES:
        if name in recorded and name not in found:
            found[name] = str(recorded[name])
    return found


def _code(run: Run | None) -> Code | None:
    if run is None:
        return None
    git = run.provenance.get("git")
    entry = run.provenance.get("entry_point")
    component = run.components.get("code")
    git = git if isinstance(git, Mapping) else {}
    entry = entry if isinstance(entry, Mapping) else {}
    dirty = git.get("dirty")
    return Code(
        commit=_text(git.get("commit")),
        branch=_text(git.get("branch")),
        dirty=None if dirty is None else bool(dirty),
        remote=_text(git.get("remote")),
        script=_text(entry.get("script")),
        label=component.label if component else None,
    )


def _text(value: Any) -> str | None:
    return None if value is None else str(value)
