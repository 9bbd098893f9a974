"""Job rows for the job-state and executor tests."""

from __future__ import annotations

import uuid

from app.db.tables import Job, Project
from app.jobs import state as job_state
from app.jobs.status import JobStatus


def make_job(runtime, kind="test-ok", status=JobStatus.PENDING, **values) -> uuid.UUID:
    with runtime.sessions.begin() as s:
        project = s.query(Project).filter_by(name="p").one_or_none() or Project(name="p")
        s.add(project)
        s.flush()
        job = Job(project_id=project.id, kind=kind, status=status.value, **values)
        s.add(job)
        s.flush()
        return job.id


def job_status(runtime, job_id) -> JobStatus:
    with runtime.sessions() as s:
        return JobStatus(job_state.get_job(s, job_id).status)
