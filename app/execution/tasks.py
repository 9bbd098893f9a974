"""Task entry points: they take ids, open their own sessions, and own every job transition.

``run_job`` claims a PENDING job, dispatches it to the handler registered for its ``kind`` and records
the outcome. A handler receives a :class:`JobContext` to report progress, send heartbeats and honour
cancellation between units of work. Handlers must write results idempotently (upserts keyed by the
unit of work) because a job re-queued after a worker death runs again from the start.
"""

from __future__ import annotations

import importlib
import logging
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from app.enums import JobStatus
from app.execution.units import InlineUnitRunner, UnitRunner
from app.runtime import Runtime
from app.services import jobs as job_state

log = logging.getLogger("tscout.tasks")

#: job kind → "module:function" of its handler, imported on first use (explicit, no import side effects)
JOB_HANDLERS: dict[str, str] = {
    "ranking": "app.services.ranking_job:run_ranking_job",
}


class JobCancelled(Exception):
    """Raised inside a handler when the job was asked to stop."""


class JobContext:
    """What a running job may do: report progress, check for cancellation, keep its heartbeat."""

    def __init__(self, runtime: Runtime, job_id: uuid.UUID, worker_id: str,
                 units: UnitRunner | None = None) -> None:
        self.runtime = runtime
        self.job_id = job_id
        self.worker_id = worker_id
        self.units: UnitRunner = units or InlineUnitRunner(runtime)
        self._last_beat = 0.0
        self._lock = threading.Lock()

    def progress(self, stage: str, done: int, total: int, **extra: Any) -> None:
        with self._lock, self.runtime.sessions.begin() as session:
            job_state.set_progress(session, self.job_id, stage, done, total, **extra)
            self._last_beat = time.monotonic()

    def heartbeat(self, force: bool = False) -> None:
        if not force and time.monotonic() - self._last_beat < self.runtime.settings.job_heartbeat_seconds:
            return
        with self._lock, self.runtime.sessions.begin() as session:
            job_state.heartbeat(session, self.job_id, self.worker_id)
            self._last_beat = time.monotonic()

    def cancelled(self) -> bool:
        with self.runtime.sessions() as session:
            job = job_state.get_job(session, self.job_id)
            return bool(job.cancel_requested) or JobStatus(job.status).is_terminal()

    def check_cancelled(self) -> None:
        """Call between units of work: raises :class:`JobCancelled` if a cancel was requested."""
        self.heartbeat()
        if self.cancelled():
            raise JobCancelled(str(self.job_id))


def _resolve(kind: str) -> Callable[[JobContext], None]:
    target = JOB_HANDLERS.get(kind)
    if target is None:
        raise LookupError(f"no handler for job kind {kind!r}")
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def run_job(runtime: Runtime, job_id: uuid.UUID, worker_id: str,
            units: UnitRunner | None = None) -> JobStatus | None:
    """Claim and run one job to a terminal status. Returns the final status, or None if not claimed."""
    with runtime.sessions.begin() as session:
        if not job_state.claim(session, job_id, worker_id):
            return None
        kind = job_state.get_job(session, job_id).kind
    ctx = JobContext(runtime, job_id, worker_id, units)
    try:
        handler = _resolve(kind)
        handler(ctx)
    except JobCancelled:
        final, error = JobStatus.CANCELLED, None
    except Exception as exc:  # a failing job must never take the worker down
        log.exception("job %s failed", job_id)
        final, error = JobStatus.FAILED, f"{type(exc).__name__}: {exc}"
    else:
        final, error = (JobStatus.CANCELLED if ctx.cancelled() else JobStatus.SUCCEEDED), None
    with runtime.sessions.begin() as session:
        job_state.transition(session, job_id, final, expected=JobStatus.RUNNING, error=error)
        return JobStatus(job_state.get_job(session, job_id).status)
