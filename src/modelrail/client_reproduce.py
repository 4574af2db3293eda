"""Reproducing a model version through ``Client``: ``ReproduceMethods`` is mixed into it.

The rerun is another process; it records into this client's store because it gets the
same store, artifact root and project through MODELRAIL_* variables (never on its command
line, where a password would show)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from modelrail.artifacts import ArtifactStore
    from modelrail.config import Settings
    from modelrail.portability.reproduce import ReproduceHost, ReproduceReport
    from modelrail.remote.connection import ServerConnection
    from modelrail.store.db import Database


class _LocalStore(Protocol):
    db: Database
    artifacts: ArtifactStore
    user: str


class ReproduceMethods:
    """``reproduce``: rebuild a version from its record and compare (see docs/tracking.md)."""

    settings: Settings

    def reproduce(
        self,
        reference: str,
        *,
        reuse_env: bool = False,
        find_links: Sequence[str] = (),
        use_index: bool = True,
        installer: str = "auto",
        data: Mapping[str, str] | None = None,
        tolerance: float = 1e-9,
        ignore_metrics: Sequence[str] = (),
        keep: bool = False,
        repository: str | None = None,
        progress: Callable[[str], None] | None = None,
    ) -> ReproduceReport:
        """Rebuild ``reference`` (``churn:7``, ``churn@prod``, ``churn`` or a run id): its
        commit in a scratch git worktree with the stored diff and untracked files, its data
        checked where it was read (``data`` maps a role to where it is now), its environment
        (the current one with ``reuse_env`` when the packages match, else a new one from
        the index or ``find_links`` folders; ``use_index=False`` for those only; made by
        ``installer`` "uv", "pip" or "auto": uv when installed, else pip), its entry
        point run again as a new run tagged as a reproduction; then compare components,
        metrics (within ``tolerance``, but not ``ignore_metrics``) and predictions on the
        test data. ``keep`` leaves the scratch folder; ``repository``: the git repository
        holding the commit (default: the one around the working folder)."""
        from modelrail.portability.reproduce import ReproduceOptions, reproduce

        options = ReproduceOptions(
            reuse_env=reuse_env,
            find_links=tuple(find_links),
            use_index=use_index,
            installer=installer,
            data=dict(data or {}),
            tolerance=tolerance,
            ignore_metrics=tuple(ignore_metrics),
            keep=keep,
            repository=repository,
        )
        host: ReproduceHost = self  # type: ignore[assignment]  # Client offers every read
        return reproduce(
            host,
            reference,
            options,
            rerun_settings=self._rerun_settings(),
            progress=progress or (lambda _: None),
        )

    def _rerun_settings(self) -> dict[str, str]:
        local: _LocalStore = self  # type: ignore[assignment]  # Client has them
        settings = {
            "MODELRAIL_STORE": local.db.url.render_as_string(hide_password=False),
            "MODELRAIL_ARTIFACTS": local.artifacts.location,
            "MODELRAIL_HOME": str(self.settings.project_root),
            "MODELRAIL_SERVER": "",  # this store, not a server logged in to
            "MODELRAIL_USER": local.user,
        }
        if self.settings.artifact_cache:
            settings["MODELRAIL_ARTIFACT_CACHE"] = self.settings.artifact_cache
        return settings


class RemoteReproduceMethods(ReproduceMethods):
    """``reproduce`` signed in to a team server: the rerun records there too, as the same
    user (the token goes to the child process in its environment)."""

    connection: ServerConnection

    def _rerun_settings(self) -> dict[str, str]:
        settings = {
            "MODELRAIL_SERVER": self.connection.url,
            "MODELRAIL_TOKEN": self.connection.token,
            "MODELRAIL_HOME": str(self.settings.project_root),
        }
        if self.settings.artifact_cache:
            settings["MODELRAIL_ARTIFACT_CACHE"] = self.settings.artifact_cache
        return settings
