"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-28 13:11:53.538900
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.db.types

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        "embeddings",
        sa.Column("cache_key", sa.String(length=64), nullable=False),
        sa.Column("dataset_digest", sa.String(length=64), nullable=False),
        sa.Column("backbone_id", sa.String(length=300), nullable=False),
        sa.Column("weights_digest", sa.String(length=64), nullable=False),
        sa.Column("layer", sa.String(length=200), nullable=False),
        sa.Column("preprocess_digest", sa.String(length=64), nullable=False),
        sa.Column("split", sa.String(length=20), nullable=False),
        sa.Column("artifact_key", sa.String(length=500), nullable=False),
        sa.Column("num_samples", sa.Integer(), nullable=False),
        sa.Column("dim", sa.Integer(), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", app.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_embeddings")),
        sa.UniqueConstraint("cache_key", name=op.f("uq_embeddings_cache_key")),
    )
    with op.batch_alter_table("embeddings", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_embeddings_backbone_id"), ["backbone_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_embeddings_created_at"), ["created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_embeddings_dataset_digest"), ["dataset_digest"], unique=False)

    op.create_table(
        "projects",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", app.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_projects")),
        sa.UniqueConstraint("name", name=op.f("uq_projects_name")),
    )
    with op.batch_alter_table("projects", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_projects_created_at"), ["created_at"], unique=False)

    op.create_table(
        "api_keys",
        sa.Column("project_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("prefix", sa.String(length=32), nullable=False),
        sa.Column("key_hash", sa.String(length=128), nullable=False),
        sa.Column("last_used_at", app.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", app.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", app.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_api_keys_project_id_projects"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_api_keys_key_hash")),
    )
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_api_keys_created_at"), ["created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_api_keys_prefix"), ["prefix"], unique=False)
        batch_op.create_index(batch_op.f("ix_api_keys_project_id"), ["project_id"], unique=False)

    op.create_table(
        "backbones",
        sa.Column("project_id", sa.Uuid(), nullable=False),
        sa.Column("backbone_id", sa.String(length=300), nullable=False),
        sa.Column("family", sa.String(length=40), nullable=False),
        sa.Column("modality", sa.String(length=20), nullable=False),
        sa.Column("weights_digest", sa.String(length=64), nullable=True),
        sa.Column("artifact_key", sa.String(length=500), nullable=True),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", app.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_backbones_project_id_projects"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_backbones")),
        sa.UniqueConstraint("project_id", "backbone_id", name=op.f("uq_backbones_project_id_backbone_id")),
    )
    with op.batch_alter_table("backbones", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_backbones_backbone_id"), ["backbone_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_backbones_created_at"), ["created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_backbones_family"), ["family"], unique=False)
        batch_op.create_index(batch_op.f("ix_backbones_modality"), ["modality"], unique=False)
        batch_op.create_index(batch_op.f("ix_backbones_project_id"), ["project_id"], unique=False)

    op.create_table(
        "datasets",
        sa.Column("project_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=300), nullable=False),
        sa.Column("modality", sa.String(length=20), nullable=False),
        sa.Column("task_type", sa.String(length=20), nullable=False),
        sa.Column("format", sa.String(length=40), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("artifact_key", sa.String(length=500), nullable=False),
        sa.Column("num_samples", sa.Integer(), nullable=False),
        sa.Column("num_classes", sa.Integer(), nullable=True),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("stats", sa.JSON(), nullable=False),
        sa.Column("split", sa.JSON(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", app.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_datasets_project_id_projects"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_datasets")),
        sa.UniqueConstraint("project_id", "digest", name=op.f("uq_datasets_project_id_digest")),
    )
    with op.batch_alter_table("datasets", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_datasets_created_at"), ["created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_datasets_digest"), ["digest"], unique=False)
        batch_op.create_index(batch_op.f("ix_datasets_modality"), ["modality"], unique=False)
        batch_op.create_index(batch_op.f("ix_datasets_name"), ["name"], unique=False)
        batch_op.create_index(batch_op.f("ix_datasets_project_id"), ["project_id"], unique=False)
        batch_op.create_index("ix_datasets_project_id_created_at", ["project_id", "created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_datasets_task_type"), ["task_type"], unique=False)

    op.create_table(
        "jobs",
        sa.Column("project_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("dataset_id", sa.Uuid(), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("request", sa.JSON(), nullable=False),
        sa.Column("request_digest", sa.String(length=64), nullable=False),
        sa.Column("idempotency_key", sa.String(length=200), nullable=True),
        sa.Column("stage", sa.String(length=40), nullable=True),
        sa.Column("progress", sa.JSON(), nullable=False),
        sa.Column("result", sa.JSON(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False),
        sa.Column("worker_id", sa.String(length=200), nullable=True),
        sa.Column("heartbeat_at", app.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("started_at", app.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("finished_at", app.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("updated_at", app.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", app.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["dataset_id"], ["datasets.id"], name=op.f("fk_jobs_dataset_id_datasets"), ondelete="RESTRICT"
        ),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_jobs_project_id_projects"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jobs")),
        sa.UniqueConstraint("project_id", "idempotency_key", name=op.f("uq_jobs_project_id_idempotency_key")),
    )
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_jobs_created_at"), ["created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_jobs_dataset_id"), ["dataset_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_jobs_project_id"), ["project_id"], unique=False)
        batch_op.create_index("ix_jobs_project_id_created_at", ["project_id", "created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_jobs_status"), ["status"], unique=False)

    op.create_table(
        "metric_scores",
        sa.Column("job_id", sa.Uuid(), nullable=False),
        sa.Column("backbone_id", sa.String(length=300), nullable=False),
        sa.Column("layer", sa.String(length=200), nullable=False),
        sa.Column("metric", sa.String(length=80), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("variant", sa.String(length=80), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", app.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name=op.f("fk_metric_scores_job_id_jobs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_metric_scores")),
        sa.UniqueConstraint(
            "job_id",
            "backbone_id",
            "layer",
            "metric",
            name=op.f("uq_metric_scores_job_id_backbone_id_layer_metric"),
        ),
    )
    with op.batch_alter_table("metric_scores", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_metric_scores_backbone_id"), ["backbone_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_metric_scores_created_at"), ["created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_metric_scores_job_id"), ["job_id"], unique=False)

    op.create_table(
        "probe_runs",
        sa.Column("job_id", sa.Uuid(), nullable=False),
        sa.Column("backbone_id", sa.String(length=300), nullable=False),
        sa.Column("layer", sa.String(length=200), nullable=False),
        sa.Column("arm", sa.String(length=20), nullable=False),
        sa.Column("seed", sa.Integer(), nullable=False),
        sa.Column("metric", sa.Float(), nullable=True),
        sa.Column("steps", sa.Integer(), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("curve", sa.JSON(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", app.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name=op.f("fk_probe_runs_job_id_jobs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_probe_runs")),
        sa.UniqueConstraint(
            "job_id", "backbone_id", "arm", "seed", name=op.f("uq_probe_runs_job_id_backbone_id_arm_seed")
        ),
    )
    with op.batch_alter_table("probe_runs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_probe_runs_backbone_id"), ["backbone_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_probe_runs_created_at"), ["created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_probe_runs_job_id"), ["job_id"], unique=False)

    op.create_table(
        "rankings",
        sa.Column("job_id", sa.Uuid(), nullable=False),
        sa.Column("backbone_id", sa.String(length=300), nullable=False),
        sa.Column("best_layer", sa.String(length=200), nullable=False),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.Column("rank_ci_low", sa.Float(), nullable=True),
        sa.Column("rank_ci_high", sa.Float(), nullable=True),
        sa.Column("aggregate", sa.Float(), nullable=False),
        sa.Column("scores", sa.JSON(), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", app.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name=op.f("fk_rankings_job_id_jobs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rankings")),
        sa.UniqueConstraint("job_id", "backbone_id", name=op.f("uq_rankings_job_id_backbone_id")),
    )
    with op.batch_alter_table("rankings", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_rankings_backbone_id"), ["backbone_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_rankings_created_at"), ["created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_rankings_job_id"), ["job_id"], unique=False)

    op.create_table(
        "verdicts",
        sa.Column("job_id", sa.Uuid(), nullable=False),
        sa.Column("backbone_id", sa.String(length=300), nullable=False),
        sa.Column("verdict", sa.String(length=30), nullable=False),
        sa.Column("delta_mean", sa.Float(), nullable=True),
        sa.Column("ci_low", sa.Float(), nullable=True),
        sa.Column("ci_high", sa.Float(), nullable=True),
        sa.Column("p_value", sa.Float(), nullable=True),
        sa.Column("n_seeds", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", app.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name=op.f("fk_verdicts_job_id_jobs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_verdicts")),
        sa.UniqueConstraint("job_id", "backbone_id", name=op.f("uq_verdicts_job_id_backbone_id")),
    )
    with op.batch_alter_table("verdicts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_verdicts_backbone_id"), ["backbone_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_verdicts_created_at"), ["created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_verdicts_job_id"), ["job_id"], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("verdicts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_verdicts_job_id"))
        batch_op.drop_index(batch_op.f("ix_verdicts_created_at"))
        batch_op.drop_index(batch_op.f("ix_verdicts_backbone_id"))

    op.drop_table("verdicts")
    with op.batch_alter_table("rankings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_rankings_job_id"))
        batch_op.drop_index(batch_op.f("ix_rankings_created_at"))
        batch_op.drop_index(batch_op.f("ix_rankings_backbone_id"))

    op.drop_table("rankings")
    with op.batch_alter_table("probe_runs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_probe_runs_job_id"))
        batch_op.drop_index(batch_op.f("ix_probe_runs_created_at"))
        batch_op.drop_index(batch_op.f("ix_probe_runs_backbone_id"))

    op.drop_table("probe_runs")
    with op.batch_alter_table("metric_scores", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_metric_scores_job_id"))
        batch_op.drop_index(batch_op.f("ix_metric_scores_created_at"))
        batch_op.drop_index(batch_op.f("ix_metric_scores_backbone_id"))

    op.drop_table("metric_scores")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_jobs_status"))
        batch_op.drop_index("ix_jobs_project_id_created_at")
        batch_op.drop_index(batch_op.f("ix_jobs_project_id"))
        batch_op.drop_index(batch_op.f("ix_jobs_dataset_id"))
        batch_op.drop_index(batch_op.f("ix_jobs_created_at"))

    op.drop_table("jobs")
    with op.batch_alter_table("datasets", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_datasets_task_type"))
        batch_op.drop_index("ix_datasets_project_id_created_at")
        batch_op.drop_index(batch_op.f("ix_datasets_project_id"))
        batch_op.drop_index(batch_op.f("ix_datasets_name"))
        batch_op.drop_index(batch_op.f("ix_datasets_modality"))
        batch_op.drop_index(batch_op.f("ix_datasets_digest"))
        batch_op.drop_index(batch_op.f("ix_datasets_created_at"))

    op.drop_table("datasets")
    with op.batch_alter_table("backbones", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_backbones_project_id"))
        batch_op.drop_index(batch_op.f("ix_backbones_modality"))
        batch_op.drop_index(batch_op.f("ix_backbones_family"))
        batch_op.drop_index(batch_op.f("ix_backbones_created_at"))
        batch_op.drop_index(batch_op.f("ix_backbones_backbone_id"))

    op.drop_table("backbones")
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_api_keys_project_id"))
        batch_op.drop_index(batch_op.f("ix_api_keys_prefix"))
        batch_op.drop_index(batch_op.f("ix_api_keys_created_at"))

    op.drop_table("api_keys")
    with op.batch_alter_table("projects", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_projects_created_at"))

    op.drop_table("projects")
    with op.batch_alter_table("embeddings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_embeddings_dataset_digest"))
        batch_op.drop_index(batch_op.f("ix_embeddings_created_at"))
        batch_op.drop_index(batch_op.f("ix_embeddings_backbone_id"))

    op.drop_table("embeddings")
