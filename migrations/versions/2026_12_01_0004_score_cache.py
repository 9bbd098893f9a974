"""score cache across jobs

Revision ID: 0004_score_cache
Revises: 0003_ranking_snapshots
Create Date: 2026-12-01 23:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.db.types

revision: str = "0004_score_cache"
down_revision: str | None = "0003_ranking_snapshots"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "score_cache",
        sa.Column("cache_key", sa.String(length=64), nullable=False),
        sa.Column("metric", sa.String(length=80), nullable=False),
        sa.Column("version", sa.String(length=40), nullable=False),
        sa.Column("variant", sa.String(length=80), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", app.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_score_cache")),
        sa.UniqueConstraint("cache_key", name=op.f("uq_score_cache_cache_key")),
    )
    with op.batch_alter_table("score_cache", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_score_cache_created_at"), ["created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_score_cache_metric"), ["metric"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("score_cache", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_score_cache_metric"))
        batch_op.drop_index(batch_op.f("ix_score_cache_created_at"))
    op.drop_table("score_cache")
