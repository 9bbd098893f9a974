"""On Ray, score units read and write the same score cache: the same request again computes no metric."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.db.tables import MetricScore
from app.execution import tasks
from app.jobs.status import JobStatus
from app.runtime import Runtime
from app.services import job_handlers
from tests.kits.backbones import REPO
from tests.kits.rankings import TOY_ZOO, image_zip, submit_job, toy_models_dir

pytestmark = [pytest.mark.ray, pytest.mark.slow]


@pytest.fixture(scope="module")
def ray_local():
    ray = pytest.importorskip("ray", reason="the ray extra is part of make test; install it with .[ray]")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": str(REPO)}})
    yield
    ray.shutdown()


def test_a_repeated_job_on_ray_is_all_cache_hits(ray_local, settings_factory, tmp_path):
    from app.execution.ray import RayExecutor

    runtime = Runtime.from_settings(settings_factory(models_dir=toy_models_dir(tmp_path / "models"), executor="ray"))
    body = {"backbones": list(TOY_ZOO), "metrics": ["logme", "gbc", "leep"], "layers": "all", "bootstrap": 3,
            "subset_size": 0, "seed": 1}
    data = image_zip(per_class=8)
    try:
        ray_exec = RayExecutor(runtime, job_handlers())
        ray_exec.connect()
        rows = []
        for _ in range(2):
            job_id, _ = submit_job(runtime, "p", data, "target.zip", body)
            assert tasks.run_job(runtime, job_id, "test-ray", job_handlers(), ray_exec.units) is JobStatus.SUCCEEDED
            with runtime.sessions() as s:
                rows.append(list(s.scalars(select(MetricScore).where(MetricScore.job_id == job_id))))
        first, second = rows
        assert first and not any(r.details["cached"] for r in first)
        assert len(second) == len(first) and all(r.details["cached"] for r in second)
        assert sorted((r.backbone_id, r.layer, r.metric, r.value) for r in second) == \
            sorted((r.backbone_id, r.layer, r.metric, r.value) for r in first)
    finally:
        runtime.close()
