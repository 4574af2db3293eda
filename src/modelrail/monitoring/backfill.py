"""A reference profile made after the fact, for a version registered without one (before
profiles existed, or by a run whose profiling failed): its run's datasets are read again
where the run recorded them (or where the caller says they are now), checked against their
recorded fingerprints, profiled, and the model predicts the test data (else validation,
else train) for the prediction distribution, as ``ActiveRun.log_model`` does.

Data that is not the data the run logged is refused: a profile describes the data the
version learned from, or drift is measured against the wrong thing. A dataset the run
logged from memory with a ``source`` file is checked by that file's bytes and profiled from
the file (its profile may hold columns the run's frame left out; drift skips those).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from modelrail.errors import ConflictError, InvalidInputError
from modelrail.monitoring.dataset_profiles import fingerprint_and_profile
from modelrail.monitoring.reference import LoggedData, reference_profile
from modelrail.tracking.sources import digest_location, is_url

if TYPE_CHECKING:
    from modelrail.entities import ComponentVersion, ModelVersion, Run
    from modelrail.monitoring.profiles import ReferenceProfile
    from modelrail.registry import LoadedModel

__all__ = ["backfill_reference"]

_ROLES = ("train", "validation", "test")


class _Registry(Protocol):
    """What ``Client`` and ``RemoteClient`` both offer."""

    def get_model_version(self, reference: str) -> ModelVersion: ...
    def get_run(self, run_id: str) -> Run: ...
    def load_model(self, reference: str) -> LoadedModel: ...
    def reference_profile(self, ref: str) -> ReferenceProfile | None: ...
    def record_reference_profile(self, ref: str, profile: ReferenceProfile) -> None: ...


def backfill_reference(
    client: _Registry, ref: str, data: Mapping[str, str | Path]
) -> ReferenceProfile:
    """Make and record the reference profile of the version ``ref`` names from its run's
    datasets; ``data`` (role -> file or folder) says where one is now, or gives the data of
    a version registered outside a run. Refused (``ConflictError``) when the version has a
    profile already: a profile is written once."""
    version = client.get_model_version(ref)
    unknown = sorted(set(data) - set(_ROLES))
    if unknown:
        raise InvalidInputError(
            f"{{data}} names {', '.join(unknown)}: the roles are {', '.join(_ROLES)}",
            params=("data",),
        )
    if client.reference_profile(version.reference) is not None:
        raise ConflictError(
            f"{version.reference} has a reference profile already (a profile is written once)"
        )
    recorded = _recorded_data(client, version)
    logged: dict[str, LoggedData] = {}
    for role in _ROLES:
        component = recorded.get(role)
        given = data.get(role)
        if component is None and given is None:
            continue
        logged[role] = _read_again(version, role, component, given)
    if not logged:
        raise InvalidInputError(
            f"{version.reference} has no data to profile: its run recorded none; give it "
            "with {data} train=PATH (and test=PATH)",
            params=("data",),
        )
    model = client.load_model(version.reference).model
    profile = reference_profile(version, model, logged)
    made = replace(profile, notes=(*profile.notes, "made after registration (backfill)"))
    client.record_reference_profile(version.reference, made)
    return made


def _recorded_data(client: _Registry, version: ModelVersion) -> dict[str, ComponentVersion]:
    if version.run_id is None:
        return {}
    run = client.get_run(version.run_id)
    return {
        role.removeprefix("data:"): component
        for role, component in run.components.items()
        if component.kind == "data"
    }


def _read_again(
    version: ModelVersion, role: str, component: ComponentVersion | None, given: str | Path | None
) -> LoggedData:
    """The dataset of ``role``, profiled, after checking it is the one the run logged."""
    place = _place(version, role, component, given)
    path = Path(place).expanduser().resolve()
    if not path.exists():
        where = "given" if given is not None else f"recorded by the run of {version.reference}"
        raise InvalidInputError(
            f"{role} data: nothing at {path} (the place {where}); give where it is now with "
            f"{{data}} {role}=PATH",
            params=("data",),
        )
    profiled = fingerprint_and_profile(path)
    label = role
    if component is not None:
        _check_same(version, role, component, path, profiled.fingerprint.sha256)
        label = f"{role} {component.label}"
    return LoggedData(path, profiled.profile, label, profiled.problem)


def _place(
    version: ModelVersion, role: str, component: ComponentVersion | None, given: str | Path | None
) -> str | Path:
    if given is not None:
        return given
    assert component is not None
    details = component.details
    location = details.get("location") or details.get("source")
    if not isinstance(location, str) or not (Path(location).is_absolute() or is_url(location)):
        raise InvalidInputError(
            f"{role} data of {version.reference} was logged from memory with no source "
            f"file: give it with {{data}} {role}=PATH",
            params=("data",),
        )
    if is_url(location):
        raise InvalidInputError(
            f"{role} data of {version.reference} was read from {location}: download it and "
            f"give the file with {{data}} {role}=PATH",
            params=("data",),
        )
    return location


def _check_same(
    version: ModelVersion, role: str, component: ComponentVersion, path: Path, sha256: str
) -> None:
    by_bytes = component.details.get("location_sha256")
    if isinstance(by_bytes, str) and by_bytes:
        actual: Any = digest_location(path)
        expected = by_bytes
    else:
        actual, expected = sha256, component.fingerprint
    if actual != expected:
        raise InvalidInputError(
            f"{role} data at {path} is not the data {version.reference} was trained and "
            f"tested with: its content differs (sha256 {str(actual)[:12]}, recorded "
            f"{expected[:12]}); give the original with {{data}} {role}=PATH",
            params=("data",),
        )
