"""Job handlers used by the execution tests (registered through monkeypatch, never in production)."""

from __future__ import annotations

import time

from app.execution.tasks import JobContext


def ok(ctx: JobContext) -> None:
    ctx.progress("work", 1, 1)


def boom(ctx: JobContext) -> None:
    raise RuntimeError("boom: the handler failed")


def slow(ctx: JobContext) -> None:
    for i in range(200):
        ctx.check_cancelled()
        ctx.progress("work", i, 200)
        time.sleep(0.02)
