"""Job status as other services see it."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import Field

from app.jobs.status import JobStatus
from app.schemas.common import ReadModel


class JobRead(ReadModel):
    id: uuid.UUID
    kind: str
    status: JobStatus
    dataset_id: uuid.UUID | None = None
    stage: str | None = None
    progress: dict[str, Any] = Field(default_factory=dict, description="{stage, done, total, stages{…}}")
    error: str | None = None
    attempts: int = 0
    cancel_requested: bool = False
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
