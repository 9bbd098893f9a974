"""The job layer, below both the services (which define what a job does) and the executors (which decide
where it runs): the status enum and its transition table (``status``), job state in the database — claim,
heartbeat, progress, cancel, reconcile (``state``) — and what a running job may do (``context``:
:class:`JobContext`, :class:`JobCancelled`, the :class:`UnitRunner` protocol).

It imports ``app.db`` and nothing above it: never ``app.services``, ``app.execution`` or ``app.api``.
"""

from app.jobs.status import JobStatus

__all__ = ["JobStatus"]
