"""Job state: the one place where a job's status changes, plus claiming, heartbeats and recovery.

Every transition goes through :func:`transition`, which refuses to leave a terminal status. Claims and
transitions are conditional UPDATEs (``WHERE status = :expected``), so two workers can never both run
a job and a cancel racing a finish resolves to exactly one terminal status.
"""

from __future__ import annotations

import os
import socket
import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.db.base import utcnow
from app.db.tables import Job
from app.errors import Conflict, NotFound, raises
from app.jobs.status import JobStatus


class IllegalTransition(RuntimeError):
    pass


@raises(NotFound)
def get_job(session: Session, job_id: uuid.UUID, project_id: uuid.UUID | None = None) -> Job:
    """The job, scoped to ``project_id`` when given (another project's job is 'not found')."""
    job = session.get(Job, job_id)
    if job is None or (project_id is not None and job.project_id != project_id):
        raise NotFound(f"job {job_id} not found")
    return job


def transition(
    session: Session,
    job_id: uuid.UUID,
    new: JobStatus,
    *,
    expected: JobStatus | None = None,
    error: str | None = None,
    owner: str | None = None,
    **values: Any,
) -> bool:
    """Move a job to ``new`` if its current status allows it; returns False if it lost a race.

    ``owner``: only if the job is still held by this worker (a worker presumed dead and replaced must
    not overwrite its successor's outcome)."""
    job = session.get(Job, job_id, populate_existing=True)
    if job is None:
        raise NotFound(f"job {job_id} not found")
    current = JobStatus(job.status)
    if expected is not None and current is not expected:
        return False
    if owner is not None and job.worker_id != owner:
        return False
    if not current.can_become(new):
        if current.is_terminal():
            return False
        raise IllegalTransition(f"job {job_id}: {current} → {new} is not allowed")
    now = utcnow()
    values = dict(values)
    if new is JobStatus.RUNNING:
        values.setdefault("started_at", now)
        values.setdefault("heartbeat_at", now)
    if new.is_terminal():
        values.setdefault("finished_at", now)
    if error is not None:
        values["error"] = error[:4000]
    guard = [Job.id == job_id, Job.status == current.value]
    if owner is not None:
        guard.append(Job.worker_id == owner)
    result = session.execute(
        update(Job)
        .where(*guard)
        .values(status=new.value, updated_at=now, **values)
        .execution_options(synchronize_session=False)
    )
    session.flush()
    session.refresh(job)
    return result.rowcount == 1


def claim(session: Session, job_id: uuid.UUID, worker_id: str) -> bool:
    """PENDING → RUNNING for this worker; False if another worker got it first or it is not pending."""
    job = session.get(Job, job_id, populate_existing=True)
    if job is None or job.status != JobStatus.PENDING.value:
        return False
    if job.cancel_requested:
        transition(session, job_id, JobStatus.CANCELLED, expected=JobStatus.PENDING)
        return False
    return transition(
        session,
        job_id,
        JobStatus.RUNNING,
        expected=JobStatus.PENDING,
        worker_id=worker_id,
        attempts=job.attempts + 1,
    )


def heartbeat(session: Session, job_id: uuid.UUID, worker_id: str) -> None:
    session.execute(
        update(Job)
        .where(Job.id == job_id, Job.worker_id == worker_id, Job.status == JobStatus.RUNNING.value)
        .values(heartbeat_at=utcnow())
        .execution_options(synchronize_session=False)
    )


def set_progress(
    session: Session, job_id: uuid.UUID, stage: str, done: int, total: int, **extra: Any
) -> None:
    """Record progress of the current stage; earlier stages keep their final counts."""
    job = session.get(Job, job_id, populate_existing=True)
    if job is None:
        raise NotFound(f"job {job_id} not found")
    progress = dict(job.progress or {})
    stages = dict(progress.get("stages", {}))
    entry = dict(stages.get(stage, {}))
    now = utcnow()
    entry.setdefault("started_at", now.isoformat())
    entry.update(done=done, total=total, updated_at=now.isoformat(), **extra)
    stages[stage] = entry
    progress.update(stage=stage, done=done, total=total, stages=stages)
    job.progress = progress
    job.stage = stage
    job.heartbeat_at = now
    session.flush()


def merge_result(session: Session, job_id: uuid.UUID, **values: Any) -> None:
    """Merge ``values`` into the job's ``result`` document (stages add their parts one after another)."""
    job = session.get(Job, job_id, populate_existing=True)
    if job is None:
        raise NotFound(f"job {job_id} not found")
    job.result = {**(job.result or {}), **values}
    session.flush()


@raises(NotFound, Conflict)
def request_cancel(session: Session, job_id: uuid.UUID, project_id: uuid.UUID) -> Job:
    """Ask a job to stop: PENDING jobs are cancelled at once, RUNNING ones at their next unit of work."""
    job = get_job(session, job_id, project_id)
    status = JobStatus(job.status)
    if status.is_terminal():
        raise Conflict(f"job {job_id} is already {status.value}")
    job.cancel_requested = True
    session.flush()
    if status is JobStatus.PENDING:
        transition(session, job_id, JobStatus.CANCELLED, expected=JobStatus.PENDING)
    return job


def pending_job_ids(session: Session, limit: int = 100) -> list[uuid.UUID]:
    rows = session.scalars(
        select(Job.id).where(Job.status == JobStatus.PENDING.value).order_by(Job.created_at).limit(limit)
    )
    return list(rows)


def owner_is_dead_here(worker_id: str | None) -> bool:
    """True if ``worker_id`` (``local:<host>:<pid>:…`` or ``ray:<host>:<pid>:…``, see the executors) names a
    process on this host that no longer exists — its jobs need not wait out the stale window. A reused pid
    reads as alive, and then the heartbeat's stale window still applies."""
    if not worker_id:
        return False
    kind, _, rest = worker_id.partition(":")
    host, _, rest = rest.partition(":")
    pid_text = rest.partition(":")[0]
    if kind not in ("local", "ray") or host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # exists, owned by someone else
        return False
    return False


def reconcile_stale(
    session: Session, *, stale_after: float, max_attempts: int, dead_workers: set[str] | None = None
) -> tuple[list[uuid.UUID], list[uuid.UUID]]:
    """Re-queue RUNNING jobs whose worker is gone (silent past ``stale_after`` s, named dead, or a process of
    this host that no longer exists).

    A job that has already used ``max_attempts`` ends FAILED with the reason. Returns (requeued, failed).
    """
    cutoff = utcnow() - timedelta(seconds=stale_after)
    requeued: list[uuid.UUID] = []
    failed: list[uuid.UUID] = []
    for job in session.scalars(select(Job).where(Job.status == JobStatus.RUNNING.value)).all():
        beat = job.heartbeat_at or job.started_at or job.created_at
        dead = ((dead_workers is not None and job.worker_id in dead_workers) or beat < cutoff
                or owner_is_dead_here(job.worker_id))
        if not dead:
            continue
        if job.cancel_requested:
            transition(session, job.id, JobStatus.CANCELLED, expected=JobStatus.RUNNING)
        elif job.attempts >= max_attempts:
            transition(
                session,
                job.id,
                JobStatus.FAILED,
                expected=JobStatus.RUNNING,
                error=f"worker {job.worker_id} died {job.attempts} times; giving up",
            )
            failed.append(job.id)
        elif transition(session, job.id, JobStatus.PENDING, expected=JobStatus.RUNNING, worker_id=None):
            requeued.append(job.id)
    return requeued, failed
