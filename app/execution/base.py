"""The executor protocol. Executors receive job ids only after the job row is committed."""

from __future__ import annotations

import uuid
from typing import Protocol, runtime_checkable


@runtime_checkable
class Executor(Protocol):
    def start(self) -> None:
        """Begin accepting work (start threads, connect to a cluster, recover stale jobs)."""

    def submit(self, job_id: uuid.UUID) -> None:
        """Schedule a committed PENDING job; returns at once."""

    def cancel(self, job_id: uuid.UUID) -> None:
        """Best-effort prompt stop; the job also checks ``cancel_requested`` between units of work."""

    def shutdown(self, wait: bool = True) -> None:
        """Stop accepting work and release resources."""
