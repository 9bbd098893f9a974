"""``warnings.catch_warnings(record=True)`` for one thread: what the score and rank stages wrap each metric
computation in, so that units running at once on threads of one process (the local executor's unit runner,
or two jobs on its worker threads) each keep exactly their own warnings.

``catch_warnings`` is process-wide in Python before 3.14: it swaps the module's filter list and
``showwarning`` for everyone, so two overlapping captures lose or swap warnings (the first to exit restores
the state the second still relies on). Here, while any thread records, one ``"always"`` filter sits at the
front of the filter list (behind an ``"ignore"`` of ``ResourceWarning``, as Python's defaults have it) and ``warnings.showwarning`` is a dispatcher that hands a warning to the list of
the thread that raised it, or to the previous handler when that thread is not recording. The last capture
to end removes both. Each capture re-asserts them on entry, so other code's ``catch_warnings`` block that
restored an older state is undone at the next metric; within such a block (none of this project's code
spans a metric computation) another thread's warnings may still be shown instead of recorded.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["recorded_warnings"]

_local = threading.local()
_lock = threading.Lock()
_active = 0
_previous: Any = None
_ALWAYS = ("always", None, Warning, None, 0)
#: ahead of it, as in Python's default filters: an unclosed file found by the garbage collector, in
#: whichever thread it runs, says nothing about the computation being recorded
_IGNORE = ("ignore", None, ResourceWarning, None, 0)


def _dispatch(message, category, filename, lineno, file=None, line=None) -> None:
    sink = getattr(_local, "sink", None)
    if sink is not None:
        sink.append(warnings.WarningMessage(message, category, filename, lineno, file, line))
    elif _previous is not None:
        _previous(message, category, filename, lineno, file, line)


def _assert_installed() -> None:
    """(Under the lock.) The dispatcher is ``showwarning`` and the ``"always"`` filter is first."""
    global _previous
    if warnings.showwarning is not _dispatch:
        _previous = warnings.showwarning
        warnings.showwarning = _dispatch
    if warnings.filters[:2] != [_IGNORE, _ALWAYS]:
        warnings.filters[:0] = [_IGNORE, _ALWAYS]
        warnings._filters_mutated()  # type: ignore[attr-defined]  # the registries' "once" marks are stale


@contextmanager
def recorded_warnings() -> Iterator[list[warnings.WarningMessage]]:
    """Record every warning raised in this thread inside the block (each occurrence, as with the
    ``"always"`` filter) into the yielded list; other threads' warnings are not in it. Nested captures
    record into the inner list, and the outer one sees them too when the inner ends."""
    global _active
    sink: list[warnings.WarningMessage] = []
    outer = getattr(_local, "sink", None)
    with _lock:
        _assert_installed()
        _active += 1
    _local.sink = sink
    try:
        yield sink
    finally:
        _local.sink = outer
        if outer is not None:
            outer.extend(sink)
        with _lock:
            _active -= 1
            if _active == 0:
                for entry in (_IGNORE, _ALWAYS):
                    if entry in warnings.filters:
                        warnings.filters.remove(entry)
                warnings._filters_mutated()  # type: ignore[attr-defined]
                if warnings.showwarning is _dispatch:
                    warnings.showwarning = _previous
