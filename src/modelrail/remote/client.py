"""``RemoteClient``: the ``Client`` methods a team server offers, over HTTP.

The command line opens one in place of a ``Client`` when a server is configured (see
``remote.credentials``), so ``modelrail models``, ``runs``, ``envs``, ``history``, ``promote``,
``approve``, ``reject`` and ``rollback`` work unchanged against a team's server, as the
signed-in user. Methods the server does not offer yet raise ``NotOnServerError`` naming
them, never an ``AttributeError``. Each method keeps the signature of its ``Client``
namesake (a test compares them).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NoReturn

from modelrail.artifacts import ArtifactStore, read_run_artifact
from modelrail.client_batch import BatchMethods
from modelrail.client_environments import EnvironmentView
from modelrail.client_monitoring import MonitoringMethods
from modelrail.client_reproduce import RemoteReproduceMethods
from modelrail.config import Settings
from modelrail.entities import (
    ApprovalRequest,
    ComponentVersion,
    EnvironmentEvent,
    Experiment,
    GateResult,
    Holding,
    MetricPoint,
    Model,
    ModelVersion,
    PromotionOutcome,
    Run,
    TrackerPage,
    User,
)
from modelrail.errors import NotOnServerError, ServerResponseError
from modelrail.flavors.base import SaveOptions, save_options
from modelrail.refs import Ref
from modelrail.remote.client_admin import RemoteAdministration, signed_in_user
from modelrail.remote.client_batch import RemoteBatchMethods
from modelrail.remote.client_card import RemoteCardMethods
from modelrail.remote.client_exchange import RemoteExchangeMethods
from modelrail.remote.client_profiles import RemoteProfileMethods
from modelrail.remote.connection import ServerConnection, segment
from modelrail.remote.decode import decode, decode_list
from modelrail.remote.repositories import RemoteModels, RemoteRuns
from modelrail.server.payload import to_json
from modelrail.store.tracker_query import TrackerQuery, best_run_id, best_run_query
from modelrail.tracking.host import begin_run
from modelrail.tracking.run import ActiveRun

if TYPE_CHECKING:
    from modelrail.registry import LoadedModel

__all__ = ["RemoteClient"]


class RemoteClient(
    RemoteAdministration,
    RemoteBatchMethods,
    BatchMethods,
    RemoteCardMethods,
    RemoteExchangeMethods,
    RemoteReproduceMethods,
    RemoteProfileMethods,
    MonitoringMethods,
):
    """The library as a team server at ``url`` offers it, signed in with ``token``."""

    def __init__(self, url: str, token: str, *, settings: Settings, patient: bool = True) -> None:
        """``patient``: try requests again while the server does not answer (a restart);
        False for a first contact, where it is likelier a wrong address."""
        self.connection = ServerConnection(url, token, patient=patient)
        self.settings = settings
        self._me: User | None = None
        self._experiment_ids: dict[str, int] = {}

    # -- who and where ----------------------------------------------------------------

    @property
    def store_address(self) -> str:
        return self.connection.url

    def whoami(self) -> User:
        """The signed-in user, with their roles (checks the token)."""
        if self._me is None:
            self._me = signed_in_user(self.connection)
        return self._me

    @property
    def user(self) -> str:
        return self.whoami().name

    def close(self) -> None:
        """Close the connections to the server kept open between requests."""
        self.connection.close()

    def __enter__(self) -> RemoteClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __getattr__(self, name: str) -> NoReturn:
        if name.startswith("_"):
            raise AttributeError(name)
        raise NotOnServerError(
            f"{name.replace('_', ' ')} is not offered by a modelrail server yet "
            f"({self.connection.url}): run it in a local project (MODELRAIL_SERVER= to "
            "ignore the server)"
        )

    # -- tracking ---------------------------------------------------------------------

    @functools.cached_property
    def runs(self) -> RemoteRuns:
        return RemoteRuns(self.connection)

    @functools.cached_property
    def models(self) -> RemoteModels:
        return RemoteModels(self.connection)

    @functools.cached_property
    def artifacts(self) -> ArtifactStore:
        """The server's artifacts, through a verified cache on this machine."""
        from modelrail.remote.blobs import ServerBlobs

        cache = self.settings.artifact_cache
        return ArtifactStore.over(ServerBlobs(self.connection), cache=cache)

    def start_run(
        self,
        experiment: str = "default",
        *,
        architecture: str | None = None,
        name: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> ActiveRun:
        """A run recorded on the server as the signed-in user; its files are uploaded."""
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
        options = self.save_options(allow_pickle, code_paths)
        return self._register(model, name, None, input_example, description, options)

    def save_options(
        self, allow_pickle: bool | None, code_paths: Sequence[str | os.PathLike[str]]
    ) -> SaveOptions:
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
        """Saved, checked and its predictor forms built here; files uploaded, then the
        version recorded by the server (which puts it in the first environment)."""
        from modelrail.registry import register_model

        return register_model(
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

    def tracker(self, query: TrackerQuery | None = None) -> TrackerPage:
        from modelrail.server.payload import to_json

        body = to_json(query or TrackerQuery())
        found = self.connection.post("/tracker", body, repeatable=True)
        return decode(TrackerPage, found, "tracker")

    def get_run(self, run_id: str) -> Run:
        return decode(Run, self.connection.get(f"/runs/{segment(run_id)}"), "run")

    def best_run(
        self, metric: str, *, minimize: bool = False, experiment: str | None = None
    ) -> Run:
        page = self.tracker(best_run_query(metric, minimize=minimize, experiment=experiment))
        return self.get_run(best_run_id(page, metric, experiment))

    def experiments(self) -> list[Experiment]:
        return decode_list(Experiment, self.connection.get("/experiments"), "experiments")

    def metric_history(self, run_id: str, key: str | None = None) -> list[MetricPoint]:
        found = self.connection.get(f"/runs/{segment(run_id)}/metrics", {"key": key})
        return decode_list(MetricPoint, found, "metrics")

    # -- registry ---------------------------------------------------------------------

    def metric_names(self) -> list[str]:
        return decode_list(str, self.connection.get("/metric-names"), "metric names")

    def metric_extremes(
        self, query: TrackerQuery, keys: Iterable[str]
    ) -> dict[str, tuple[float, float]]:
        body = {"query": to_json(query), "keys": list(keys)}
        found = self.connection.post("/metric-extremes", body, repeatable=True)
        return decode(dict[str, tuple[float, float]], found, "metric extremes")

    def run_artifact(self, run_id: str, path: str) -> bytes:
        """The bytes of a run's artifact, downloaded and checked against its sha256."""
        return read_run_artifact(self.artifacts, self.get_run(run_id), path)

    def datasets(self) -> list[tuple[ComponentVersion, int]]:
        found = self.connection.get("/datasets")
        return decode_list(tuple[ComponentVersion, int], found, "datasets")

    def list_models(self) -> list[Model]:
        return decode_list(Model, self.connection.get("/models"), "models")

    def list_versions(self, name: str) -> list[ModelVersion]:
        found = self.connection.get(f"/models/{segment(name)}/versions")
        return decode_list(ModelVersion, found, "versions")

    def get_model_version(self, reference: str | Ref) -> ModelVersion:
        text = str(reference) if isinstance(reference, Ref) else reference
        Ref.parse(text)  # a malformed reference is refused here, as a local client does
        return decode(ModelVersion, self.connection.get(f"/versions/{segment(text)}"), "version")

    def load_model(self, reference: str | Ref) -> LoadedModel:
        """Load a version from the server's artifacts after checking its sha256."""
        from modelrail.registry import load_model_version

        return load_model_version(self.artifacts, self.get_model_version(reference))

    # -- environments -----------------------------------------------------------------

    def promote(
        self,
        reference: str,
        to: str,
        *,
        reason: str = "",
        force: bool = False,
        if_holds: int | None = None,
        actor: str | None = None,
    ) -> PromotionOutcome:
        """As ``Client.promote``; the server records the signed-in user, whatever ``actor``."""
        body: dict[str, object] = {"reference": reference, "to": to, "reason": reason}
        body["force"] = force
        if if_holds is not None:
            body["if_holds"] = if_holds
        found = self.connection.post("/promotions", body)
        return decode(PromotionOutcome, found, "promotion")

    def check_promotion(self, reference: str, to: str) -> tuple[GateResult, ...]:
        found = self.connection.post("/checks", {"reference": reference, "to": to})
        return tuple(decode_list(GateResult, found, "gates"))

    def approval_requests(self, status: str | None = "pending") -> list[ApprovalRequest]:
        found = self.connection.get("/requests", {"status": status or "all"})
        return decode_list(ApprovalRequest, found, "requests")

    def approval_request(self, request_id: int) -> ApprovalRequest:
        found = self.connection.get(f"/requests/{int(request_id)}")
        return decode(ApprovalRequest, found, "request")

    def approve(
        self, request_id: int, *, reason: str = "", actor: str | None = None
    ) -> PromotionOutcome:
        found = self.connection.post(f"/requests/{int(request_id)}/approve", {"reason": reason})
        return decode(PromotionOutcome, found, "approval")

    def reject(
        self, request_id: int, *, reason: str = "", actor: str | None = None
    ) -> ApprovalRequest:
        found = self.connection.post(f"/requests/{int(request_id)}/reject", {"reason": reason})
        return decode(ApprovalRequest, found, "rejection")

    def rollback(
        self,
        model: str,
        environment: str,
        *,
        to_version: int | None = None,
        reason: str = "",
        actor: str | None = None,
    ) -> EnvironmentEvent:
        body: dict[str, object] = {"model": model, "environment": environment, "reason": reason}
        if to_version is not None:
            body["to_version"] = to_version
        return decode(EnvironmentEvent, self.connection.post("/rollbacks", body), "rollback")

    def history(
        self, model: str | None = None, environment: str | None = None
    ) -> list[EnvironmentEvent]:
        found = self.connection.get("/history", {"model": model, "environment": environment})
        return decode_list(EnvironmentEvent, found, "history")

    def wait_for_change(self, after: int, timeout_s: float = 25.0) -> int:
        """As ``Client.wait_for_change``, long-polled: the server answers as soon as the
        history grows (a promotion made anywhere), or when ``timeout_s`` is up."""
        wait = max(0, min(int(timeout_s), 25))  # an answer well within the request timeout
        found = self.connection.get("/history/changes", {"after": after, "wait": wait})
        if not isinstance(found, dict) or not isinstance(found.get("newest"), int):
            raise ServerResponseError(f"{self.connection.url} answered no history position")
        return int(found["newest"])

    def board(self) -> list[Holding]:
        return decode_list(Holding, self.connection.get("/board"), "board")

    def environments(self) -> list[EnvironmentView]:
        found = self.connection.get("/environments")
        return decode_list(EnvironmentView, found, "environments")
