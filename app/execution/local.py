"""Local executor: a pool of worker threads outside the request path, fed by submits and DB polling.

The job table is the queue: ``submit`` only wakes a worker, and every worker polls for PENDING jobs, so
jobs submitted by another process, or re-queued by the reconciler, are picked up too. A failing job is
recorded as FAILED and the worker goes on with the next one.
"""

from __future__ import annotations

import logging
import os
import queue
import socket
import threading
import time
import uuid

from app.db.session import is_database_outage
from app.execution import tasks
from app.execution.tasks import Handlers
from app.jobs import state as job_state
from app.jobs.context import UnitRunner
from app.runtime import Runtime

log = logging.getLogger("tscout.executor")


def _preload(runtime: Runtime, warm: bool) -> None:
    from app.transferability import preload

    try:
        preload()
    except Exception:  # pragma: no cover - an import that fails here fails again, visibly, in the job
        log.exception("preloading the metrics' libraries failed")
    try:
        from app.jobs.unit_pool import unit_pool

        pool = unit_pool(runtime) if warm else None
        if pool is not None:
            pool.warm()  # the unit worker processes start and import beside the service's start too
    except Exception:  # pragma: no cover - a pool that cannot start fails again, visibly, in the stage
        log.exception("starting the unit worker processes failed")


class LocalExecutor:
    #: whether ``start`` warms the runtime's unit worker processes (the Ray executor runs units on Ray)
    warm_unit_processes = True

    def __init__(self, runtime: Runtime, handlers: Handlers, *, poll_seconds: float = 1.0) -> None:
        self.runtime = runtime
        self.handlers = dict(handlers)
        self.units: UnitRunner | None = None  # None: units run inline in the worker thread
        self.poll_seconds = poll_seconds
        self.worker_id = f"local:{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._queue: queue.Queue[uuid.UUID | None] = queue.Queue()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        self.reconcile()
        # the metrics' lazily imported libraries load beside the service's start, not in the first job
        threading.Thread(target=_preload, args=(self.runtime, self.warm_unit_processes), name="tscout-preload", daemon=True).start()
        for i in range(self.runtime.settings.worker_threads):
            t = threading.Thread(target=self._loop, name=f"tscout-worker-{i}", daemon=True)
            t.start()
            self._threads.append(t)

    def reconcile(self) -> None:
        """Re-queue jobs left RUNNING by a dead worker (stale heartbeat)."""
        settings = self.runtime.settings
        with self.runtime.sessions.begin() as session:
            requeued, failed = job_state.reconcile_stale(
                session, stale_after=settings.job_stale_seconds, max_attempts=settings.job_max_attempts
            )
        if requeued or failed:
            log.warning("reconciler: re-queued %s, failed %s", requeued, failed)

    def submit(self, job_id: uuid.UUID) -> None:
        self._queue.put(job_id)

    def cancel(self, job_id: uuid.UUID) -> None:
        # the running handler sees cancel_requested at its next unit of work
        return None

    def shutdown(self, wait: bool = True) -> None:
        self._stop.set()
        for _ in self._threads:
            self._queue.put(None)
        if wait:
            for t in self._threads:
                t.join(timeout=30)
        self._threads.clear()

    def run_until_idle(self) -> None:
        """Run every pending job in the calling thread (CLI one-shot mode and tests)."""
        while True:
            with self.runtime.sessions() as session:
                ids = job_state.pending_job_ids(session, limit=1)
            if not ids:
                return
            tasks.run_job(self.runtime, ids[0], self.worker_id, self.handlers, self.units)

    def _next_job(self) -> uuid.UUID | None:
        try:
            return self._queue.get(timeout=self.poll_seconds)
        except queue.Empty:
            pass
        with self.runtime.sessions() as session:
            ids = job_state.pending_job_ids(session, limit=1)
        return ids[0] if ids else None

    def _loop(self) -> None:
        last_reconcile = 0.0
        while not self._stop.is_set():
            try:
                job_id = self._next_job()
                if job_id is not None and not self._stop.is_set():
                    tasks.run_job(self.runtime, job_id, self.worker_id, self.handlers, self.units)
                now = time.monotonic()
                if now - last_reconcile > self.runtime.settings.job_stale_seconds / 2:
                    self.reconcile()
                    last_reconcile = now
            except Exception as exc:  # keep the worker alive whatever one job or one poll did
                if is_database_outage(exc):
                    log.warning("worker: database unavailable (%s); polling again in %.0f s",
                                type(exc).__name__, self.poll_seconds)
                    self._stop.wait(self.poll_seconds)
                else:
                    log.exception("worker loop error")
