"""probe runs carry a reuse key: identical probe units are stored once and reused across jobs

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 23:10:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("probe_runs") as batch:
        batch.add_column(sa.Column("reuse_key", sa.String(length=64), nullable=True))
        batch.create_index(batch.f("ix_probe_runs_reuse_key"), ["reuse_key"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("probe_runs") as batch:
        batch.drop_index(batch.f("ix_probe_runs_reuse_key"))
        batch.drop_column("reuse_key")
