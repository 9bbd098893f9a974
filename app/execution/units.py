"""Units of work inside a job, and how they are run: in the job's thread (local executor) or as
parallel tasks on a cluster (Ray executor).

A unit is a module-level function ``fn(runtime, *args)`` named by ``"module:function"`` so it can be
shipped to another process; it writes its own results (idempotently) and returns a small JSON-able value.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from app.runtime import Runtime


def resolve_unit(path: str) -> Callable[..., Any]:
    module, _, name = path.partition(":")
    if not module or not name:
        raise ValueError(f"unit must be 'module:function', got {path!r}")
    return getattr(importlib.import_module(module), name)


class UnitRunner(Protocol):
    def map(self, unit: str, args: Sequence[tuple[Any, ...]], *, on_done: Callable[[int], None],
            check_cancelled: Callable[[], None], resources: dict[str, float] | None = None) -> list[Any]:
        """Run ``unit(runtime, *a)`` for each ``a``; results in input order. ``on_done(n_done)`` reports
        progress; ``check_cancelled()`` raises to stop between units."""


class InlineUnitRunner:
    """Runs units one after the other in the calling thread (local executor)."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def map(self, unit: str, args: Sequence[tuple[Any, ...]], *, on_done: Callable[[int], None],
            check_cancelled: Callable[[], None], resources: dict[str, float] | None = None) -> list[Any]:
        fn = resolve_unit(unit)
        results = []
        for i, a in enumerate(args):
            check_cancelled()
            results.append(fn(self.runtime, *a))
            on_done(i + 1)
        return results
