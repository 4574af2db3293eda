"""Bringing an MLflow tracking store's history in, through ``Client``.

``MlflowMethods`` is mixed into ``Client``. The source is opened by its form: a
``sqlite:///`` or ``postgresql://`` URL (MLflow's database), an ``http(s)://`` URL (an MLflow
server, through its REST API) or a folder (an ``mlruns`` file store). MLflow itself is not
needed: its tables, files and API are read directly.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from modelrail.errors import MlflowSourceError

if TYPE_CHECKING:
    from modelrail.artifacts import ArtifactStore
    from modelrail.policy import PromotionPolicy
    from modelrail.portability.mlflow_import import MlflowImportSummary, Progress
    from modelrail.portability.mlflow_records import MlflowSource
    from modelrail.store.db import Database


def open_mlflow_source(source: str) -> MlflowSource:
    """The reader for ``source``; a clear error when it is none of the three forms."""
    scheme = urllib.parse.urlsplit(source).scheme.lower()
    if scheme.startswith(("sqlite", "postgresql", "postgres")):
        from modelrail.portability.mlflow_sql import SqlSource

        if scheme.startswith("postgres") and not scheme.startswith("postgresql"):
            source = "postgresql" + source[len("postgres") :]
        return SqlSource(source)
    if scheme in ("http", "https"):
        from modelrail.portability.mlflow_rest import RestSource

        return RestSource(source)
    if scheme in ("", "file") or len(scheme) == 1:
        from modelrail.portability.mlflow_files import FileSource

        path = source if scheme != "file" else urllib.parse.urlsplit(source).path
        if not Path(path).exists():
            raise MlflowSourceError(f"{source} does not exist", params=())
        return FileSource(source)
    raise MlflowSourceError(
        f"cannot read an MLflow store at {source!r}: give a sqlite:/// or postgresql:// URL, "
        "an http(s):// MLflow server or an mlruns folder"
    )


class MlflowMethods:
    """``import_mlflow``: the MLflow half of ``Client``."""

    db: Database
    artifacts: ArtifactStore
    user: str

    if TYPE_CHECKING:  # PolicyMethods, mixed into Client too, defines it

        @property
        def policy(self) -> PromotionPolicy: ...

        @property
        def store_address(self) -> str: ...

    def import_mlflow(
        self,
        source: str,
        *,
        trust_pickles: bool = False,
        environments: Mapping[str, str] | None = None,
        batch_size: int = 500,
        progress: Progress | None = None,
    ) -> MlflowImportSummary:
        """Import the experiments, runs (params, every metric point, tags, artifacts, git
        commit), registered versions and their aliases or stages from the MLflow store
        ``source``. Idempotent and resumable: runs already imported are not read again.

        ``trust_pickles``: load models MLflow saved with pickle or cloudpickle (loading a
        pickle can run any code) to convert them into skops; without it they stay as files.
        ``environments``: MLflow alias or stage -> environment here, over the defaults
        (Production -> prod, Staging -> staging, an alias named as an environment -> it).
        """
        from modelrail.portability.mlflow_import import MlflowImporter

        if batch_size < 1:
            from modelrail.errors import InvalidInputError

            raise InvalidInputError(
                f"{{batch_size}} must be at least 1, not {batch_size}", params=("batch_size",)
            )
        reader = open_mlflow_source(source)
        try:
            importer = MlflowImporter(
                source=reader,
                db=self.db,
                artifacts=self.artifacts,
                actor=self.user,
                store=self.store_address,
                chain=self.policy.chain,
                trust_pickles=trust_pickles,
                environments=dict(environments or {}),
                batch_size=batch_size,
                progress=progress,
            )
            return importer.run()
        finally:
            reader.close()
