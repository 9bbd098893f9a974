"""Running one job: claim it, dispatch it to the handler registered for its ``kind``, record the outcome.

Handlers come from the table the executor was built with (callables, e.g. ``app.services.job_handlers()``);
this package never imports a service. A handler receives a :class:`~app.jobs.context.JobContext` to
report progress, send heartbeats and honour cancellation between units of work, and must write results
idempotently (upserts keyed by the unit of work) because a job re-queued after a worker death runs again
from the start.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Mapping

from app.db.session import is_database_outage
from app.errors import describe_failure
from app.jobs import state as job_state
from app.jobs.context import Handler, JobCancelled, JobContext, UnitRunner
from app.jobs.status import JobStatus
from app.runtime import Runtime

log = logging.getLogger("tscout.tasks")

Handlers = Mapping[str, Handler]


def run_job(runtime: Runtime, job_id: uuid.UUID, worker_id: str, handlers: Handlers,
            units: UnitRunner | None = None) -> JobStatus | None:
    """Claim and run one job to a terminal status. Returns the final status, or None if not claimed."""
    with runtime.sessions.begin() as session:
        if not job_state.claim(session, job_id, worker_id):
            return None
        kind = job_state.get_job(session, job_id).kind
    ctx = JobContext(runtime, job_id, worker_id, units)
    beating = threading.Event()
    beat = threading.Thread(target=_keep_alive, args=(ctx, beating), name=f"heartbeat-{job_id}", daemon=True)
    beat.start()
    try:
        handler = handlers.get(kind)
        if handler is None:
            raise LookupError(f"no handler for job kind {kind!r}; this worker handles {sorted(handlers)}")
        handler(ctx)
    except JobCancelled:
        final, error = JobStatus.CANCELLED, None
    except Exception as exc:  # a failing job must never take the worker down
        if is_database_outage(exc):
            # not the job's fault: it runs again from the start (results are upserts) once the database is back
            log.warning("job %s lost its database mid-run (%s); re-queueing it without spending an attempt",
                        job_id, type(exc).__name__)
            final, error = JobStatus.PENDING, None
        else:
            log.exception("job %s failed", job_id)
            final, error = JobStatus.FAILED, describe_failure(exc, runtime.store.root_paths)
    else:
        # CANCELLED instead if a cancel was requested meanwhile: finish() reads that with its retried write, so
        # work that finishes while the database is down is still recorded (reading it here would lose it)
        final, error = JobStatus.SUCCEEDED, None
    finally:
        beating.set()
        beat.join(timeout=5)
    return finish(runtime, job_id, worker_id, final, error)


def finish(runtime: Runtime, job_id: uuid.UUID, worker_id: str, final: JobStatus,
           error: str | None = None) -> JobStatus:
    """Record the outcome of a run — a terminal status, or PENDING to re-queue the job and give back the
    attempt an outage interrupted — retrying while the database is unreachable (for up to
    ``TSCOUT_JOB_OUTAGE_RETRY_SECONDS``), so an outage never leaves the job RUNNING until the reconciler
    notices. SUCCEEDED becomes CANCELLED if a cancel was requested before it is written (the handler
    finished, but the caller asked to stop). Returns the job's status afterwards."""
    deadline = time.monotonic() + runtime.settings.job_outage_retry_seconds
    delay = 0.25
    while True:
        try:
            with runtime.sessions.begin() as session:
                if final is JobStatus.PENDING:
                    job = job_state.get_job(session, job_id)
                    job_state.transition(session, job_id, JobStatus.PENDING, expected=JobStatus.RUNNING,
                                         owner=worker_id, worker_id=None, attempts=max(job.attempts - 1, 0))
                else:
                    outcome = final
                    if final is JobStatus.SUCCEEDED and job_state.get_job(session, job_id).cancel_requested:
                        outcome = JobStatus.CANCELLED
                    job_state.transition(session, job_id, outcome, expected=JobStatus.RUNNING, error=error,
                                         owner=worker_id)
                return JobStatus(job_state.get_job(session, job_id).status)
        except Exception as exc:
            if not is_database_outage(exc) or time.monotonic() + delay > deadline:
                raise
            log.warning("job %s: recording %s failed (%s); retrying in %.1f s", job_id, final.value,
                        type(exc).__name__, delay)
            time.sleep(delay)
            delay = min(delay * 2, 5.0)


def _keep_alive(ctx: JobContext, stop: threading.Event) -> None:
    """Heartbeat while the handler runs, so a long unit of work is never mistaken for a dead worker."""
    interval = ctx.runtime.settings.job_heartbeat_seconds
    while not stop.wait(interval):
        try:
            ctx.heartbeat(force=True)
        except Exception:  # a missed beat is retried; the reconciler tolerates several
            log.warning("heartbeat for job %s failed", ctx.job_id, exc_info=True)
