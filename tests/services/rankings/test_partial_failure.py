"""A job survives one bad backbone: a candidate whose weights are corrupt is marked failed in the table with
its error, the others are ranked (and probed), and the job ends SUCCEEDED with a warning; only a job whose
every candidate fails is FAILED. Over real HTTP, on both database backends."""

from __future__ import annotations

import pytest

from tests.kits.backbones import zoo_card
from tests.kits.rankings import TOY_ZOO, image_zip, toy_models_dir, upload, wait_for

BROKEN = "zoo:cnn_small.broken"
QUICK_PROBE = {"top_k": 1, "seeds": 2, "budget_steps": 3, "lr_grid": [0.003], "batch_size": 16,
               "include_suspicious": False}


def _floats(value):
    if isinstance(value, float):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _floats(v)
    elif isinstance(value, list):
        for v in value:
            yield from _floats(v)


@pytest.fixture
def server(live_server_factory, tmp_path):
    folder = toy_models_dir(tmp_path / "models")
    zoo_card(folder, "cnn_small", "broken", width=6)  # its own digest: no embedding-cache hit
    weights = folder / "cnn_small.broken.safetensors"
    weights.write_bytes(weights.read_bytes()[:-16] + b"\0" * 16)  # the card's sha256 no longer matches
    return live_server_factory(models_dir=folder, probe_seeds=2)


@pytest.mark.slow
def test_one_broken_candidate_among_good_ones(server):
    with server.client() as c:
        dataset_id = upload(c, image_zip(per_class=8), "target.zip")
        body = {"dataset_id": dataset_id, "backbones": [*TOY_ZOO, BROKEN], "layers": "last", "bootstrap": 0,
                "metrics": ["logme", "knn_accuracy"], "probe": QUICK_PROBE}
        job = wait_for(c, c.post("/v1/rankings", json=body).json()["id"])
        assert job["status"] == "SUCCEEDED", job["error"]
        ranked = [row for row in job["table"] if row["status"] == "ranked"]
        [failed] = [row for row in job["table"] if row["status"] == "failed"]
        assert sorted(row["backbone_id"] for row in ranked) == sorted(TOY_ZOO)
        assert sorted(row["rank"] for row in ranked) == [1, 2, 3]
        assert failed["backbone_id"] == BROKEN and failed["failed_stage"] == "embed"
        assert failed["rank"] is None and "sha256" in failed["error"]
        assert job["table"][-1] is not None and job["table"][-1]["backbone_id"] == BROKEN  # failed rows last
        assert any(BROKEN in w and "not ranked" in w for w in job["warnings"])
        assert ranked[0]["verdict"] is not None  # later stages ran on the survivors
        assert c.get(f"/v1/rankings/{job['id']}/plots/ranking").status_code == 200

        # the table explained: the aggregate's method and scale, rounded numbers, the probe facts per verdict
        assert job["aggregation"]["method"] == "rank_mean" and "-1 = ranked first" in job["aggregation"]["scale"]
        assert set(job["aggregation"]["metrics"]) <= {"logme", "knn_accuracy"}
        assert all(-len(ranked) <= row["aggregate"] <= -1 for row in ranked)
        floats = list(_floats(job["table"]))
        assert floats and all(float(f"{x:.6g}") == x for x in floats), [x for x in floats if float(f"{x:.6g}") != x]
        verdict = ranked[0]["verdict"]
        assert set(verdict["arms"]) >= {"finetune", "scratch"} and verdict["arms"]["finetune"]["n"] == 2
        assert len(verdict["runs"]) >= 4
        for run in verdict["runs"]:
            assert run["lr"] > 0 and run["steps"] >= 1 and run["timed_out"] in (True, False)
            assert run["arm"] not in ("finetune", "scratch") or run["lr"] == 0.003  # the request's grid
            assert run["metric_name"] == "accuracy" and 0 <= run["metric"] <= 1
        finetune = [r["metric"] for r in verdict["runs"] if r["arm"] == "finetune"]
        assert verdict["arms"]["finetune"]["mean"] == pytest.approx(sum(finetune) / len(finetune), rel=1e-5)


def test_every_candidate_failing_fails_the_job(server):
    with server.client() as c:
        dataset_id = upload(c, image_zip(per_class=4), "small.zip")
        job = wait_for(c, c.post("/v1/rankings", json={"dataset_id": dataset_id, "backbones": [BROKEN],
                                                       "bootstrap": 0}).json()["id"])
        assert job["status"] == "FAILED"
        assert "every candidate failed" in job["error"] and BROKEN in job["error"]
