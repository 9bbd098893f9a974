"""The job state machine, claims, the reconciler and the local executor on real databases."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest

from app.db.base import utcnow
from app.execution import tasks
from app.execution.local import LocalExecutor
from app.jobs import state as job_state
from app.jobs.status import JobStatus
from app.runtime import Runtime
from tests.kits.jobs import job_status as _status
from tests.kits.jobs import make_job as _job


@pytest.fixture
def runtime(settings_factory):
    rt = Runtime.from_settings(settings_factory(job_stale_seconds=1.0, job_max_attempts=2))
    yield rt
    rt.close()


@pytest.fixture
def handlers():
    from tests.kits import handlers as h

    return {"test-ok": h.ok, "test-boom": h.boom, "test-slow": h.slow}


def test_terminal_states_are_final(runtime):
    job_id = _job(runtime)
    with runtime.sessions.begin() as s:
        assert job_state.transition(s, job_id, JobStatus.RUNNING)
        assert job_state.transition(s, job_id, JobStatus.SUCCEEDED)
        for new in JobStatus:
            assert not job_state.transition(s, job_id, new)
    assert _status(runtime, job_id) is JobStatus.SUCCEEDED
    assert all(not s.can_become(n) for s in JobStatus if s.is_terminal() for n in JobStatus)


def test_only_one_claim_wins(runtime):
    job_id = _job(runtime)
    with runtime.sessions.begin() as s:
        assert job_state.claim(s, job_id, "w1")
    with runtime.sessions.begin() as s:
        assert not job_state.claim(s, job_id, "w2")
        assert job_state.get_job(s, job_id).worker_id == "w1"


def test_run_job_records_success_and_failure(runtime, handlers):
    ok, boom = _job(runtime), _job(runtime, kind="test-boom")
    assert tasks.run_job(runtime, ok, "w", handlers) is JobStatus.SUCCEEDED
    assert tasks.run_job(runtime, boom, "w", handlers) is JobStatus.FAILED
    with runtime.sessions() as s:
        assert "boom: the handler failed" in job_state.get_job(s, boom).error
        assert job_state.get_job(s, ok).progress["stages"]["work"]["done"] == 1
    assert tasks.run_job(runtime, ok, "w", handlers) is None  # terminal: never run again


def test_reconciler_requeues_dead_workers_and_gives_up(runtime):
    stale = utcnow() - timedelta(seconds=30)
    fresh_id = _job(runtime, status=JobStatus.RUNNING, heartbeat_at=utcnow(), attempts=1, worker_id="alive")
    dead_id = _job(runtime, status=JobStatus.RUNNING, heartbeat_at=stale, attempts=1, worker_id="dead")
    spent_id = _job(runtime, status=JobStatus.RUNNING, heartbeat_at=stale, attempts=2, worker_id="dead")
    with runtime.sessions.begin() as s:
        requeued, failed = job_state.reconcile_stale(s, stale_after=1.0, max_attempts=2)
    assert requeued == [dead_id] and failed == [spent_id]
    assert _status(runtime, fresh_id) is JobStatus.RUNNING
    assert _status(runtime, dead_id) is JobStatus.PENDING
    assert _status(runtime, spent_id) is JobStatus.FAILED


def test_local_executor_survives_a_failing_job_and_cancels(runtime, handlers):
    executor = LocalExecutor(runtime, handlers, poll_seconds=0.05)
    executor.start()
    try:
        boom, ok, slow = _job(runtime, kind="test-boom"), _job(runtime), _job(runtime, kind="test-slow")
        for job_id in (boom, ok, slow):
            executor.submit(job_id)
        deadline = time.monotonic() + 30
        while _status(runtime, slow) is not JobStatus.RUNNING and time.monotonic() < deadline:
            time.sleep(0.05)
        with runtime.sessions.begin() as s:
            project_id = job_state.get_job(s, slow).project_id
            job_state.request_cancel(s, slow, project_id)
        while _status(runtime, slow) is JobStatus.RUNNING and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _status(runtime, boom) is JobStatus.FAILED
        assert _status(runtime, ok) is JobStatus.SUCCEEDED
        assert _status(runtime, slow) is JobStatus.CANCELLED
    finally:
        executor.shutdown()


def test_a_cancel_requested_while_the_handler_finishes_records_cancelled(runtime):
    """A handler that returns normally after a cancel was requested (it checked no more) ends CANCELLED,
    decided where the outcome is written; without a cancel it ends SUCCEEDED."""

    def cancel_then_return(ctx) -> None:
        with runtime.sessions.begin() as s:
            job_state.request_cancel(s, ctx.job_id, job_state.get_job(s, ctx.job_id).project_id)

    cancelled, finished = _job(runtime, kind="test-cancel-late"), _job(runtime)
    assert tasks.run_job(runtime, cancelled, "w", {"test-cancel-late": cancel_then_return}) is JobStatus.CANCELLED
    assert tasks.run_job(runtime, finished, "w", {"test-ok": lambda ctx: None}) is JobStatus.SUCCEEDED


def test_cancel_pending_is_immediate_and_terminal_cancel_conflicts(runtime):
    from app.errors import Conflict

    job_id = _job(runtime)
    with runtime.sessions.begin() as s:
        project_id = job_state.get_job(s, job_id).project_id
        job_state.request_cancel(s, job_id, project_id)
    assert _status(runtime, job_id) is JobStatus.CANCELLED
    with runtime.sessions.begin() as s, pytest.raises(Conflict):
        job_state.request_cancel(s, job_id, project_id)
