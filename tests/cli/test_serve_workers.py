"""``tscout serve`` (what ``make serve`` and the container run) with several API processes
(``TSCOUT_API_WORKERS``): the real command on a free port, as its own process group. The local executor runs in
exactly one place — the one ``tscout worker`` it starts beside the API processes, never in them — so a ranking
job submitted over HTTP is executed once, by that worker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest

from app.jobs import state as job_state
from app.runtime import Runtime
from tests.kits import REPO
from tests.kits.rankings import features_npz, upload, wait_for
from tests.kits.servers import free_port

pytestmark = pytest.mark.slow

API_WORKERS = 2


def _group(pgid: int) -> dict[int, tuple[int, str]]:
    """{pid: (parent pid, command line)} of every process in the process group ``pgid``."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid:
                found[int(entry.name)] = (int(fields[1]), (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode())
        except (OSError, IndexError, ValueError):  # a process that ended meanwhile
            continue
    return found


def _wait_ready(url: str, server: subprocess.Popen, log: Path, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while True:
        assert server.poll() is None, f"tscout serve exited with {server.returncode}:\n{log.read_text()[-3000:]}"
        try:
            if httpx.get(f"{url}/readyz", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, f"tscout serve not ready after {timeout} s:\n{log.read_text()[-3000:]}"
        time.sleep(0.5)


def test_serve_with_two_api_workers_runs_one_executor(settings_factory, tmp_path):
    settings = settings_factory()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    env = {**os.environ, "PYTHONPATH": str(REPO), "TSCOUT_DATABASE_URL": settings.database_url,
           "TSCOUT_STORAGE_URL": settings.storage_url, "TSCOUT_MODELS_DIR": str(settings.models_dir),
           "TSCOUT_HUB_CACHE_DIR": str(settings.hub_cache_dir), "TSCOUT_API_WORKERS": str(API_WORKERS),
           "TSCOUT_RUN_WORKER_IN_API": "true", "TSCOUT_EXECUTOR": "local", "TSCOUT_UNIT_PROCESSES": "0"}
    with log.open("wb") as out:
        server = subprocess.Popen([sys.executable, "-m", "app.cli", "serve", "--host", "127.0.0.1", "--port",
                                   str(port)], cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
                                  start_new_session=True)
    try:
        _wait_ready(url, server, log)
        with httpx.Client(base_url=url, timeout=60) as c:
            dataset_id = upload(c, features_npz(), "feats.npz")
            job_ids = []
            for seed in range(3):
                r = c.post("/v1/rankings", json={"dataset_id": dataset_id, "bootstrap": 4, "seed": seed})
                assert r.status_code == 202, r.text
                job_ids.append(r.json()["id"])
            for job_id in job_ids:
                job = wait_for(c, job_id, timeout=300)
                assert job["status"] == "SUCCEEDED", job["error"]
        processes = _group(server.pid)
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # the server's own process group: API processes and worker
        try:
            server.wait(timeout=120)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=30)
    output = log.read_text()

    # the process tree: the serve process, its API processes, and exactly one `tscout worker`
    children = {pid: cmd for pid, (parent, cmd) in processes.items() if parent == server.pid}
    workers = [pid for pid, cmd in children.items() if cmd.rstrip().endswith(" worker")]
    api = [pid for pid, cmd in children.items() if "multiprocessing.spawn" in cmd]
    assert len(workers) == 1 and len(api) == API_WORKERS, processes
    assert output.count("(local executor) running") == 1, output[-3000:]
    assert server.returncode == 0, output[-3000:]

    # every job was claimed once, by that worker's executor: none by an API process, none run twice
    runtime = Runtime.from_settings(settings)
    try:
        with runtime.sessions() as s:
            jobs = [job_state.get_job(s, uuid.UUID(job_id)) for job_id in job_ids]
            owners = {job.worker_id for job in jobs}
            assert [job.attempts for job in jobs] == [1] * len(jobs)
    finally:
        runtime.close()
    assert len(owners) == 1, owners
    owner = owners.pop()
    assert owner.startswith("local:") and int(owner.split(":")[2]) == workers[0], (owner, processes)
    assert f"worker {owner} (local executor) running" in output
