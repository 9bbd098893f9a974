"""Generic job status (every job kind); ranking jobs also have their richer resource."""

from __future__ import annotations

import uuid

from fastapi import APIRouter

from app.api.deps import PrincipalDep, SessionDep
from app.api.errors import responses_for
from app.jobs import state as job_state
from app.schemas.jobs import JobRead

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])


@router.get(
    "/{job_id}",
    operation_id="jobs-get",
    summary="A job's status and progress",
    responses=responses_for(job_state.get_job),
)
def get_job(job_id: uuid.UUID, session: SessionDep, principal: PrincipalDep) -> JobRead:
    return JobRead.model_validate(job_state.get_job(session, job_id, principal.project_id))
