"""The local executor's unit worker processes (``unit_processes``, the service's default): a stage whose units
may share a process runs them in spawned workers — in input order, with progress, one BLAS and one torch
thread each, errors and cancellation as on threads, a dead worker reported and replaced — and a real
ranking job scored in them gives exactly the values the thread path gives."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest
from sqlalchemy import delete, select

from app.db.tables import Ranking, ScoreCacheEntry
from app.jobs.context import InlineUnitRunner, JobCancelled
from app.jobs.unit_pool import UnitWorkerDied, shareable, unit_pool
from app.runtime import Runtime
from app.settings import Settings
from tests.kits.rankings import TOY_ZOO, run_to_success, toy_models_dir


def _where(runtime, i: int) -> tuple[int, int, list[int], int, str, float, float]:
    import torch
    from threadpoolctl import threadpool_info

    start = time.time()
    time.sleep(0.3)
    blas = sorted({lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"})
    return os.getpid(), i * i, blas, torch.get_num_threads(), runtime.settings.database_url, start, time.time()


def _fails(runtime, i: int) -> int:
    if i == 2:
        raise ValueError(f"unit {i} failed on purpose")
    return i


def _dies(runtime, i: int) -> int:
    if i == 1:
        os._exit(3)
    time.sleep(0.5)
    return i


@pytest.fixture
def runtime(tmp_path):
    rt = Runtime.from_settings(Settings(database_url=f"sqlite:///{tmp_path}/db.sqlite",
                                        storage_url=str(tmp_path / "artifacts"), unit_processes=True,
                                        unit_threads=2))
    yield rt
    rt.close()


def _map(runtime, unit, n, cancel=lambda: None):
    progress: list[int] = []
    out = InlineUnitRunner(runtime).map(unit, [(i,) for i in range(n)], on_done=progress.append,
                                        check_cancelled=cancel, shared_process=True)
    return out, progress


def test_units_run_in_two_worker_processes_in_input_order_with_one_thread_each(runtime):
    unit_pool(runtime).warm()
    out, progress = _map(runtime, _where, 6)
    assert [r[1] for r in out] == [i * i for i in range(6)]
    pids = {r[0] for r in out}
    assert os.getpid() not in pids and len(pids) == 2  # two workers, not this process
    assert all(r[2] in ([], [1]) and r[3] == 1 for r in out)  # one BLAS and one torch thread
    assert all(r[4].endswith("db.sqlite") for r in out)  # each rebuilt the runtime from the settings
    assert progress == list(range(1, 7))
    spans = sorted((r[5], r[6]) for r in out)  # two at a time: some units ran at the same time
    assert any(b[0] < a[1] for a, b in zip(spans, spans[1:], strict=False))


def test_a_unit_error_ends_the_stage_with_that_error(runtime):
    with pytest.raises(ValueError, match="unit 2 failed on purpose"):
        _map(runtime, _fails, 5)
    assert _map(runtime, _fails, 2)[0] == [0, 1]  # the pool goes on


def test_cancellation_is_checked_before_each_unit_starts(runtime):
    calls = []

    def cancel():
        calls.append(1)
        if len(calls) > 2:
            raise JobCancelled("job")

    with pytest.raises(JobCancelled):
        _map(runtime, _fails, 6, cancel=cancel)
    assert len(calls) == 3


def test_a_worker_that_dies_fails_the_stage_clearly_and_the_next_stage_gets_new_workers(runtime):
    with pytest.raises(UnitWorkerDied, match="died"):
        _map(runtime, _dies, 4)
    assert _map(runtime, _fails, 2)[0] == [0, 1]


def test_threads_where_processes_cannot_share_the_database_or_are_off(tmp_path):
    assert not shareable(Settings(database_url="sqlite://"))
    assert not shareable(Settings(database_url="sqlite:///:memory:"))
    assert shareable(Settings(database_url=f"sqlite:///{tmp_path}/x.db"))
    for settings in (Settings(database_url="sqlite://", unit_processes=True, unit_threads=2),
                     Settings(database_url=f"sqlite:///{tmp_path}/x.db", unit_processes=False, unit_threads=2),
                     Settings(database_url=f"sqlite:///{tmp_path}/x.db", unit_processes=True, unit_threads=1)):
        rt = Runtime.from_settings(settings)
        try:
            assert unit_pool(rt) is None
        finally:
            rt.close()


@pytest.mark.slow
def test_a_job_scored_in_worker_processes_equals_the_same_job_on_threads(settings_factory, tmp_path):
    models = toy_models_dir(tmp_path / "models")
    body = {"backbones": list(TOY_ZOO), "bootstrap": 8, "subset_size": 0}

    def job(processes: bool):
        rt = Runtime.from_settings(settings_factory(models_dir=models, unit_processes=processes, unit_threads=2))
        try:
            job_id, _, rows = run_to_success(rt, body)
            assert (unit_pool(rt) is not None) is processes
            with rt.sessions() as s:
                table = {r.backbone_id: (r.rank, r.rank_ci_low, r.rank_ci_high, r.aggregate)
                         for r in s.scalars(select(Ranking).where(Ranking.job_id == job_id))}
                s.execute(delete(ScoreCacheEntry))  # the next job computes everything again
                s.commit()
            return {(r.backbone_id, r.layer, r.metric): r.value for r in rows}, table
        finally:
            rt.close()

    in_processes, table_p = job(True)
    on_threads, table_t = job(False)
    assert set(in_processes) == set(on_threads) and len(in_processes) > 20
    for key, value in in_processes.items():
        other = on_threads[key]
        assert (value is None) == (other is None), key
        if value is not None:
            assert np.isclose(value, other, rtol=1e-12, atol=1e-12), (key, value, other)
    assert table_p.keys() == table_t.keys()
    for b, row in table_p.items():
        assert row[:3] == table_t[b][:3] and np.isclose(row[3], table_t[b][3], rtol=1e-12), (b, row, table_t[b])


@pytest.mark.slow
def test_the_service_warms_its_unit_workers_at_start_and_ranks_through_them(live_server_factory, tmp_path):
    from tests.kits.rankings import image_zip, upload, wait_for

    server = live_server_factory(models_dir=toy_models_dir(tmp_path / "models"), unit_processes=True,
                                 unit_threads=2)
    pool = unit_pool(server.runtime)
    deadline = time.monotonic() + 120
    while pool._pool is None and time.monotonic() < deadline:  # the executor's start warms it, beside the API
        time.sleep(0.1)
    assert pool._pool is not None
    with server.client() as c:
        dataset = upload(c, image_zip(per_class=10), "target.zip")
        job = wait_for(c, c.post("/v1/rankings", json={"dataset_id": dataset, "backbones": list(TOY_ZOO),
                                                        "bootstrap": 8, "subset_size": 0}).json()["id"])
        assert job["status"] == "SUCCEEDED", job["error"]
        assert [r["rank"] for r in job["table"]] == [1, 2, 3] and all(r["rank_ci"] for r in job["table"])
        assert set(job["progress"]["stages"]) >= {"embed", "score", "bootstrap", "rank"}
