"""The local executor's unit runner: units of a stage that may share the process run on threads (order,
progress, errors, cancellation, one BLAS thread each); other stages run one unit at a time."""

from __future__ import annotations

import threading
import time

import pytest

from app.jobs.context import InlineUnitRunner, JobCancelled
from app.runtime import Runtime
from app.settings import Settings

STATE: dict = {}


def _timed_unit(runtime, i: int) -> int:
    with STATE["lock"]:
        STATE["running"] += 1
        STATE["peak"] = max(STATE["peak"], STATE["running"])
        STATE["started"].append(i)
        STATE["threads"].add(threading.get_ident())
    time.sleep(0.15)
    with STATE["lock"]:
        STATE["running"] -= 1
    if i in STATE.get("fail", ()):
        raise ValueError(f"unit {i} failed")
    return i * i


def _blas_unit(runtime, i: int) -> tuple[list[int], int]:
    import torch
    from threadpoolctl import threadpool_info

    time.sleep(0.05)
    return sorted({lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"}), \
        torch.get_num_threads()


@pytest.fixture
def runtime(tmp_path):
    rt = Runtime.from_settings(Settings(database_url=f"sqlite:///{tmp_path}/db.sqlite",
                                        artifacts_dir=str(tmp_path / "artifacts")))
    STATE.clear()
    STATE.update(lock=threading.Lock(), running=0, peak=0, started=[], threads=set())
    yield rt
    rt.close()


def _map(runner, unit, n, **kw):
    progress: list[int] = []
    out = runner.map(unit, [(i,) for i in range(n)], on_done=progress.append, check_cancelled=kw.pop("cancel", lambda: None),
                     **kw)
    return out, progress


def test_shared_process_units_run_on_threads_in_input_order(runtime):
    started = time.perf_counter()
    out, progress = _map(InlineUnitRunner(runtime, threads=3), _timed_unit, 7, shared_process=True)
    wall = time.perf_counter() - started
    assert out == [i * i for i in range(7)]
    assert STATE["peak"] == 3 and len(STATE["threads"]) == 3 and threading.get_ident() not in STATE["threads"]
    assert progress == sorted(progress) and progress[-1] == 7
    assert wall < 7 * 0.15 * 0.75  # three at a time: ≈ 3 rounds of 0.15 s, not 7


def test_other_stages_run_one_unit_at_a_time_in_the_calling_thread(runtime):
    out, progress = _map(InlineUnitRunner(runtime, threads=3), _timed_unit, 4)
    assert out == [0, 1, 4, 9] and progress == [1, 2, 3, 4]
    assert STATE["peak"] == 1 and STATE["threads"] == {threading.get_ident()}
    out, _ = _map(InlineUnitRunner(runtime, threads=1), _timed_unit, 3, shared_process=True)
    assert out == [0, 1, 4] and STATE["peak"] == 1


def test_blas_and_torch_run_one_thread_per_unit_while_units_share_the_process(runtime):
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        out, _ = _map(InlineUnitRunner(runtime, threads=2), _blas_unit, 4, shared_process=True)
        assert out == [([1], 1)] * 4
        assert torch.get_num_threads() == 2  # restored when the stage ends
    finally:
        torch.set_num_threads(before)


def test_the_one_thread_limit_is_held_until_the_last_context_ends():
    from threadpoolctl import threadpool_info

    from app.transferability import single_thread_blas

    def blas_threads() -> set[int]:
        return {lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"}

    outside = blas_threads()
    entered, leave = threading.Event(), threading.Event()

    def other() -> None:
        with single_thread_blas():
            entered.set()
            leave.wait(5)

    with single_thread_blas():
        t = threading.Thread(target=other)
        t.start()
        entered.wait(5)
        leave.set()
        t.join()  # a context of another thread began and ended inside this one: the limit stays
        assert blas_threads() == {1}
    assert blas_threads() == outside


def test_a_failed_unit_ends_the_stage_and_no_further_unit_starts(runtime):
    STATE["fail"] = {1}
    with pytest.raises(ValueError, match="unit 1 failed"):
        _map(InlineUnitRunner(runtime, threads=2), _timed_unit, 10, shared_process=True)
    assert STATE["running"] == 0  # the running units finished before the error was raised
    assert len(STATE["started"]) <= 4  # units 0 and 1, and at most the two started while they ran


def test_cancellation_is_checked_before_each_unit_starts(runtime):
    calls = []

    def cancel():
        calls.append(1)
        if len(calls) > 3:
            raise JobCancelled("stop")

    with pytest.raises(JobCancelled):
        _map(InlineUnitRunner(runtime, threads=2), _timed_unit, 10, shared_process=True, cancel=cancel)
    assert len(STATE["started"]) == 3 and STATE["running"] == 0


def test_unit_thread_count_setting(monkeypatch):
    assert Settings(unit_threads=3).unit_thread_count == 3
    import os

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(20)))
    assert Settings(unit_threads=0).unit_thread_count == 8
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
    assert Settings().unit_thread_count == 2
    with pytest.raises(ValueError):
        Settings(unit_threads=-1)
    with pytest.raises(ValueError, match="threads"):
        InlineUnitRunner(Runtime.__new__(Runtime), threads=0)
