"""``modelrail import``: a bundle checked whole, its files stored, its records ingested.

The order is what makes an import safe to interrupt: nothing is written until every member
of the bundle has passed its sha256 check and every record has been read; then the files
go into the artifact store (content-addressed: a file stored by an import that stops is
harmless, and found again by the next attempt); then the records are written in one
transaction (``portability.ingest``), which a killed process leaves unwritten. Importing
again resumes or, when everything is here already, changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from modelrail.artifacts import ArtifactStore
from modelrail.portability.bundle_format import Manifest
from modelrail.portability.bundle_read import BundleReader
from modelrail.portability.bundle_write import Progress
from modelrail.portability.ingest import IngestReport, ingest
from modelrail.portability.records import ImportSource
from modelrail.store.import_repo import ImportRepository


@dataclass(frozen=True)
class ImportSummary:
    """What an import found in the bundle and what it changed (``report.changed``)."""

    bundle: str
    manifest: Manifest
    report: IngestReport
    files: int


def import_bundle(
    path: str | Path,
    *,
    repo: ImportRepository,
    artifacts: ArtifactStore,
    actor: str,
    progress: Progress | None = None,
    name: str | None = None,
) -> ImportSummary:
    """Import the bundle at ``path`` as ``actor``; ``name`` is how the history names it
    (default: the file's name)."""
    with BundleReader(path) as bundle:
        bundle.verify(progress)
        blobs = bundle.blobs()
        if progress is not None:
            progress.begin("store files", sum(size for _, size in blobs))
        for sha256, _ in blobs:
            bundle.copy_blob(sha256, artifacts, progress)
        manifest = bundle.manifest
        source = ImportSource(
            kind="bundle",
            name=name or Path(path).name,
            store=manifest.source_store,
            sha256=bundle.sha256,
        )
        if progress is not None:
            progress.begin("records", len(manifest.versions) + manifest.runs)
        report = ingest(
            repo,
            runs=bundle.runs(),
            versions=bundle.versions(),
            history=bundle.history(),
            source=source,
            actor=actor,
            on_record=None if progress is None else lambda: progress.advance(1),
        )
    return ImportSummary(bundle=source.name, manifest=manifest, report=report, files=len(blobs))
