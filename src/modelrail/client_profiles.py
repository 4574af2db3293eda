"""Reference profiles through ``Client``: what a version's data and predictions looked like
when it was registered (``monitoring.profiles``), for monitors and the dashboard.

``ProfileMethods`` is mixed into ``Client``; ``remote.client_profiles`` offers the same
methods against a team server. ``ActiveRun.log_model`` computes the profile and records it
with ``record_reference_profile`` right after the version is registered.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, cast

from modelrail.store.profiles_repo import ReferenceProfileRepository

if TYPE_CHECKING:
    from modelrail.entities import BatchRun, ModelVersion
    from modelrail.monitoring.profiles import BatchProfile, ReferenceProfile
    from modelrail.store.db import Database


class _Versions(Protocol):
    def get_model_version(self, reference: str) -> ModelVersion: ...


class _BatchRuns(Protocol):
    def batch_run(self, run_id: str) -> BatchRun: ...


class BatchProfileReading:
    """A batch run's profile, read through the client's public ``batch_run`` (``Client``
    and ``RemoteClient`` both have it)."""

    def batch_profile(self, run_id: str) -> BatchProfile | None:
        """What batch run ``run_id`` (or a prefix of 4+ characters) scored: its input profile
        and prediction distribution; None for a run that records none (it failed, ran on
        Spark, or ran before profiles existed)."""
        from modelrail.monitoring.profiles import BatchProfile

        record = cast(_BatchRuns, self).batch_run(run_id)
        if record.profile is None:
            return None
        return BatchProfile.from_text(record.profile, f"the profile of batch run {record.id}")


class ProfileBackfill:
    """Making a missing reference profile (``Client`` and ``RemoteClient``)."""

    def profile_version(
        self, ref: str, data: Mapping[str, str | os.PathLike[str]] | None = None
    ) -> ReferenceProfile:
        """Make and keep the reference profile of a version registered without one (before
        profiles existed): its run's datasets are read again where it recorded them, or
        where ``data`` (role -> file or folder) says they are now, checked against their
        fingerprints and profiled, and the model predicts the test data. ``data`` also gives
        the data of a version registered outside a run. See ``monitoring.backfill``."""
        from modelrail.monitoring.backfill import backfill_reference

        given = {role: Path(os.fsdecode(place)) for role, place in (data or {}).items()}
        return backfill_reference(self, ref, given)  # type: ignore[arg-type]


class ProfileMethods(BatchProfileReading, ProfileBackfill):
    """Reference profiles: the monitoring half of ``Client``'s registry."""

    db: Database
    user: str

    def reference_profile(self, ref: str) -> ReferenceProfile | None:
        """The reference profile of the version ``ref`` names (``churn:7``, ``churn@prod``,
        ``churn``): its train and test data per column and the distribution of its
        predictions on the test data; None for a version registered without one (before
        profiles existed, outside a run, or from a run that logged no data)."""
        version = cast(_Versions, self).get_model_version(ref)
        return ReferenceProfileRepository(self.db).get(version.model, version.version)

    def record_reference_profile(
        self, ref: str, profile: ReferenceProfile, *, actor: str | None = None
    ) -> None:
        """Keep ``profile`` as the reference profile of the version ``ref`` names. Written
        once: the same profile again changes nothing, another one is refused
        (``ConflictError``)."""
        version = cast(_Versions, self).get_model_version(ref)
        repository = ReferenceProfileRepository(self.db)
        repository.add(version.model, version.version, profile, created_by=actor or self.user)
