"""probe runs carry the step budget of their successive-halving rung (0: the job's full budget)

Revision ID: 0005_probe_run_rung
Revises: 0004_score_cache
Create Date: 2026-12-02 18:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_probe_run_rung"
down_revision: str | None = "0004_score_cache"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD = "uq_probe_runs_job_id_backbone_id_arm_seed"
NEW = "uq_probe_runs_job_id_backbone_id_arm_seed_rung_steps"


def upgrade() -> None:
    with op.batch_alter_table("probe_runs") as batch:
        batch.add_column(sa.Column("rung_steps", sa.Integer(), nullable=False, server_default="0"))
        batch.drop_constraint(OLD, type_="unique")
        batch.create_unique_constraint(NEW, ["job_id", "backbone_id", "arm", "seed", "rung_steps"])


def downgrade() -> None:
    # short-rung runs have no place in the old key: they go, the full-budget runs stay
    op.execute(sa.text("DELETE FROM probe_runs WHERE rung_steps <> 0"))
    with op.batch_alter_table("probe_runs") as batch:
        batch.drop_constraint(NEW, type_="unique")
        batch.create_unique_constraint(OLD, ["job_id", "backbone_id", "arm", "seed"])
        batch.drop_column("rung_steps")
