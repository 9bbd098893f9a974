"""A worker killed with SIGKILL mid-job: after a restart the job finishes, with no duplicate rows."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid

import pytest
from sqlalchemy import func, select

from app.db.tables import Job, MetricScore, ProbeRun, Ranking, VerdictRow
from tests.kits.backbones import REPO
from tests.kits.rankings import TOY_ZOO, image_zip, toy_models_dir, upload, wait_for

pytestmark = pytest.mark.slow


def _worker(settings) -> subprocess.Popen:
    env = {**os.environ, **{f"TSCOUT_{k.upper()}": str(v) for k, v in {
        "database_url": settings.database_url, "storage_url": settings.storage_url,
        "models_dir": settings.models_dir, "job_stale_seconds": settings.job_stale_seconds,
        "job_heartbeat_seconds": settings.job_heartbeat_seconds}.items()}}
    return subprocess.Popen([sys.executable, "-m", "app.cli", "worker"], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _count(server, table, job_id) -> int:
    with server.runtime.sessions() as s:
        return s.scalar(select(func.count()).select_from(table).where(table.job_id == uuid.UUID(job_id)))


def test_kill_9_mid_job_then_restart_finishes_without_duplicates(live_server_factory, tmp_path):
    server = live_server_factory(start_executor=False, models_dir=toy_models_dir(tmp_path / "models"),
                                 job_stale_seconds=4.0, job_heartbeat_seconds=0.5)
    probe = {"top_k": 2, "seeds": 2, "budget_steps": 12, "lr_grid": [0.003], "batch_size": 16,
             "include_suspicious": False}
    with server.client() as c:
        dataset_id = upload(c, image_zip(), "target.zip")
        job_id = c.post("/v1/rankings", json={"dataset_id": dataset_id, "backbones": list(TOY_ZOO),
                                              "metrics": ["logme", "hscore_shrinkage"], "bootstrap": 0,
                                              "layers": "last", "probe": probe}).json()["id"]
        first = _worker(server.settings)
        try:
            deadline = time.monotonic() + 300
            while True:  # kill it once some, but not all, probe runs are stored
                job = c.get(f"/v1/rankings/{job_id}").json()
                stage = job["progress"].get("stages", {}).get("probe", {})
                if stage.get("done", 0) >= 2:
                    break
                assert job["status"] in ("PENDING", "RUNNING"), job
                assert time.monotonic() < deadline, job["progress"]
                time.sleep(0.1)
        finally:
            first.send_signal(signal.SIGKILL)
            first.wait()
        assert c.get(f"/v1/rankings/{job_id}").json()["status"] == "RUNNING"
        runs_before = _count(server, ProbeRun, job_id)
        assert runs_before > 0
        second = _worker(server.settings)
        try:
            job = wait_for(c, job_id, timeout=300)
        finally:
            second.terminate()
            second.wait(timeout=30)
    assert job["status"] == "SUCCEEDED", job["error"]
    # probe units: 2 candidates × (finetune, linear) × 2 seeds + one shared scratch group per architecture
    assert _count(server, Ranking, job_id) == 3
    assert _count(server, VerdictRow, job_id) == 2
    assert _count(server, ProbeRun, job_id) == 2 * 3 * 2
    with server.runtime.sessions() as s:
        scores = list(s.scalars(select(MetricScore).where(MetricScore.job_id == uuid.UUID(job_id))))
        assert len(scores) == len({(r.backbone_id, r.layer, r.metric) for r in scores}) > 0
        assert s.get(Job, uuid.UUID(job_id)).attempts == 2
