"""What a running job may do — report progress, keep its heartbeat, honour cancellation, run units of work —
and the protocol of the unit runners the executors provide.

A *unit* is a module-level function ``fn(runtime, *args)`` that writes its own results idempotently and
returns a small JSON-able value; being module-level, it is pickled by reference when an executor ships it
to another process. A *handler* is ``fn(ctx)`` for one job kind; the table of handlers is handed to the
executor by whoever builds it (``app.services.job_handlers``), so nothing here names a service.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any, Protocol

from app.jobs import state
from app.jobs.status import JobStatus
from app.runtime import Runtime

Unit = Callable[..., Any]


class JobCancelled(Exception):
    """Raised inside a handler when the job was asked to stop."""


class UnitRunner(Protocol):
    def map(self, unit: Unit, args: Sequence[tuple[Any, ...]], *, on_done: Callable[[int], None],
            check_cancelled: Callable[[], None], resources: dict[str, float] | None = None,
            shared_process: bool = False) -> list[Any]:
        """Run ``unit(runtime, *a)`` for each ``a``; results in input order. ``on_done(n_done)`` reports
        progress; ``check_cancelled()`` raises to stop between units; ``resources`` asks for accelerators
        (``{"gpu": 1.0}``) where the runner can place units; ``shared_process`` says the units may run at
        the same time in one process (numpy work that does not parallelise inside; units that run torch
        models do, and leave it False)."""


class InlineUnitRunner:
    """Runs units for the local executor: one after the other in the calling thread or, for a stage whose
    units may share a process, ``threads`` at a time — in the runtime's unit worker processes
    (``app.jobs.unit_pool``, ``unit_processes``) or, where those are off, on threads with BLAS and torch's
    intra-op pool at one thread. Parallel units instead of parallel products either way. Cancellation is
    checked before each unit starts; a unit's error stops the stage once the running units have finished."""

    def __init__(self, runtime: Runtime, threads: int | None = None) -> None:
        self.runtime = runtime
        self.threads = runtime.settings.unit_thread_count if threads is None else threads
        if self.threads < 1:
            raise ValueError(f"threads must be >= 1, got {self.threads}")

    def map(self, unit: Unit, args: Sequence[tuple[Any, ...]], *, on_done: Callable[[int], None],
            check_cancelled: Callable[[], None], resources: dict[str, float] | None = None,
            shared_process: bool = False) -> list[Any]:
        if not shared_process or self.threads == 1 or len(args) < 2:
            results = []
            for i, a in enumerate(args):
                check_cancelled()
                results.append(unit(self.runtime, *a))
                on_done(i + 1)
            return results
        from app.jobs.unit_pool import unit_pool

        processes = unit_pool(self.runtime)
        if processes is not None:  # worker processes, each with one BLAS and one torch thread
            return self._parallel(lambda a: processes.submit(unit, tuple(a)), processes.result, args,
                                  on_done=on_done, check_cancelled=check_cancelled)
        from app.transferability import single_thread_compute

        with single_thread_compute(), ThreadPoolExecutor(max_workers=self.threads,
                                                      thread_name_prefix="tscout-unit") as pool:
            return self._parallel(lambda a: pool.submit(unit, self.runtime, *a), Future.result, args,
                                  on_done=on_done, check_cancelled=check_cancelled)

    def _parallel(self, submit: Callable[[tuple[Any, ...]], Future], result: Callable[[Future], Any],
                  args: Sequence[tuple[Any, ...]], *, on_done: Callable[[int], None],
                  check_cancelled: Callable[[], None]) -> list[Any]:
        """At most ``threads`` units in flight; results in input order; cancellation checked before each
        start; the first error ends the stage once the running units have finished."""
        results: list[Any] = [None] * len(args)
        pending: dict[Future, int] = {}
        queue = list(enumerate(args))[::-1]
        done = 0
        try:
            while queue or pending:
                while queue and len(pending) < self.threads:
                    check_cancelled()
                    i, a = queue.pop()
                    pending[submit(a)] = i
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in finished:
                    results[pending.pop(future)] = result(future)  # a unit's error ends the stage
                    done += 1
                on_done(done)
        except BaseException:
            queue.clear()
            wait(pending)  # the running units finish (neither a thread nor a worker is interrupted); none starts
            raise
        return results


class JobContext:
    """What a running job may do: report progress, check for cancellation, keep its heartbeat, run units."""

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
            state.set_progress(session, self.job_id, stage, done, total, **extra)
            self._last_beat = time.monotonic()

    def record(self, **values: Any) -> None:
        """Merge ``values`` into the job's result document."""
        with self.runtime.sessions.begin() as session:
            state.merge_result(session, self.job_id, **values)

    def heartbeat(self, force: bool = False) -> None:
        if not force and time.monotonic() - self._last_beat < self.runtime.settings.job_heartbeat_seconds:
            return
        with self._lock, self.runtime.sessions.begin() as session:
            state.heartbeat(session, self.job_id, self.worker_id)
            self._last_beat = time.monotonic()

    def cancelled(self) -> bool:
        with self.runtime.sessions() as session:
            job = state.get_job(session, self.job_id)
            # a worker presumed dead whose job was handed to another stops as if cancelled
            lost = job.worker_id != self.worker_id
            return bool(job.cancel_requested) or JobStatus(job.status).is_terminal() or lost

    def check_cancelled(self) -> None:
        """Call between units of work: raises :class:`JobCancelled` if a cancel was requested."""
        self.heartbeat()
        if self.cancelled():
            raise JobCancelled(str(self.job_id))

    def stage(self, name: str, unit: Unit, args: Sequence[tuple[Any, ...]],
              resources: dict[str, float] | None = None, shared_process: bool = False) -> list[Any]:
        """Run one stage's units through the runner, reporting ``name`` progress as they finish
        (``resources`` and ``shared_process`` as in :meth:`UnitRunner.map`)."""
        self.progress(name, 0, len(args))
        return self.units.map(unit, args, on_done=lambda d: self.progress(name, d, len(args)),
                              check_cancelled=self.check_cancelled, resources=resources,
                              shared_process=shared_process)


Handler = Callable[[JobContext], None]
