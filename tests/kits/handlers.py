"""Job handlers used by the execution tests (registered through monkeypatch, never in production)."""

from __future__ import annotations

import time

from app.jobs.context import JobContext


def ok(ctx: JobContext) -> None:
    ctx.progress("work", 1, 1)


def boom(ctx: JobContext) -> None:
    raise RuntimeError("boom: the handler failed")


def slow(ctx: JobContext) -> None:
    for i in range(200):
        ctx.check_cancelled()
        ctx.progress("work", i, 200)
        time.sleep(0.02)


def square_unit(runtime, x: int) -> int:
    return x * x


def failing_unit(runtime, x: int) -> int:
    raise ValueError(f"unit failed on {x}")


def sleepy_unit(runtime, x: int) -> int:
    time.sleep(5)
    return x


def _map(ctx: JobContext, unit: str, n: int) -> list:
    return ctx.units.map(globals()[unit], [(i,) for i in range(n)],
                         on_done=lambda d: ctx.progress("units", d, n), check_cancelled=ctx.check_cancelled)


def units_ok(ctx: JobContext) -> None:
    from app.db.session import unit_of_work
    from app.db.tables import Job

    results = _map(ctx, "square_unit", 6)
    with unit_of_work(ctx.runtime.sessions) as session:
        session.get(Job, ctx.job_id).result = {"squares": results}


def units_fail(ctx: JobContext) -> None:
    _map(ctx, "failing_unit", 3)


def units_slow(ctx: JobContext) -> None:
    _map(ctx, "sleepy_unit", 8)


def until_outage(ctx: JobContext) -> None:
    """First run: report progress until the database goes away (the progress write raises). A run after
    that (the job re-queued) finishes at once. The marker lives in the artifact store."""
    store = ctx.runtime.store
    marker = f"test-markers/{ctx.job_id}"
    if store.exists(marker):
        ctx.progress("work", 1, 1)
        return
    store.put_bytes(marker, b"started")
    for i in range(3000):
        ctx.progress("work", i, 3000)
        time.sleep(0.02)
    raise RuntimeError("the database never went away")


def denied(ctx: JobContext) -> None:
    """Fail like a read-only artifact store does: an OS error naming the absolute path of an artifact."""
    raise PermissionError(13, "Permission denied", str(ctx.runtime.store.local_path("embeddings/ab/abcdef.npy")))


def finish_in_outage(ctx: JobContext) -> None:
    """Write the job's result, then wait (touching no table) until the test has stopped the database, and
    return: the work is done while the database is down. Each start leaves a marker in the artifact store."""
    import uuid

    from app.db.session import unit_of_work
    from app.db.tables import Job

    store = ctx.runtime.store
    store.put_bytes(f"test-markers/{ctx.job_id}/start-{uuid.uuid4().hex}", b"started")
    with unit_of_work(ctx.runtime.sessions) as session:
        session.get(Job, ctx.job_id).result = {"written": "before the outage"}
    store.put_bytes(f"test-markers/{ctx.job_id}/written", b"")
    deadline = time.monotonic() + 120
    while not store.exists(f"test-markers/{ctx.job_id}/database-down"):
        if time.monotonic() > deadline:
            raise RuntimeError("the database never went away")
        time.sleep(0.05)
