"""The Ray executor on a real local Ray cluster: units run as Ray tasks, failures and cancellation."""

from __future__ import annotations

import time

import pytest

from app.execution.ray import RayExecutor, portable_settings
from app.jobs.status import JobStatus
from app.runtime import Runtime
from tests.kits.jobs import job_status as _status
from tests.kits.jobs import make_job as _job

ray = pytest.importorskip("ray", reason="the ray extra is part of make test; install it with .[ray]")
pytestmark = pytest.mark.ray


@pytest.fixture
def ray_executor(ray_cluster, settings_factory):
    from tests.kits import handlers as h

    handlers = {kind: getattr(h, kind) for kind in ("units_ok", "units_fail", "units_slow")}
    runtime = Runtime.from_settings(settings_factory(executor="ray", ray_max_retries=1))
    executor = RayExecutor(runtime, handlers, poll_seconds=0.05)
    executor.start()
    yield executor
    executor.shutdown()
    runtime.close()


def _wait(runtime, job_id, statuses, timeout=120):
    deadline = time.monotonic() + timeout
    while _status(runtime, job_id) not in statuses:
        assert time.monotonic() < deadline, f"job stuck in {_status(runtime, job_id)}"
        time.sleep(0.1)
    return _status(runtime, job_id)


def test_units_run_as_ray_tasks(ray_executor):
    runtime = ray_executor.runtime
    job_id = _job(runtime, kind="units_ok")
    ray_executor.submit(job_id)
    assert _wait(runtime, job_id, {JobStatus.SUCCEEDED, JobStatus.FAILED}) is JobStatus.SUCCEEDED
    with runtime.sessions() as s:
        from app.jobs.state import get_job

        job = get_job(s, job_id)
        assert job.result == {"squares": [0, 1, 4, 9, 16, 25]}
        assert job.progress["stages"]["units"]["done"] == 6
        assert job.worker_id.startswith("ray:")


def test_failing_unit_fails_the_job_with_its_cause(ray_executor):
    runtime = ray_executor.runtime
    job_id = _job(runtime, kind="units_fail")
    ray_executor.submit(job_id)
    assert _wait(runtime, job_id, {JobStatus.SUCCEEDED, JobStatus.FAILED}) is JobStatus.FAILED
    with runtime.sessions() as s:
        from app.jobs.state import get_job

        assert "unit failed on" in get_job(s, job_id).error


def test_cancel_stops_outstanding_ray_tasks(ray_executor):
    runtime = ray_executor.runtime
    job_id = _job(runtime, kind="units_slow")
    ray_executor.submit(job_id)
    _wait(runtime, job_id, {JobStatus.RUNNING})
    started = time.monotonic()
    with runtime.sessions.begin() as s:
        from app.jobs.state import get_job, request_cancel

        request_cancel(s, job_id, get_job(s, job_id).project_id)
    assert _wait(runtime, job_id, {JobStatus.CANCELLED, JobStatus.FAILED}) is JobStatus.CANCELLED
    # 8 units of 5 s on 2 CPUs would take 20 s; cancellation must not wait for them
    assert time.monotonic() - started < 8


def test_portable_settings_make_local_paths_absolute(settings_factory):
    data = portable_settings(settings_factory(database_url="sqlite:///./var/x.db", storage_url="./var/a"))
    assert data["database_url"].startswith("sqlite:////") and data["storage_url"].startswith("/")
