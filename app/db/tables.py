"""Tables. One class per table; schemas (``app.schemas``) are separate classes.

Every row a caller owns carries ``project_id``; queries filter on it (tenancy). Result tables are keyed
so that a task re-running a unit of work upserts instead of duplicating (see the unique constraints).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, CreatedMixin, IdMixin, utcnow


class Project(IdMixin, CreatedMixin, Base):
    __tablename__ = "projects"

    name: Mapped[str] = mapped_column(String(200), unique=True)


class ApiKey(IdMixin, CreatedMixin, Base):
    __tablename__ = "api_keys"

    project_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    prefix: Mapped[str] = mapped_column(String(32), index=True)
    key_hash: Mapped[str] = mapped_column(String(128), unique=True)
    last_used_at: Mapped[datetime | None] = mapped_column(default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)


class Dataset(IdMixin, CreatedMixin, Base):
    __tablename__ = "datasets"
    __table_args__ = (
        UniqueConstraint("project_id", "digest"),
        Index("ix_datasets_project_id_created_at", "project_id", "created_at"),
    )

    project_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(300), index=True)
    modality: Mapped[str] = mapped_column(String(20), index=True)
    task_type: Mapped[str] = mapped_column(String(20), index=True)
    format: Mapped[str] = mapped_column(String(40))
    digest: Mapped[str] = mapped_column(String(64), index=True)
    artifact_key: Mapped[str] = mapped_column(String(500))
    num_samples: Mapped[int] = mapped_column(Integer)
    num_classes: Mapped[int | None] = mapped_column(Integer, default=None)
    size_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    stats: Mapped[dict[str, Any]] = mapped_column(default=dict)
    split: Mapped[dict[str, Any]] = mapped_column(default=dict)


class Backbone(IdMixin, CreatedMixin, Base):
    """A caller-registered backbone; built-ins live in ``models/*.toml`` and are not rows."""

    __tablename__ = "backbones"
    __table_args__ = (UniqueConstraint("project_id", "backbone_id"),)

    project_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    backbone_id: Mapped[str] = mapped_column(String(300), index=True)
    family: Mapped[str] = mapped_column(String(40), index=True)
    modality: Mapped[str] = mapped_column(String(20), index=True)
    weights_digest: Mapped[str | None] = mapped_column(String(64), default=None)
    artifact_key: Mapped[str | None] = mapped_column(String(500), default=None)
    spec: Mapped[dict[str, Any]] = mapped_column(default=dict)


class Job(IdMixin, CreatedMixin, Base):
    __tablename__ = "jobs"
    __table_args__ = (
        UniqueConstraint("project_id", "idempotency_key"),
        Index("ix_jobs_project_id_created_at", "project_id", "created_at"),
    )

    project_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(40), default="ranking")
    dataset_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("datasets.id", ondelete="RESTRICT"), index=True, default=None
    )
    status: Mapped[str] = mapped_column(String(20), default="PENDING", index=True)  # JobStatus.PENDING: tables sit below app.jobs
    request: Mapped[dict[str, Any]] = mapped_column(default=dict)
    request_digest: Mapped[str] = mapped_column(String(64), default="")
    idempotency_key: Mapped[str | None] = mapped_column(String(200), default=None)
    stage: Mapped[str | None] = mapped_column(String(40), default=None)
    progress: Mapped[dict[str, Any]] = mapped_column(default=dict)
    result: Mapped[dict[str, Any]] = mapped_column(default=dict)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    worker_id: Mapped[str | None] = mapped_column(String(200), default=None)
    heartbeat_at: Mapped[datetime | None] = mapped_column(default=None)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Embedding(IdMixin, CreatedMixin, Base):
    """Index of the content-addressed embedding cache; the array itself is an artifact."""

    __tablename__ = "embeddings"

    cache_key: Mapped[str] = mapped_column(String(64), unique=True)
    dataset_digest: Mapped[str] = mapped_column(String(64), index=True)
    backbone_id: Mapped[str] = mapped_column(String(300), index=True)
    weights_digest: Mapped[str] = mapped_column(String(64))
    layer: Mapped[str] = mapped_column(String(200))
    preprocess_digest: Mapped[str] = mapped_column(String(64))
    split: Mapped[str] = mapped_column(String(20))
    artifact_key: Mapped[str] = mapped_column(String(500))
    num_samples: Mapped[int] = mapped_column(Integer)
    dim: Mapped[int] = mapped_column(Integer)
    size_bytes: Mapped[int] = mapped_column(BigInteger, default=0)


class ScoreCacheEntry(IdMixin, CreatedMixin, Base):
    """The score cache across jobs: one content-addressed row per metric value (see ``app.db.score_cache``).

    ``cache_key`` is a digest of everything the value depends on; the other columns describe it (and let a
    metric's rows be listed or purged), they are not part of the lookup.
    """

    __tablename__ = "score_cache"

    cache_key: Mapped[str] = mapped_column(String(64), unique=True)
    metric: Mapped[str] = mapped_column(String(80), index=True)
    version: Mapped[str] = mapped_column(String(40))
    variant: Mapped[str] = mapped_column(String(80), default="")
    value: Mapped[float | None] = mapped_column(Float, default=None)
    seconds: Mapped[float] = mapped_column(Float, default=0.0)
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)


class MetricScore(IdMixin, CreatedMixin, Base):
    __tablename__ = "metric_scores"
    __table_args__ = (UniqueConstraint("job_id", "backbone_id", "layer", "metric"),)

    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    backbone_id: Mapped[str] = mapped_column(String(300), index=True)
    layer: Mapped[str] = mapped_column(String(200))
    metric: Mapped[str] = mapped_column(String(80))
    value: Mapped[float | None] = mapped_column(Float, default=None)
    variant: Mapped[str] = mapped_column(String(80), default="")
    seconds: Mapped[float] = mapped_column(Float, default=0.0)
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)


class Ranking(IdMixin, CreatedMixin, Base):
    """One row per job × backbone: the backbone's place in the job's ranked table."""

    __tablename__ = "rankings"
    __table_args__ = (UniqueConstraint("job_id", "backbone_id"),)

    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    backbone_id: Mapped[str] = mapped_column(String(300), index=True)
    best_layer: Mapped[str] = mapped_column(String(200))
    rank: Mapped[int] = mapped_column(Integer)
    rank_ci_low: Mapped[float | None] = mapped_column(Float, default=None)
    rank_ci_high: Mapped[float | None] = mapped_column(Float, default=None)
    aggregate: Mapped[float] = mapped_column(Float)
    scores: Mapped[dict[str, Any]] = mapped_column(default=dict)
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)


class ProbeRun(IdMixin, CreatedMixin, Base):
    """One short training run: job × backbone × arm × seed × rung, with its learning curve.

    ``rung_steps`` is 0 for a run at the job's full step budget, else the short budget of the
    successive-halving rung it ran in (``ProbeOptions.halving``): one seed can run at several budgets.

    ``reuse_key`` digests everything the run's result depends on (dataset, split, arm, weights or
    architecture, cut, recipe, seed): a later job whose unit has the same key copies the stored result
    instead of training again (``app.services.rankings.stages.probe``).
    """

    __tablename__ = "probe_runs"
    __table_args__ = (UniqueConstraint("job_id", "backbone_id", "arm", "seed", "rung_steps"),)

    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    backbone_id: Mapped[str] = mapped_column(String(300), index=True)
    layer: Mapped[str] = mapped_column(String(200))
    arm: Mapped[str] = mapped_column(String(20))
    seed: Mapped[int] = mapped_column(Integer)
    rung_steps: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    metric: Mapped[float | None] = mapped_column(Float, default=None)
    steps: Mapped[int] = mapped_column(Integer, default=0)
    seconds: Mapped[float] = mapped_column(Float, default=0.0)
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    curve: Mapped[list[Any]] = mapped_column(default=list)
    reuse_key: Mapped[str | None] = mapped_column(String(64), default=None, index=True)


class VerdictRow(IdMixin, CreatedMixin, Base):
    __tablename__ = "verdicts"
    __table_args__ = (UniqueConstraint("job_id", "backbone_id"),)

    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    backbone_id: Mapped[str] = mapped_column(String(300), index=True)
    verdict: Mapped[str] = mapped_column(String(30))
    delta_mean: Mapped[float | None] = mapped_column(Float, default=None)
    ci_low: Mapped[float | None] = mapped_column(Float, default=None)
    ci_high: Mapped[float | None] = mapped_column(Float, default=None)
    p_value: Mapped[float | None] = mapped_column(Float, default=None)
    n_seeds: Mapped[int] = mapped_column(Integer, default=0)
    text: Mapped[str] = mapped_column(Text, default="")
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)


class RankingSnapshot(Base):
    """The response body of a finished ranking job, serialised once: a terminal job never changes, so its
    reads serve these bytes instead of rebuilding the table from rows."""

    __tablename__ = "ranking_snapshots"

    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
