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
import uuid
from collections.abc import Mapping

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
        log.exception("job %s failed", job_id)
        final, error = JobStatus.FAILED, f"{type(exc).__name__}: {exc}"
    else:
        final, error = (JobStatus.CANCELLED if ctx.cancelled() else JobStatus.SUCCEEDED), None
    finally:
        beating.set()
        beat.join(timeout=5)
    with runtime.sessions.begin() as session:
        job_state.transition(session, job_id, final, expected=JobStatus.RUNNING, error=error, owner=worker_id)
        return JobStatus(job_state.get_job(session, job_id).status)


def _keep_alive(ctx: JobContext, stop: threading.Event) -> None:
    """Heartbeat while the handler runs, so a long unit of work is never mistaken for a dead worker."""
    interval = ctx.runtime.settings.job_heartbeat_seconds
    while not stop.wait(interval):
        try:
            ctx.heartbeat(force=True)
        except Exception:  # a missed beat is retried; the reconciler tolerates several
            log.warning("heartbeat for job %s failed", ctx.job_id, exc_info=True)
