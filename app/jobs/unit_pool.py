"""Worker processes for the local executor's units that may share a process (the score stage's).

Threads cannot run the metrics in parallel: between its BLAS calls a metric is many small numpy and
scipy calls that hold the GIL, so on two cores the score stage's two unit threads used about 1.5 cores
(``bench/ranking.py``: 5.4 s on one thread, 4.1 s on two). These processes run one unit each at a time,
with one BLAS and one torch thread, on a :class:`~app.runtime.Runtime` each rebuilds from the settings
(``app.jobs.remote``), reading embeddings from the artifact store and writing scores to the database
with the same idempotent upserts as everywhere else.

The pool is started on first use — or, warmed in the background, by the local executor's ``start`` — and
spawned (not forked: the parent holds torch's and BLAS's threads). A worker that dies breaks the pool: the
stage then fails with :class:`UnitWorkerDied` (the job is retried like any failed attempt) and the next
stage gets a fresh pool.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import threading
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from app.jobs.remote import execute_unit, portable_settings
from app.settings import Settings

log = logging.getLogger("tscout.units")


def unit_pool(runtime: Any) -> UnitProcessPool | None:
    """The runtime's unit worker processes (created on first use, closed with the runtime), or ``None``
    where the settings keep units on threads: ``unit_processes`` off, one unit thread, an in-memory
    database."""
    s = runtime.settings
    if not s.unit_processes or s.unit_thread_count < 2 or not shareable(s):
        return None
    return runtime.resource("unit_pool", lambda: UnitProcessPool(s, s.unit_thread_count))


class UnitWorkerDied(RuntimeError):
    """A unit worker process exited while running units (killed, out of memory, a crash in native code)."""


def shareable(settings: Settings) -> bool:
    """Whether another process can open this runtime's database: not an in-memory SQLite."""
    url = settings.database_url
    return not (url.startswith("sqlite") and (":memory:" in url or url.rstrip("/") in ("sqlite:", "sqlite:/")
                                              or "mode=memory" in url))


def _init_worker() -> None:
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(1)
    threadpool_limits(1)  # for the life of the process: one unit at a time, one core each
    from app.transferability import preload

    preload()


def _ready() -> bool:
    return True


class UnitProcessPool:
    """``processes`` spawned workers running ``unit(runtime, *args)`` (see the module docstring)."""

    def __init__(self, settings: Settings, processes: int) -> None:
        if processes < 1:
            raise ValueError(f"processes must be >= 1, got {processes}")
        if not shareable(settings):
            raise ValueError("unit processes need a database other processes can open (not an in-memory SQLite)")
        self.processes = processes
        self.settings_json = portable_settings(settings)
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()

    def _executor(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ProcessPoolExecutor(self.processes, mp_context=mp.get_context("spawn"),
                                                 initializer=_init_worker)
            return self._pool

    def warm(self) -> None:
        """Start every worker and wait until each has imported what the units need."""
        pool = self._executor()
        for future in [pool.submit(_ready) for _ in range(self.processes)]:
            future.result()

    def submit(self, unit: Any, args: tuple[Any, ...]) -> Future:
        try:
            return self._executor().submit(execute_unit, self.settings_json, unit, tuple(args))
        except BrokenProcessPool as exc:
            self.reset()
            raise UnitWorkerDied(f"a unit worker process died before {getattr(unit, '__name__', unit)} "
                                 "started; the next stage starts new ones") from exc

    def result(self, future: Future) -> Any:
        """The unit's value or its own error; a dead worker becomes :class:`UnitWorkerDied`."""
        try:
            return future.result()
        except BrokenProcessPool as exc:
            self.reset()
            raise UnitWorkerDied("a unit worker process died while running a unit (killed, out of memory or "
                                 "crashed); the next stage starts new ones") from exc

    def reset(self) -> None:
        """Drop a broken pool; the next submit spawns a new one."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
