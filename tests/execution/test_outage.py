"""A job whose database vanishes mid-run is re-queued without spending an attempt, its outcome is recorded
once the database is back (the transition is retried, not lost), and it then succeeds (on a private
PostgreSQL cluster the test stops and starts). A job whose owner process on this host is dead is released
at once, without waiting out the stale window (both databases)."""

from __future__ import annotations

import os
import threading
import time

import pytest

from app.db import migrate
from app.execution import tasks
from app.jobs import state as job_state
from app.jobs.status import JobStatus
from app.runtime import Runtime
from app.settings import Settings
from tests.kits import REPO
from tests.kits.databases import PrivatePostgres
from tests.kits.handlers import finish_in_outage, until_outage
from tests.kits.jobs import make_job


@pytest.fixture
def runtime(tmp_path):
    with PrivatePostgres() as pg:
        migrate.upgrade(pg.url)
        rt = Runtime.from_settings(Settings(database_url=pg.url, storage_url=str(tmp_path / "artifacts"),
                                            models_dir=REPO / "models", job_heartbeat_seconds=0.2))
        rt.cluster = pg  # type: ignore[attr-defined]
        yield rt
        rt.close()


@pytest.mark.postgres
def test_an_outage_mid_run_requeues_without_spending_an_attempt(runtime):
    job_id = make_job(runtime, kind="test-outage")
    handlers = {"test-outage": until_outage}
    outcome: dict = {}
    run = threading.Thread(target=lambda: outcome.update(
        status=tasks.run_job(runtime, job_id, "w1", handlers)))
    run.start()
    deadline = time.monotonic() + 30
    while not runtime.store.exists(f"test-markers/{job_id}"):
        assert time.monotonic() < deadline, "the handler never started"
        time.sleep(0.05)
    time.sleep(0.3)
    runtime.cluster.stop()
    time.sleep(2.0)  # the handler fails, and the worker retries recording the outcome meanwhile
    assert run.is_alive(), "the outcome was given up while the database was down"
    runtime.cluster.start()
    run.join(timeout=60)
    assert not run.is_alive()
    assert outcome["status"] is JobStatus.PENDING
    with runtime.sessions() as s:
        job = job_state.get_job(s, job_id)
        assert job.attempts == 0 and job.worker_id is None and job.error is None
    assert tasks.run_job(runtime, job_id, "w2", handlers) is JobStatus.SUCCEEDED
    with runtime.sessions() as s:
        assert job_state.get_job(s, job_id).attempts == 1


@pytest.mark.postgres
def test_work_that_finishes_during_an_outage_is_recorded_once_the_database_is_back(runtime):
    """The handler finishes while the database is down: the SUCCEEDED transition is retried until it
    lands — the job is not left RUNNING for the reconciler, runs once, and keeps its one attempt."""
    from sqlalchemy import func, select

    from app.db.tables import Job

    job_id = make_job(runtime, kind="test-finish-in-outage")
    handlers = {"test-finish-in-outage": finish_in_outage}
    outcome: dict = {}

    def run() -> None:
        try:
            outcome["status"] = tasks.run_job(runtime, job_id, "w1", handlers)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            outcome["raised"] = exc

    worker = threading.Thread(target=run)
    worker.start()
    deadline = time.monotonic() + 30
    while not runtime.store.exists(f"test-markers/{job_id}/written"):
        assert time.monotonic() < deadline and worker.is_alive(), f"the handler never wrote: {outcome}"
        time.sleep(0.05)
    runtime.cluster.stop()
    runtime.store.put_bytes(f"test-markers/{job_id}/database-down", b"")  # the handler returns now
    time.sleep(2.0)  # the worker retries recording SUCCEEDED meanwhile
    assert worker.is_alive(), f"the outcome was given up while the database was down: {outcome}"
    runtime.cluster.start()
    worker.join(timeout=60)
    assert not worker.is_alive()
    assert outcome == {"status": JobStatus.SUCCEEDED}, outcome
    with runtime.sessions() as s:
        job = job_state.get_job(s, job_id)
        assert job.status == JobStatus.SUCCEEDED.value and job.error is None
        assert job.attempts == 1 and job.finished_at is not None
        assert job.result == {"written": "before the outage"}
        assert s.scalar(select(func.count()).select_from(Job)) == 1
    starts = [key for key, _ in runtime.store.iter_files() if key.startswith(f"test-markers/{job_id}/start-")]
    assert len(starts) == 1, starts  # ran once: nothing re-queued it
    assert tasks.run_job(runtime, job_id, "w2", handlers) is None  # a finished job is never claimed again


def test_a_job_whose_owner_process_on_this_host_is_dead_is_released_at_once(settings_factory):
    import socket
    import subprocess
    import sys

    from app.db.base import utcnow
    from app.jobs.state import owner_is_dead_here, reconcile_stale

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    dead_owner = f"local:{socket.gethostname()}:{gone.pid}:deadbeef"
    alive_owner = f"local:{socket.gethostname()}:{os.getppid()}:cafe"
    elsewhere = f"local:another-host:{gone.pid}:beef"
    assert owner_is_dead_here(dead_owner)
    assert not owner_is_dead_here(alive_owner) and not owner_is_dead_here(elsewhere)
    rt = Runtime.from_settings(settings_factory())
    try:
        now = utcnow()
        ids = {owner: make_job(rt, status=JobStatus.RUNNING, worker_id=owner, heartbeat_at=now, attempts=1)
               for owner in (dead_owner, alive_owner, elsewhere)}
        with rt.sessions.begin() as s:
            requeued, failed = reconcile_stale(s, stale_after=60, max_attempts=3)
        assert requeued == [ids[dead_owner]] and failed == []
        with rt.sessions() as s:
            assert job_state.get_job(s, ids[dead_owner]).status == JobStatus.PENDING.value
            assert job_state.get_job(s, ids[alive_owner]).status == JobStatus.RUNNING.value
            assert job_state.get_job(s, ids[elsewhere]).status == JobStatus.RUNNING.value
    finally:
        rt.close()
