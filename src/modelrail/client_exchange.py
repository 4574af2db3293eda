"""``Client``'s methods for moving versions between stores: export and import bundles."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from modelrail.artifacts import ArtifactStore
    from modelrail.portability.bundle_write import ExportSummary, Progress
    from modelrail.portability.exchange import ImportSummary
    from modelrail.portability.records import HistoryRecord
    from modelrail.store.db import Database
    from modelrail.store.import_repo import ImportRepository, ImportRow


class ExchangeMethods:
    """Export versions with their runs, history and files into one bundle file, and import
    such a bundle (see ``portability.exchange`` and ``portability.ingest``)."""

    if TYPE_CHECKING:
        db: Database
        artifacts: ArtifactStore
        user: str

    @property
    def _imports(self) -> ImportRepository:
        from modelrail.store.import_repo import ImportRepository

        return ImportRepository(self.db)

    def store_id(self) -> str:
        """The random id that names this store in the bundles it writes."""
        return self._imports.store_id()

    def export_bundle(
        self,
        references: Sequence[str],
        output: str | os.PathLike[str],
        *,
        everything: bool = False,
        progress: Progress | None = None,
    ) -> ExportSummary:
        """Write the versions named by ``references`` (``churn:7``, ``churn@prod``, or
        ``churn`` for all its versions; ``everything`` for every model) with their runs,
        datasets' metadata, history and files into one bundle file, ``output``."""
        from modelrail import __version__
        from modelrail.portability.bundle_write import export_bundle

        return export_bundle(
            self,  # type: ignore[arg-type]  # Client offers every method ExportSource names
            references,
            output,
            everything=everything,
            progress=progress,
            modelrail_version=__version__,
        )

    def import_bundle(
        self,
        path: str | Path,
        *,
        progress: Progress | None = None,
        name: str | None = None,
        actor: str | None = None,
    ) -> ImportSummary:
        """Check the whole bundle at ``path``, then store its files and write its records in
        one transaction, as ``actor`` (default: this client's user); importing it again
        changes nothing. ``name``: how the history names the bundle (default: its file name)."""
        from modelrail.portability.exchange import import_bundle

        return import_bundle(
            path,
            repo=self._imports,
            artifacts=self.artifacts,
            actor=actor or self.user,
            progress=progress,
            name=name,
        )

    def imports(self) -> list[ImportRow]:
        """Every import that changed this store: source, who, when, what came in."""
        return self._imports.imports()

    def imported_history(self, model: str | None = None) -> list[HistoryRecord]:
        """Other stores' history of the versions imported here (of ``model``, or all)."""
        return [event.record for event in self._imports.imported_events(model)]
