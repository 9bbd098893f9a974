"""A job whose database vanishes mid-run is re-queued without spending an attempt, its outcome is recorded
once the database is back (the transition is retried, not lost), and it then succeeds. Runs on a private
PostgreSQL cluster the test stops and starts."""

from __future__ import annotations

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
from tests.kits.handlers import until_outage
from tests.kits.jobs import make_job

pytestmark = pytest.mark.postgres


@pytest.fixture
def runtime(tmp_path):
    with PrivatePostgres() as pg:
        migrate.upgrade(pg.url)
        rt = Runtime.from_settings(Settings(database_url=pg.url, storage_url=str(tmp_path / "artifacts"),
                                            models_dir=REPO / "models", job_heartbeat_seconds=0.2))
        rt.cluster = pg  # type: ignore[attr-defined]
        yield rt
        rt.close()


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
