"""The same ranking through the local executor and through Ray gives the same table."""

from __future__ import annotations

import pytest

from app.execution import tasks
from app.execution.ray import RayExecutor
from app.jobs.status import JobStatus
from app.runtime import Runtime
from app.services import job_handlers
from tests.kits.rankings import TOY_ZOO, image_zip, read_table, submit_job, toy_models_dir

pytest.importorskip("ray")
pytestmark = [pytest.mark.ray, pytest.mark.slow]


def test_local_and_ray_rank_identically(ray_cluster, settings_factory, tmp_path):
    models = toy_models_dir(tmp_path / "models")
    body = {"backbones": list(TOY_ZOO), "metrics": ["logme", "hscore_shrinkage", "knn_accuracy"],
            "bootstrap": 5, "seed": 3,
            "probe": {"top_k": 1, "seeds": 2, "budget_steps": 5, "lr_grid": [0.003], "batch_size": 16,
                      "include_suspicious": False}}
    data = image_zip(per_class=10)
    tables = {}
    for executor in ("local", "ray"):
        runtime = Runtime.from_settings(settings_factory(models_dir=models, storage_url=str(tmp_path / executor),
                                                         executor=executor))
        job_id, project_id = submit_job(runtime, f"project-{executor}", data, "target.zip", body)
        units = None
        if executor == "ray":
            ray_exec = RayExecutor(runtime, job_handlers())
            ray_exec.connect()
            units = ray_exec.units
        assert tasks.run_job(runtime, job_id, f"test-{executor}", job_handlers(), units) is JobStatus.SUCCEEDED
        tables[executor] = read_table(runtime, job_id, project_id)
        runtime.close()
    local, ray_ = tables["local"]["table"], tables["ray"]["table"]
    assert [(r["backbone_id"], r["rank"], r["best_layer"]) for r in local] == \
        [(r["backbone_id"], r["rank"], r["best_layer"]) for r in ray_]
    for a, b in zip(local, ray_, strict=True):
        assert a["aggregate"] == pytest.approx(b["aggregate"], rel=1e-6)
        for metric, score in a["scores"].items():
            assert score["raw"] == pytest.approx(b["scores"][metric]["raw"], rel=1e-4, abs=1e-6), metric
        assert a["rank_ci"] == pytest.approx(b["rank_ci"])
        assert (a["verdict"] or {}).get("verdict") == (b["verdict"] or {}).get("verdict")
