"""Generic job status (every job kind); ranking jobs also have their richer resource."""

from __future__ import annotations

import uuid

from fastapi import APIRouter

from app.api.deps import PrincipalDep, SessionDep
from app.api.errors import error_responses
from app.schemas.jobs import JobRead
from app.services import jobs as job_state

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])


@router.get(
    "/{job_id}",
    operation_id="jobs-get",
    summary="A job's status and progress",
    responses=error_responses(401, 404, 422),
)
def get_job(job_id: uuid.UUID, session: SessionDep, principal: PrincipalDep) -> JobRead:
    return JobRead.model_validate(job_state.get_job(session, job_id, principal.project_id))
