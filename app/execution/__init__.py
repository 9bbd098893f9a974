"""Executor seam: ``submit(job_id)`` / ``cancel(job_id)``. Local (default) or Ray (``TSCOUT_EXECUTOR=ray``).

Executors are built with the table of job handlers (``kind → fn(ctx)``) by the composition root (the API
lifespan, ``tscout worker``, a test); this package imports ``app.jobs`` and never ``app.services``.
"""

from __future__ import annotations

from app.execution.base import Executor
from app.execution.tasks import Handlers, run_job
from app.runtime import Runtime
from app.settings import ExecutorKind


def build_executor(runtime: Runtime, handlers: Handlers) -> Executor:
    """The executor named by ``runtime.settings.executor``; the Ray one imports Ray lazily."""
    if runtime.settings.executor is ExecutorKind.ray:
        from app.execution.ray import RayExecutor

        return RayExecutor(runtime, handlers)
    from app.execution.local import LocalExecutor

    return LocalExecutor(runtime, handlers)


__all__ = ["Executor", "Handlers", "build_executor", "run_job"]
