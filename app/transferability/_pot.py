"""What the metrics share around POT's exact solvers."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager

#: the UserWarnings POT's network simplex raises for a result code the caller reads back from ``log=True``
POT_RESULT_MESSAGES = r"(numItermax reached|Problem infeasible|Problem unbounded)"


@contextmanager
def pot_result_warnings_ignored() -> Iterator[None]:
    """Silence POT's result-code warnings only (the caller checks ``log["warning"]`` and warns in its own
    words): matched by message, so that other warnings — another thread's included, while the filter list is
    process-wide — are not hidden."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=POT_RESULT_MESSAGES, category=UserWarning)
        yield
