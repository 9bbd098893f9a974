"""The compose topology without Docker: PostgreSQL, a Ray head started with ``ray start --head``, the API
with ``TSCOUT_RUN_WORKER_IN_API=false``, and ``tscout worker`` with ``TSCOUT_EXECUTOR=ray`` pointing at the
head. A ranking with probes must succeed, and Ray's own state API must show its embed, score and probe
units ran as tasks on that cluster — proof that the worker honours the executor setting.

Everything started here is stopped here, by its own process group (never ``ray stop``). If Ray cannot start,
the test fails: it is never skipped.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.kits import REPO
from tests.kits.databases import wipe as _wipe
from tests.kits.rankings import TOY_ZOO, image_zip, toy_models_dir, upload, wait_for
from tests.kits.servers import LiveServer

pytestmark = [pytest.mark.ray, pytest.mark.postgres, pytest.mark.slow]
BIN = Path(sys.executable).parent


def _clean_env(**values: str) -> dict[str, str]:
    """The environment of the head and the worker: token authentication on, like the in-process Ray sessions
    of the other tests leave it (``RAY_AUTH_MODE=token``), so head, worker and this process always agree
    whatever ran before (the token lives in ``~/.ray``)."""
    return {**os.environ, "RAY_AUTH_MODE": "token", **values}


def _free_port() -> int:
    with contextlib.closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(proc: subprocess.Popen, timeout: float = 30) -> None:
    """SIGTERM the process group, then SIGKILL what is left; only what this test started."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


@pytest.fixture
def ray_head():
    """``ray start --head --block`` in its own session (process group), with the dashboard that serves the
    state API; yields (GCS address, dashboard URL)."""
    port, dashboard = _free_port(), _free_port()
    temp = tempfile.mkdtemp(prefix="ray-", dir="/tmp")  # short: Ray's socket paths must fit 107 bytes
    env = _clean_env(PYTHONPATH=str(REPO), RAY_USAGE_STATS_ENABLED="0")
    log = open(Path(temp) / "head.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [str(BIN / "ray"), "start", "--head", "--block", "--node-ip-address=127.0.0.1", f"--port={port}",
         "--num-cpus=2", "--num-gpus=0",
         "--include-dashboard=true", "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard}",
         f"--temp-dir={temp}", "--disable-usage-stats"],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    address, url = f"127.0.0.1:{port}", f"http://127.0.0.1:{dashboard}"
    try:
        import httpx

        deadline = time.monotonic() + 300  # the dashboard (which serves the state API) is slow on a loaded machine
        while True:
            if proc.poll() is not None:
                pytest.fail(f"ray start --head exited with {proc.returncode}:\n{(Path(temp) / 'head.log').read_text()[-3000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/api/version", timeout=2).status_code in (200, 401):  # 401: up, token auth
                    break
            if time.monotonic() > deadline:
                pytest.fail(f"the Ray head's dashboard did not answer in 300 s:\n{(Path(temp) / 'head.log').read_text()[-3000:]}")
            time.sleep(0.5)
        yield address, url
    finally:
        _stop(proc)
        log.close()
        shutil.rmtree(temp, ignore_errors=True)


def test_worker_runs_the_units_of_a_ranking_on_the_ray_cluster(ray_head, _postgres_database, tmp_path,
                                                              monkeypatch):
    address, dashboard = ray_head
    monkeypatch.setenv("RAY_AUTH_MODE", "token")  # this process queries the state API like the cluster expects
    models = toy_models_dir(tmp_path / "models")
    values = {"TSCOUT_DATABASE_URL": _postgres_database, "TSCOUT_STORAGE_URL": str(tmp_path / "artifacts"),
              "TSCOUT_MODELS_DIR": str(models), "TSCOUT_HUB_CACHE_DIR": str(tmp_path / "hub")}
    from app.settings import Settings

    settings = Settings(database_url=_postgres_database, storage_url=str(tmp_path / "artifacts"), models_dir=models,
                        hub_cache_dir=tmp_path / "hub", run_worker_in_api=False)
    worker_log = open(tmp_path / "worker.log", "w")  # noqa: SIM115 - closed below
    worker = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "worker"], cwd=REPO, stdout=worker_log, stderr=subprocess.STDOUT,
        env=_clean_env(**values, TSCOUT_EXECUTOR="ray", TSCOUT_RAY_ADDRESS=address, PYTHONPATH=str(REPO)),
        start_new_session=True)
    started = time.monotonic()
    try:
        with LiveServer(settings, start_executor=None) as server, server.client() as client:
            assert server.app.state.executor.__class__.__name__ == "LocalExecutor"  # built, never started
            dataset = upload(client, image_zip(per_class=10), "target.zip")
            body = {"dataset_id": dataset, "backbones": list(TOY_ZOO), "metrics": ["logme", "knn_accuracy"],
                    "bootstrap": 0, "probe": {"top_k": 1, "seeds": 2, "budget_steps": 5, "lr_grid": [0.003],
                                              "batch_size": 16, "include_suspicious": False}}
            r = client.post("/v1/rankings", json=body)
            assert r.status_code == 202, r.text
            job = wait_for(client, r.json()["id"], timeout=400)
            assert worker.poll() is None, (tmp_path / "worker.log").read_text()[-3000:]
            assert job["status"] == "SUCCEEDED", (job["error"], (tmp_path / "worker.log").read_text()[-3000:])
            assert [row["verdict"] is not None for row in job["table"]].count(True) == 1
        from ray.util.state import list_tasks

        tasks = list_tasks(address=dashboard, filters=[("func_or_class_name", "=", "execute_unit")], limit=1000,
                           detail=True, raise_on_missing_output=False)
        # the job has SUCCEEDED, so every unit returned; the state API may still show a task RUNNING for a moment
        ran_tasks = [t for t in tasks if t.state != "FAILED"]
        ran = {stage: sum(t.name.endswith(f"{stage}_unit") for t in ran_tasks) for stage in ("embed", "score", "probe")}
        # every backbone embedded and scored, and the probed candidate's 2 seeds × 3 arms, all as Ray tasks
        assert ran == {"embed": len(TOY_ZOO), "score": len(TOY_ZOO), "probe": 6}, [(t.name, t.state) for t in tasks]
        assert all(t.node_id for t in ran_tasks if t.state == "FINISHED")
        print(f"topology: {ran} ran as Ray tasks; job done {time.monotonic() - started:.1f} s after the worker start")
    finally:
        _stop(worker)
        worker_log.close()
        _wipe(_postgres_database)
