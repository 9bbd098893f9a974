"""Executor seam: ``submit(job_id)`` / ``cancel(job_id)``. Local (default) or Ray (``TSCOUT_EXECUTOR=ray``)."""

from __future__ import annotations

from app.execution.base import Executor
from app.runtime import Runtime
from app.settings import ExecutorKind


def build_executor(runtime: Runtime) -> Executor:
    """The executor named by the settings; the Ray one imports Ray lazily."""
    if runtime.settings.executor is ExecutorKind.ray:
        from app.execution.ray import RayExecutor

        return RayExecutor(runtime)
    from app.execution.local import LocalExecutor

    return LocalExecutor(runtime)


__all__ = ["Executor", "build_executor"]
