"""``Client``: the front door that wires the store, the artifact store and the services."""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from modelrail.artifacts import ArtifactStore, read_run_artifact
from modelrail.client_batch import BatchMethods
from modelrail.client_card import CardMethods
from modelrail.client_environments import EnvironmentMethods
from modelrail.client_exchange import ExchangeMethods
from modelrail.client_identity import IdentityMethods
from modelrail.client_mlflow import MlflowMethods
from modelrail.client_monitoring import MonitoringMethods
from modelrail.client_policy import PolicyMethods
from modelrail.client_profiles import ProfileMethods
from modelrail.client_reproduce import ReproduceMethods
from modelrail.config import Settings, load_settings
from modelrail.entities import (
    ComponentVersion,
    Experiment,
    MetricPoint,
    Model,
    ModelVersion,
    Run,
    Signature,
    TrackerPage,
)
from modelrail.errors import ArtifactNotFoundError
from modelrail.flavors.base import SaveOptions, save_options
from modelrail.refs import Ref, validate_name
from modelrail.store.db import Database
from modelrail.store.models_repo import ModelRepository
from modelrail.store.runs_repo import RunRepository
from modelrail.store.tracker_query import (
    TrackerQuery,
    best_run_id,
    best_run_query,
    metric_extremes,
    metric_names,
    tracker_page,
)
from modelrail.tracking.host import begin_run
from modelrail.tracking.run import ActiveRun

if TYPE_CHECKING:
    from modelrail.registry import LoadedModel
    from modelrail.store.db import AppRoleGrants
    from modelrail.store.shadow_repo import ShadowRepository, ShadowTotals

log = logging.getLogger("modelrail")


class Client(
    EnvironmentMethods,
    BatchMethods,
    IdentityMethods,
    PolicyMethods,
    CardMethods,
    ExchangeMethods,
    MlflowMethods,
    ReproduceMethods,
    ProfileMethods,
    MonitoringMethods,
):
    """Everything modelrail does, as methods. ``Client()`` reads settings from the environment.

    The command line and the dashboard reach the library through these public methods only
    (never ``db``, ``runs``, ``models`` or ``environment_service``), so that a client of a
    team server can offer the same methods. Promotion and approval methods come from
    ``EnvironmentMethods``, batch scoring from ``BatchMethods``, users, roles and API
    tokens from ``IdentityMethods``.
    """

    def __init__(
        self,
        store_url: str | None = None,
        artifact_root: str | Path | None = None,
        *,
        settings: Settings | None = None,
        user: str | None = None,
    ) -> None:
        if settings is None:
            settings = load_settings(create=store_url is None)
            if settings.created_project:
                log.warning(
                    "modelrail: no project found in %s or above; created %s "
                    "(run 'modelrail init' to choose the place)",
                    settings.project_root,
                    settings.project_dir,
                )
        self.settings = settings
        self.user = user or settings.user
        self.db = Database(store_url or settings.store_url)
        self.artifacts = ArtifactStore(
            artifact_root or settings.artifact_root, cache=settings.artifact_cache
        )
        self.models = ModelRepository(self.db)
        self._experiment_ids: dict[str, int] = {}

    @functools.cached_property
    def runs(self) -> RunRepository:
        """The tracker's runs; made on first use, as building its statements takes a few
        milliseconds that commands without runs (batch scoring, serving) need not spend."""
        return RunRepository(self.db)

    @property
    def store_address(self) -> str:
        """The store's URL with any password hidden, to show to a person."""
        return self.db.display_url

    def grant_app_role(self, role: str) -> AppRoleGrants:
        """Let PostgreSQL ``role`` read and write rows, only add to the append-only
        history and not change the schema (this client connects as the schema's owner)."""
        return self.db.grant_app_role(role)

    def close(self) -> None:
        self.db.dispose()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- tracking --------------------------------------------------------------------

    def start_run(
        self,
        experiment: str = "default",
        *,
        architecture: str | None = None,
        name: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> ActiveRun:
        return begin_run(
            self,
            project=self.settings.project_root.name,
            user=self.user,
            experiment_ids=self._experiment_ids,
            experiment=experiment,
            architecture=architecture,
            name=name,
            tags=tags,
        )

    def get_run(self, run_id: str) -> Run:
        return self.runs.get_run(run_id)

    def tracker(self, query: TrackerQuery | None = None) -> TrackerPage:
        return tracker_page(self.db, query or TrackerQuery())

    def best_run(
        self, metric: str, *, minimize: bool = False, experiment: str | None = None
    ) -> Run:
        page = self.tracker(best_run_query(metric, minimize=minimize, experiment=experiment))
        return self.get_run(best_run_id(page, metric, experiment))

    def experiments(self) -> list[Experiment]:
        """Every experiment, by name."""
        return self.runs.list_experiments()

    def metric_history(self, run_id: str, key: str | None = None) -> list[MetricPoint]:
        """Every point a run logged (of metric ``key``, or all), by key, step and time."""
        return self.runs.metric_history(run_id, key)

    def metric_names(self) -> list[str]:
        """Every metric key any run has logged, sorted."""
        return metric_names(self.db)

    def metric_extremes(
        self, query: TrackerQuery, keys: Iterable[str]
    ) -> dict[str, tuple[float, float]]:
        """The smallest and largest latest value of each metric in ``keys`` over every run
        ``query`` matches (not one page of them); metrics none of them logged are left out."""
        return metric_extremes(self.db, query, keys)

    def run_artifact(self, run_id: str, path: str) -> bytes:
        """The bytes of the artifact a run logged at ``path``, checked against its sha256."""
        return read_run_artifact(self.artifacts, self.get_run(run_id), path)

    def datasets(self) -> list[tuple[ComponentVersion, int]]:
        """Every dataset version with the number of runs that used it."""
        usage = self.runs.components.usage()
        return [(cv, usage.get(cv.id, 0)) for cv in self.runs.components.versions("data")]

    # -- registry --------------------------------------------------------------------

    def list_models(self) -> list[Model]:
        return self.models.list_models()

    def list_versions(self, name: str) -> list[ModelVersion]:
        return self.models.list_versions(name)

    def get_model_version(self, reference: str | Ref) -> ModelVersion:
        ref = reference if isinstance(reference, Ref) else Ref.parse(reference)
        if ref.environment is not None:
            return self.environment_service.resolve(ref.name, ref.environment)
        return self.models.get_version(ref.name, ref.version)

    def load_model(self, reference: str | Ref) -> LoadedModel:
        """Load a model version after checking its artifact's sha256."""
        from modelrail.registry import load_model_version

        return load_model_version(self.artifacts, self.get_model_version(reference))

    def compile_model(self, reference: str | Ref) -> ModelVersion:
        """Build (again) the verified predictor forms of a registered version, e.g. one
        registered before forms existed; the fastest per workload serves from then on."""
        from modelrail.registry import compile_version

        version = self.get_model_version(reference)
        return compile_version(self.models, self.artifacts, version, created_by=self.user)

    def register_model(
        self,
        model: Any,
        name: str,
        *,
        input_example: Any,
        description: str = "",
        allow_pickle: bool | None = None,
        code_paths: Sequence[str | os.PathLike[str]] = (),
    ) -> ModelVersion:
        """Register a model that was trained outside a run (see ``ActiveRun.log_model``)."""
        options = self.save_options(allow_pickle, code_paths)
        return self._register(model, name, None, input_example, description, options)

    def save_options(
        self, allow_pickle: bool | None, code_paths: Sequence[str | os.PathLike[str]]
    ) -> SaveOptions:
        """``allow_pickle`` as given, else the project's ``[models] allow_pickle``."""
        allowed = self.settings.allow_pickle if allow_pickle is None else allow_pickle
        return save_options(allowed, code_paths)

    def _register(
        self,
        model: Any,
        name: str,
        run_id: str | None,
        input_example: Any,
        description: str,
        options: SaveOptions,
    ) -> ModelVersion:
        from modelrail.registry import register_model

        version = register_model(
            self.models,
            self.artifacts,
            model,
            name=name,
            run_id=run_id,
            input_example=input_example,
            created_by=self.user,
            description=description,
            options=options,
        )
        self.environment_service.auto_enter(version)
        return version

    def add_version(
        self,
        name: str,
        *,
        run_id: str | None,
        flavor: str,
        artifact_sha256: str,
        artifact_size: int,
        signature: Signature,
        input_example: Any,
        flavor_details: Mapping[str, Any],
        description: str = "",
        forms: Mapping[str, Any] | None = None,
        key: str | None = None,
        actor: str | None = None,
    ) -> ModelVersion:
        """Record a version whose model file was saved and stored elsewhere (by a team
        server's client): its artifact must be here, whole; ``key`` makes a retry return the
        version the first attempt made. It enters the first environment as a logged one does."""
        validate_name("model", name)
        self.require_artifact(artifact_sha256, artifact_size, f"model {name}")
        version = self.models.create_version(
            name=name,
            run_id=run_id,
            flavor=flavor,
            artifact_sha256=artifact_sha256,
            artifact_size=artifact_size,
            signature=signature,
            input_example=input_example,
            flavor_details=flavor_details,
            description=description,
            created_by=actor or self.user,
            forms=forms,
            key=key,
        )
        self.environment_service.auto_enter(version, actor)
        return version

    def require_artifact(self, sha256: str, size: int, label: str) -> None:
        """Refuse an artifact this store does not hold whole (read in chunks, not at once)."""
        handle = self.artifacts.open_verified(sha256, label=label)
        if handle is None:
            raise ArtifactNotFoundError(
                f"{label}: no artifact {sha256[:12]}... is stored: upload it first"
            )
        with handle:
            found = handle.seek(0, os.SEEK_END)
        if found != size:
            raise ArtifactNotFoundError(
                f"{label}: the artifact {sha256[:12]}... holds {found:,} bytes, not {size:,}"
            )

    # -- serving -----------------------------------------------------------------------

    @property
    def shadow_records(self) -> ShadowRepository:
        """Where shadowing servers add up their agreement and latencies."""
        from modelrail.store.shadow_repo import ShadowRepository

        return ShadowRepository(self.db)

    def shadow_totals(self, model: str | None = None) -> list[ShadowTotals]:
        """How often each shadow version agreed with the live one (of ``model``, or every
        model), with request counts and latencies, as shadowing servers add them up."""
        return self.shadow_records.totals(model)


@functools.cache
def _default_client(
    cwd: str, store: str | None, artifacts: str | None, home: str | None, server: str | None
) -> Client:
    from modelrail.remote import credentials

    settings = load_settings(create=False)
    has_project = settings.project_dir.is_dir() or store is not None
    url = credentials.server_for(settings.server_url, has_project)
    if url is None:
        return Client()
    from modelrail.remote.client import RemoteClient

    # Offers what a run and registration need, with Client's signatures (tested).
    return cast(Client, RemoteClient(url, credentials.token_for(url), settings=settings))


def default_client() -> Client:
    """The client for the project around the working directory.

    Kept per (directory, settings) for the life of the process so a loop of
    ``start_run`` calls reuses one connection pool instead of opening the
    database each time.
    """
    import os

    return _default_client(
        os.getcwd(),
        os.environ.get("MODELRAIL_STORE"),
        os.environ.get("MODELRAIL_ARTIFACTS"),
        os.environ.get("MODELRAIL_HOME"),
        os.environ.get("MODELRAIL_SERVER"),
    )
