"""Table definitions. Only ``store/`` knows these names."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

experiments = Table(
    "experiments",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(128), nullable=False, unique=True),
    Column("created_at", Float, nullable=False),
)

runs = Table(
    "runs",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("experiment_id", Integer, ForeignKey("experiments.id"), nullable=False),
    Column("name", String(256), nullable=False),
    Column("status", String(16), nullable=False),
    Column("architecture", String(128)),
    Column("user_name", String(128), nullable=False),
    Column("started_at", Float, nullable=False),
    Column("ended_at", Float),
    Column("error", Text),
    Column("provenance", Text, nullable=False),
    Index("ix_runs_experiment_started", "experiment_id", "started_at"),
    Index("ix_runs_started", "started_at"),
)

run_params = Table(
    "run_params",
    metadata,
    Column("run_id", String(32), ForeignKey("runs.id"), primary_key=True),
    Column("key", String(256), primary_key=True),
    Column("value_json", Text, nullable=False),
)

run_tags = Table(
    "run_tags",
    metadata,
    Column("run_id", String(32), ForeignKey("runs.id"), primary_key=True),
    Column("key", String(256), primary_key=True),
    Column("value", Text, nullable=False),
)

# Every logged point; ``run_latest_metrics`` keeps the last one per key so the
# tracker can sort and filter 10,000s of runs without scanning histories.
run_metrics = Table(
    "run_metrics",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("run_id", String(32), ForeignKey("runs.id"), nullable=False),
    Column("key", String(256), nullable=False),
    Column("value", Float, nullable=False),
    Column("step", BigInteger, nullable=False),
    Column("timestamp", Float, nullable=False),
    Index("ix_run_metrics_run_key_step", "run_id", "key", "step"),
)

run_latest_metrics = Table(
    "run_latest_metrics",
    metadata,
    Column("run_id", String(32), ForeignKey("runs.id"), primary_key=True),
    Column("key", String(256), primary_key=True),
    Column("value", Float, nullable=False),
    Column("step", BigInteger, nullable=False),
    Column("timestamp", Float, nullable=False),
    Index("ix_run_latest_metrics_key_value", "key", "value"),
)

run_artifacts = Table(
    "run_artifacts",
    metadata,
    Column("run_id", String(32), ForeignKey("runs.id"), primary_key=True),
    Column("path", String(1024), primary_key=True),
    Column("sha256", String(64), nullable=False),
    Column("size", BigInteger, nullable=False),
)

component_versions = Table(
    "component_versions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(32), nullable=False),
    Column("lineage", String(512), nullable=False),
    Column("fingerprint", String(64), nullable=False),
    Column("shape_fingerprint", String(64), nullable=False),
    Column("major", Integer, nullable=False),
    Column("minor", Integer, nullable=False),
    Column("details", Text, nullable=False),
    Column("created_at", Float, nullable=False),
    UniqueConstraint("lineage", "fingerprint"),
    UniqueConstraint("lineage", "major", "minor"),
    Index("ix_component_versions_lineage_shape", "lineage", "shape_fingerprint"),
    # Revision 0004: the last label of a shape in one index probe, however long the lineage.
    Index(
        "ix_component_versions_lineage_shape_label",
        "lineage",
        "shape_fingerprint",
        "major",
        "minor",
    ),
)

run_components = Table(
    "run_components",
    metadata,
    Column("run_id", String(32), ForeignKey("runs.id"), primary_key=True),
    Column("role", String(64), primary_key=True),
    Column("component_version_id", Integer, ForeignKey("component_versions.id"), nullable=False),
)

models = Table(
    "models",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(128), nullable=False, unique=True),
    Column("created_at", Float, nullable=False),
)

model_versions = Table(
    "model_versions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("model_id", Integer, ForeignKey("models.id"), nullable=False),
    Column("version", Integer, nullable=False),
    Column("run_id", String(32), ForeignKey("runs.id")),
    Column("flavor", String(64), nullable=False),
    Column("artifact_sha256", String(64), nullable=False),
    Column("artifact_size", BigInteger, nullable=False),
    Column("signature", Text, nullable=False),
    Column("input_example", Text, nullable=False),
    Column("flavor_details", Text, nullable=False),
    Column("description", Text, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("created_by", String(128), nullable=False),
    UniqueConstraint("model_id", "version"),
    Index("ix_model_versions_run", "run_id"),
)

# The predictor forms of a version (revision 0007): what was tried, timed and chosen per
# workload. Derived from the version, so written at registration and replaced by
# ``models compile``; the version row itself never changes.
model_version_forms = Table(
    "model_version_forms",
    metadata,
    Column("model_version_id", Integer, ForeignKey("model_versions.id"), primary_key=True),
    Column("record", Text, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("created_by", String(128), nullable=False),
)

# A version's reference profile (revision 0013): its train and test data and predictions,
# summarised (``monitoring/profiles.py``). Derived from the version, like its forms.
reference_profiles = Table(
    "reference_profiles",
    metadata,
    Column("model_version_id", Integer, ForeignKey("model_versions.id"), primary_key=True),
    Column("record", Text, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("created_by", String(128), nullable=False),
)

# A team server client's key for each registration it sent (revision 0009): a retried
# registration returns the version its first attempt made.
model_version_keys = Table(
    "model_version_keys",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("model_version_id", Integer, ForeignKey("model_versions.id"), nullable=False),
)

# -- environments (revision 0002) -------------------------------------------------------

# What each environment holds now. ``revision`` counts changes so writers can
# compare-and-swap: an update names the revision it read and fails if another won.
environment_slots = Table(
    "environment_slots",
    metadata,
    Column("model_id", Integer, ForeignKey("models.id"), primary_key=True),
    Column("environment", String(64), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("revision", Integer, nullable=False),
    Column("updated_at", Float, nullable=False),
)

# The audit history. Append-only: database triggers refuse UPDATE and DELETE.
environment_events = Table(
    "environment_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("model_id", Integer, ForeignKey("models.id"), nullable=False),
    Column("environment", String(64), nullable=False),
    Column("action", String(16), nullable=False),
    Column("from_version", Integer),
    Column("to_version", Integer),
    Column("actor", String(128), nullable=False),
    Column("reason", Text, nullable=False),
    Column("gates", Text, nullable=False),
    Column("forced", Boolean, nullable=False),
    Column("request_id", Integer),
    Column("created_at", Float, nullable=False),
    # The shared policy's version that judged the change; None: the project's own file.
    Column("policy_version", Integer),
    Index("ix_environment_events_model_env", "model_id", "environment", "id"),
)

# The team's policy, one row per applied version. Append-only like the history.
policies = Table(
    "policies",
    metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("document", Text, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("author", String(128), nullable=False),
    Column("reason", Text, nullable=False),
    Column("created_at", Float, nullable=False),
)

approval_requests = Table(
    "approval_requests",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("model_id", Integer, ForeignKey("models.id"), nullable=False),
    Column("version", Integer, nullable=False),
    Column("environment", String(64), nullable=False),
    Column("requested_by", String(128), nullable=False),
    Column("reason", Text, nullable=False),
    Column("gates", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("decided_by", String(128)),
    Column("decided_at", Float),
    Column("decision_reason", Text),
    # The version ``--if-holds`` expected in the environment, kept so approval honours it
    # (revision 0006).
    Column("if_holds", Integer),
    Index("ix_approval_requests_status", "status"),
    # At most one waiting request per model, environment and version, even when
    # promotions race (revision 0006). Expired requests are stored as "expired" first.
    Index(
        "ux_approval_requests_pending",
        "model_id",
        "environment",
        "version",
        unique=True,
        sqlite_where=text("status = 'pending'"),
        postgresql_where=text("status = 'pending'"),
    ),
)

# -- shadow traffic (revision 0003) -------------------------------------------------------

# Running totals of live requests also scored by another environment's version.
shadow_results = Table(
    "shadow_results",
    metadata,
    Column("model", String(128), primary_key=True),
    Column("live_environment", String(64), primary_key=True),
    Column("live_version", Integer, primary_key=True),
    Column("shadow_environment", String(64), primary_key=True),
    Column("shadow_version", Integer, primary_key=True),
    Column("requests", BigInteger, nullable=False),
    Column("rows", BigInteger, nullable=False),
    Column("agreeing_rows", BigInteger, nullable=False),
    Column("live_seconds", Float, nullable=False),
    Column("shadow_seconds", Float, nullable=False),
    Column("first_at", Float, nullable=False),
    Column("last_at", Float, nullable=False),
)


# -- batch scoring (revision 0005) ------------------------------------------------------

# One row per batch run: what was scored with which version, into where, and how it ended.
batch_runs = Table(
    "batch_runs",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("job", String(128)),
    Column("trigger", String(16), nullable=False),
    Column("model", String(128), nullable=False),
    Column("version", Integer, nullable=False),
    Column("reference", String(256), nullable=False),
    Column("engine", String(16), nullable=False),
    Column("spec", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("input_fingerprint", String(64), nullable=False),
    Column("input_description", Text, nullable=False),
    Column("output", Text, nullable=False),
    Column("rows_read", BigInteger, nullable=False),
    Column("rows_written", BigInteger, nullable=False),
    Column("rows_rejected", BigInteger, nullable=False),
    Column("checkpoint", Text),
    Column("user", String(128), nullable=False),
    Column("host", String(256), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("started_at", Float, nullable=False),
    Column("heartbeat_at", Float, nullable=False),
    Column("finished_at", Float),
    Column("error", Text),
    # What the run scored, summarised (revision 0013): input profile and predictions, JSON.
    Column("profile", Text),
    Index("ix_batch_runs_started_at", "started_at"),
    Index("ix_batch_runs_job", "job", "started_at"),
)

# Named jobs the scheduler starts: on a cron schedule, or for each file that arrives.
batch_schedules = Table(
    "batch_schedules",
    metadata,
    Column("name", String(128), primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("spec", Text, nullable=False),
    Column("cron", String(128)),
    Column("timezone", String(64)),
    Column("file_pattern", Text),
    Column("catch_up", String(16), nullable=False),
    Column("enabled", Boolean, nullable=False),
    Column("next_run_at", Float),
    Column("lease_owner", String(128)),
    Column("lease_until", Float),
    Column("last_run_id", String(32)),
    Column("created_by", String(128), nullable=False),
    Column("created_at", Float, nullable=False),
)

# Each file a file-arrival trigger has claimed; the unique key is what makes a file
# processed once even with two schedulers looking at the same folder.
batch_trigger_files = Table(
    "batch_trigger_files",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "schedule",
        String(128),
        ForeignKey("batch_schedules.name", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("path", Text, nullable=False),
    Column("fingerprint", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("run_id", String(32)),
    Column("claimed_by", String(128), nullable=False),
    Column("claimed_at", Float, nullable=False),
    Column("lease_until", Float, nullable=False),
    UniqueConstraint("schedule", "fingerprint"),
)

# -- identity (revision 0008) -----------------------------------------------------------

# The people (and bots) a team server signs in. Names are never reused: a user is disabled,
# not deleted, so every name in the history keeps meaning one person.
users = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(128), nullable=False, unique=True),
    Column("created_at", Float, nullable=False),
    Column("created_by", String(128), nullable=False),
    Column("disabled_at", Float),
    Column("disabled_by", String(128)),
)

# Roles held: viewer, member, approver or admin, in one environment or (NULL) in every one.
# NULLs are distinct in a unique constraint, so a partial index keeps the everywhere grants
# unique too.
user_roles = Table(
    "user_roles",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("user_id", Integer, ForeignKey("users.id"), nullable=False),
    Column("role", String(16), nullable=False),
    Column("environment", String(64)),
    Column("granted_at", Float, nullable=False),
    Column("granted_by", String(128), nullable=False),
    UniqueConstraint("user_id", "role", "environment"),
    Index(
        "ux_user_roles_everywhere",
        "user_id",
        "role",
        unique=True,
        sqlite_where=text("environment IS NULL"),
        postgresql_where=text("environment IS NULL"),
    ),
)

# Personal API tokens: only the sha256 of the secret is kept, never the secret.
api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("user_id", Integer, ForeignKey("users.id"), nullable=False),
    Column("label", String(128), nullable=False),
    Column("secret_sha256", String(64), nullable=False, unique=True),
    Column("created_at", Float, nullable=False),
    Column("created_by", String(128), nullable=False),
    Column("expires_at", Float),
    Column("revoked_at", Float),
    Column("last_used_at", Float),
    Index("ix_api_tokens_user", "user_id"),
)

# -- model cards (revision 0011) ----------------------------------------------------------

# The owner's free-text sections of model cards, every edit kept (append-only): the newest
# row of a (model, version, section) is shown; version NULL covers every version.
model_card_sections = Table(
    "model_card_sections",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("model_id", Integer, ForeignKey("models.id"), nullable=False),
    Column("version", Integer),
    Column("section", String(128), nullable=False),
    Column("text", Text, nullable=False),
    Column("author", String(128), nullable=False),
    Column("created_at", Float, nullable=False),
    Index("ix_model_card_sections_model_version", "model_id", "version", "id"),
)

# -- imports (revision 0012) --------------------------------------------------------------

# One row: the random id that names this store in the bundles it writes.
store_identity = Table(
    "store_identity",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("created_at", Float, nullable=False),
)

# Each import that changed this store: records from a bundle or another tracker, who brought
# them in and when. Append-only, like the history it is shown beside.
imports = Table(
    "imports",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(16), nullable=False),
    Column("source", Text, nullable=False),
    Column("source_store", Text, nullable=False),
    Column("sha256", String(64)),
    Column("imported_by", String(128), nullable=False),
    Column("imported_at", Float, nullable=False),
    Column("summary", Text, nullable=False),
)

# Another store's history of imported versions, kept apart from this store's own: those
# promotions passed that store's gates, so nothing here counts them. (origin, origin_id)
# names an event once, however many bundles carry it. Append-only.
imported_events = Table(
    "imported_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("import_id", Integer, ForeignKey("imports.id"), nullable=False),
    Column("model_id", Integer, ForeignKey("models.id"), nullable=False),
    Column("origin", String(512), nullable=False),
    Column("origin_id", BigInteger, nullable=False),
    Column("environment", String(64), nullable=False),
    Column("action", String(16), nullable=False),
    Column("from_version", Integer),
    Column("to_version", Integer),
    Column("actor", String(128), nullable=False),
    Column("reason", Text, nullable=False),
    Column("gates", Text, nullable=False),
    Column("forced", Boolean, nullable=False),
    Column("request_id", BigInteger),
    Column("policy_version", Integer),
    Column("created_at", Float, nullable=False),
    UniqueConstraint("origin", "origin_id"),
    Index("ix_imported_events_model", "model_id", "id"),
)
