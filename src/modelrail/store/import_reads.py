"""Runs and versions read back as portable records, on the caller's connection: what an
import compares incoming records with."""

from __future__ import annotations

from sqlalchemy import Connection, select

from modelrail.entities import ArtifactRecord, MetricPoint
from modelrail.portability.records import ComponentRecord, RunRecord, VersionRecord
from modelrail.store import tables as t
from modelrail.store.codec import loads


def read_run(conn: Connection, run_id: str) -> RunRecord | None:
    """The run stored under exactly this id, as a record, or None."""
    r = t.runs
    row = conn.execute(
        select(r, t.experiments.c.name.label("experiment_name"))
        .join(t.experiments, t.experiments.c.id == r.c.experiment_id)
        .where(r.c.id == run_id)
    ).first()
    if row is None:
        return None
    p, g, m = t.run_params, t.run_tags, t.run_metrics
    params = {
        k: loads(v)
        for k, v in conn.execute(select(p.c.key, p.c.value_json).where(p.c.run_id == run_id))
    }
    tags = dict(conn.execute(select(g.c.key, g.c.value).where(g.c.run_id == run_id)).all())
    metrics = tuple(
        MetricPoint(k, float(v), int(s), float(ts))
        for k, v, s, ts in conn.execute(
            select(m.c.key, m.c.value, m.c.step, m.c.timestamp)
            .where(m.c.run_id == run_id)
            .order_by(m.c.id)
        )
    )
    cv, rc, a = t.component_versions, t.run_components, t.run_artifacts
    components = tuple(
        ComponentRecord(
            role=c.role,
            kind=c.kind,
            lineage=c.lineage,
            fingerprint=c.fingerprint,
            shape_fingerprint=c.shape_fingerprint,
            details=loads(c.details),
            major=int(c.major),
            minor=int(c.minor),
            created_at=float(c.created_at),
        )
        for c in conn.execute(
            select(cv, rc.c.role)
            .join(rc, rc.c.component_version_id == cv.c.id)
            .where(rc.c.run_id == run_id)
            .order_by(rc.c.role)
        )
    )
    artifacts = tuple(
        ArtifactRecord(x.path, x.sha256, int(x.size))
        for x in conn.execute(select(a).where(a.c.run_id == run_id).order_by(a.c.path))
    )
    return RunRecord(
        id=row.id,
        experiment=row.experiment_name,
        name=row.name,
        status=row.status,
        architecture=row.architecture,
        user=row.user_name,
        started_at=float(row.started_at),
        ended_at=None if row.ended_at is None else float(row.ended_at),
        error=row.error,
        provenance=loads(row.provenance),
        params=params,
        tags=tags,
        metrics=metrics,
        components=components,
        artifacts=artifacts,
    )


def read_version(conn: Connection, model: str, version: int) -> VersionRecord | None:
    """Version ``version`` of ``model`` as a record, or None when it is not here."""
    mv, forms = t.model_versions, t.model_version_forms
    row = conn.execute(
        select(mv, t.models.c.name, t.models.c.created_at.label("model_created_at"), forms.c.record)
        .join(t.models, t.models.c.id == mv.c.model_id)
        .outerjoin(forms, forms.c.model_version_id == mv.c.id)
        .where(t.models.c.name == model, mv.c.version == version)
    ).first()
    if row is None:
        return None
    return VersionRecord(
        model=row.name,
        model_created_at=float(row.model_created_at),
        version=int(row.version),
        run_id=row.run_id,
        flavor=row.flavor,
        artifact_sha256=row.artifact_sha256,
        artifact_size=int(row.artifact_size),
        signature=loads(row.signature),
        input_example=loads(row.input_example),
        flavor_details=loads(row.flavor_details),
        created_at=float(row.created_at),
        created_by=row.created_by,
        description=row.description,
        forms=None if row.record is None else loads(row.record),
    )
