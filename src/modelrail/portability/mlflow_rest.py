"""An MLflow tracking server, read through its REST API (``/api/2.0/mlflow/...``).

Searches are paged with MLflow's page tokens; a run's metric history is read key by key
(``metrics/get-history``, paged), as the search answers only each metric's last point.
Artifacts the server keeps for its clients (``mlflow-artifacts:/``) are listed and
downloaded through ``/api/2.0/mlflow-artifacts/artifacts``. A token in
``MLFLOW_TRACKING_TOKEN`` or a user and password in ``MLFLOW_TRACKING_USERNAME`` /
``MLFLOW_TRACKING_PASSWORD`` are sent as MLflow's own client sends them.
"""

from __future__ import annotations

import base64
import json
import math
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from modelrail.errors import MlflowSourceError, MlflowSourceUnavailableError
from modelrail.portability.mlflow_artifacts import (
    ArtifactsUnreachable,
    list_local,
    local_folder,
    read_local,
)
from modelrail.portability.mlflow_records import (
    ArtifactEntry,
    MlflowExperiment,
    MlflowModelVersion,
    MlflowRegisteredModel,
    MlflowRun,
    MlflowRunKey,
)

API = "/api/2.0/mlflow"
ARTIFACTS = "/api/2.0/mlflow-artifacts/artifacts"
TIMEOUT_S = 60.0
PAGE = 1000
HISTORY_PAGE = 25_000


def _ms(value: Any) -> int | None:
    return None if value in (None, "") else int(value)


def _pairs(items: Sequence[Mapping[str, Any]] | None) -> dict[str, str]:
    return {item["key"]: str(item.get("value", "")) for item in items or ()}


class RestSource:
    def __init__(self, url: str, *, timeout: float = TIMEOUT_S) -> None:
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise MlflowSourceError(f"{url!r} is not an http:// or https:// URL")
        self.url = f"{parsed.scheme}://{parsed.netloc}{parsed.path.rstrip('/')}"
        self.description = self.url
        self.timeout = timeout
        self._headers = {"Content-Type": "application/json", **_auth_headers()}
        self._runs: dict[str, dict[str, Any]] = {}
        self._check()

    def close(self) -> None:
        self._runs.clear()

    # -- HTTP -------------------------------------------------------------------------

    def _request(self, method: str, route: str, body: Any = None, **query: Any) -> bytes:
        address = self.url + route
        if query:
            address += "?" + urllib.parse.urlencode(
                {k: v for k, v in query.items() if v is not None}
            )
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(address, data=data, method=method, headers=self._headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                content: bytes = response.read()
                return content
        except urllib.error.HTTPError as exc:
            detail, from_mlflow = _error_message(exc.read())
            if not from_mlflow and exc.code in (404, 405, 501):
                raise MlflowSourceError(
                    f"{self.url} answered {exc.code} to {method} {route}, as no MLflow server "
                    f"does: is it an MLflow server? ({detail})"
                ) from exc
            if exc.code in (401, 403):
                raise MlflowSourceError(
                    f"the MLflow server {self.url} refused the request ({exc.code}): {detail}; "
                    "set MLFLOW_TRACKING_TOKEN or MLFLOW_TRACKING_USERNAME/PASSWORD"
                ) from exc
            if exc.code == 404:
                raise MlflowSourceError(
                    f"{address} is not found ({detail}): is {self.url} an MLflow server?"
                ) from exc
            raise MlflowSourceUnavailableError(
                f"the MLflow server {self.url} answered {exc.code} to {method} {route}: {detail}"
            ) from exc
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise MlflowSourceUnavailableError(
                f"cannot reach the MLflow server {self.url}: {reason}"
            ) from exc

    def _json(self, method: str, route: str, body: Any = None, **query: Any) -> dict[str, Any]:
        content = self._request(method, route, body, **query)
        try:
            found = json.loads(content) if content else {}
        except ValueError as exc:
            raise MlflowSourceError(
                f"{self.url}{route} did not answer JSON: is {self.url} an MLflow server?"
            ) from exc
        if not isinstance(found, dict):
            raise MlflowSourceError(f"{self.url}{route} answered {type(found).__name__}, not JSON")
        return found

    def _paged(self, method: str, route: str, field: str, **fields: Any) -> Iterator[Any]:
        token: str | None = None
        while True:
            if method == "POST":
                page = self._json("POST", route, {**fields, "page_token": token})
            else:
                page = self._json("GET", route, page_token=token, **fields)
            yield from page.get(field, ())
            token = page.get("next_page_token") or None
            if token is None:
                return

    def _check(self) -> None:
        """One cheap search: refuses a URL that does not answer as an MLflow server does."""
        found = self._json("POST", f"{API}/experiments/search", {"max_results": 1})
        if "experiments" not in found and found:
            raise MlflowSourceError(f"{self.url} does not answer as an MLflow server does")

    # -- reading ------------------------------------------------------------------------

    def experiments(self) -> list[MlflowExperiment]:
        return [
            MlflowExperiment(
                id=str(item["experiment_id"]),
                name=item["name"],
                artifact_location=item.get("artifact_location", ""),
                created_ms=_ms(item.get("creation_time")),
                deleted=item.get("lifecycle_stage") == "deleted",
                tags=_pairs(item.get("tags")),
            )
            for item in self._paged(
                "POST",
                f"{API}/experiments/search",
                "experiments",
                max_results=PAGE,
                view_type="ALL",
            )
        ]

    def run_keys(self) -> list[MlflowRunKey]:
        experiments = [e.id for e in self.experiments()]
        keys = []
        for offset in range(0, len(experiments), 100):  # MLflow takes 100 ids per search
            for item in self._paged(
                "POST",
                f"{API}/runs/search",
                "runs",
                experiment_ids=experiments[offset : offset + 100],
                run_view_type="ALL",
                max_results=PAGE,
                order_by=["attributes.start_time ASC"],
            ):
                info = item["info"]
                run_id = info.get("run_id") or info["run_uuid"]
                self._runs[run_id] = item
                keys.append(
                    MlflowRunKey(
                        run_id=run_id,
                        experiment_id=str(info["experiment_id"]),
                        deleted=info.get("lifecycle_stage") == "deleted",
                    )
                )
        return keys

    def runs(self, run_ids: Sequence[str]) -> list[MlflowRun]:
        return [self._run(run_id) for run_id in run_ids]

    def _run(self, run_id: str) -> MlflowRun:
        item = self._runs.pop(run_id, None)
        if item is None:
            item = self._json("GET", f"{API}/runs/get", run_id=run_id)["run"]
        info, data = item["info"], item.get("data", {})
        tags = _pairs(data.get("tags"))
        metrics = []
        for key in sorted({m["key"] for m in data.get("metrics", ())}):
            for point in self._paged(
                "GET",
                f"{API}/metrics/get-history",
                "metrics",
                run_id=run_id,
                metric_key=key,
                max_results=HISTORY_PAGE,
            ):
                value = float(point.get("value", math.nan))
                metrics.append(
                    (key, value, int(point.get("step", 0)), int(point.get("timestamp", 0)))
                )
        metrics.sort(key=lambda p: (p[0], p[2], p[3]))
        return MlflowRun(
            run_id=run_id,
            experiment_id=str(info["experiment_id"]),
            name=info.get("run_name") or tags.get("mlflow.runName", ""),
            status=info.get("status", "FINISHED"),
            user=info.get("user_id") or tags.get("mlflow.user", ""),
            start_ms=_ms(info.get("start_time")),
            end_ms=_ms(info.get("end_time")),
            artifact_uri=info.get("artifact_uri", ""),
            params=_pairs(data.get("params")),
            tags=tags,
            metrics=metrics,
        )

    def registered_models(self) -> list[MlflowRegisteredModel]:
        models = []
        for item in self._paged(
            "GET", f"{API}/registered-models/search", "registered_models", max_results=PAGE
        ):
            name = item["name"]
            quoted = name.replace("'", "\\'")
            versions = [
                _version(v)
                for v in self._paged(
                    "GET",
                    f"{API}/model-versions/search",
                    "model_versions",
                    filter=f"name='{quoted}'",
                    max_results=PAGE,
                )
            ]
            models.append(
                MlflowRegisteredModel(
                    name=name,
                    description=item.get("description", ""),
                    created_ms=_ms(item.get("creation_timestamp")),
                    versions=tuple(sorted(versions, key=lambda v: v.version)),
                    aliases={a["alias"]: int(a["version"]) for a in item.get("aliases", ())},
                )
            )
        return models

    def logged_model_location(self, model_id: str) -> str | None:
        try:
            found = self._json("GET", f"{API}/logged-models/{urllib.parse.quote(model_id)}")
        except MlflowSourceError:  # an MLflow 2 server, or a model deleted since
            return None
        location = found.get("model", {}).get("info", {}).get("artifact_uri")
        return str(location) if location else None

    # -- artifacts ------------------------------------------------------------------------

    def _served_path(self, location: str) -> str | None:
        parsed = urllib.parse.urlsplit(location)
        if parsed.scheme != "mlflow-artifacts":
            return None
        return parsed.path.lstrip("/")

    def list_artifacts(self, location: str) -> Iterator[ArtifactEntry]:
        served = self._served_path(location)
        if served is None:
            if local_folder(location) is None:
                raise ArtifactsUnreachable(
                    f"{location} is not served by the MLflow server: an import reads only "
                    "files the server keeps (mlflow-artifacts:/) or local folders"
                )
            yield from list_local(location)
            return
        pending = [""]
        while pending:
            below = pending.pop()
            path = f"{served}/{below}".rstrip("/")
            listing = self._json("GET", ARTIFACTS, path=path)
            for item in sorted(listing.get("files", ()), key=lambda f: f["path"]):
                relative = f"{below}/{item['path']}".lstrip("/")
                if item.get("is_dir"):
                    pending.append(relative)
                else:
                    size = item.get("file_size")
                    yield ArtifactEntry(relative, None if size is None else int(size))

    def read_artifact(self, location: str, path: str) -> bytes:
        served = self._served_path(location)
        if served is None:
            return read_local(location, path)
        quoted = urllib.parse.quote(f"{served}/{path}")
        return self._request("GET", f"{ARTIFACTS}/{quoted}")


def _version(item: Mapping[str, Any]) -> MlflowModelVersion:
    stage = item.get("current_stage")
    return MlflowModelVersion(
        model=item["name"],
        version=int(item["version"]),
        run_id=item.get("run_id") or None,
        source=item.get("source", ""),
        storage_location=item.get("storage_location") or None,
        stage=stage if stage not in (None, "", "None") else None,
        status=item.get("status", "READY"),
        user=item.get("user_id") or None,
        description=item.get("description", ""),
        created_ms=_ms(item.get("creation_timestamp")),
    )


def _auth_headers() -> dict[str, str]:
    token = os.environ.get("MLFLOW_TRACKING_TOKEN")
    if token:
        return {"Authorization": f"Bearer {token}"}
    user = os.environ.get("MLFLOW_TRACKING_USERNAME")
    if user:
        secret = f"{user}:{os.environ.get('MLFLOW_TRACKING_PASSWORD', '')}".encode()
        return {"Authorization": "Basic " + base64.b64encode(secret).decode()}
    return {}


def _error_message(content: bytes) -> tuple[str, bool]:
    """What an error answer says, and whether it is MLflow's JSON error."""
    try:
        found = json.loads(content)
    except ValueError:
        lines = content.decode("utf-8", "replace").strip().splitlines()
        return (lines[0][:200] if lines else "no detail"), False
    if isinstance(found, dict) and "error_code" in found:
        return str(found.get("message") or found["error_code"]), True
    return str(found)[:200], False
