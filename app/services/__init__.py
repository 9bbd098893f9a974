"""Orchestration between the HTTP layer and the domain packages. No FastAPI, no Ray imports here.

Services take a ``Session`` and flush; whoever opened the session (request or task) commits. Domain
errors are translated here, once, into the :mod:`app.errors` tree. :func:`job_handlers` is the table of
job kinds the composition roots (API lifespan, ``tscout worker``) hand to the executor.
"""

from __future__ import annotations

from app.jobs.context import Handler


def job_handlers() -> dict[str, Handler]:
    """Every job kind this service runs, and its handler (explicit: adding a kind adds a line here)."""
    from app.services.rankings.job import run_ranking_job

    return {"ranking": run_ranking_job}
