"""End to end over real HTTP: upload → rank (with probes) → table, verdicts, plots, events."""

from __future__ import annotations

import json

import pytest

from tests.kits.rankings import TOY_ZOO, features_npz, image_zip, text_jsonl, toy_models_dir, upload, wait_for

pytestmark = pytest.mark.slow
QUICK_PROBE = {"top_k": 2, "seeds": 2, "budget_steps": 6, "lr_grid": [0.003], "batch_size": 16}


@pytest.fixture
def ranking_server(live_server_factory, tmp_path):
    return live_server_factory(models_dir=toy_models_dir(tmp_path / "models"), probe_first_round=2, probe_max_seeds=2)


def test_image_ranking_with_probes(ranking_server):
    with ranking_server.client() as c:
        dataset_id = upload(c, image_zip(), "target.zip")
        body = {"dataset_id": dataset_id, "backbones": list(TOY_ZOO), "probe": QUICK_PROBE, "bootstrap": 4,
                "metrics": ["logme", "hscore_shrinkage", "leep", "nce", "knn_accuracy"]}
        r = c.post("/v1/rankings", json=body)
        assert r.status_code == 202, r.text
        assert r.headers["location"] == f"/v1/rankings/{r.json()['id']}"
        job = wait_for(c, r.json()["id"])
        assert job["status"] == "SUCCEEDED", job["error"]
        table = job["table"]
        assert sorted(row["backbone_id"] for row in table) == sorted(TOY_ZOO)
        assert sorted(row["rank"] for row in table)[0] == 1
        for row in table:
            assert row["best_layer"] in row["layers"]
            assert row["scores"]["logme"]["raw"] is not None
            low, high = row["rank_ci"]
            assert 1 <= low <= high <= len(TOY_ZOO)
            assert {"source_accuracy", "num_params", "random"} <= set(row["baselines"])
            assert set(row["difficulty"]) >= {"knn_error", "fisher_separability"}
        probed = [row for row in table if row["verdict"]]
        assert len(probed) >= 2
        for row in probed:
            v = row["verdict"]
            assert v["verdict"] in {"positive", "no_benefit", "negative_transfer", "inconclusive"}
            assert v["n_seeds"] == 2 and v["text"]
        assert job["subset"]["steps"] and job["subset"]["metric"] == "logme"
        assert set(job["progress"]["stages"]) >= {"embed", "score", "rank", "probe", "verdict"}

        for name in ("ranking", "layers", "probes"):
            png = c.get(f"/v1/rankings/{job['id']}/plots/{name}")
            assert png.status_code == 200 and png.headers["content-type"] == "image/png"
            assert png.content[:8] == b"\x89PNG\r\n\x1a\n"
        svg = c.get(f"/v1/rankings/{job['id']}/plots/ranking.svg")
        assert svg.headers["content-type"].startswith("image/svg+xml") and b"<svg" in svg.content
        assert c.get(f"/v1/rankings/{job['id']}/plots/nope").status_code == 422

        events = c.get(f"/v1/rankings/{job['id']}/events").text
        assert "event: status" in events and '"SUCCEEDED"' in events

        listed = c.get("/v1/rankings", params={"dataset_id": dataset_id}).json()
        assert listed["total"] == 1 and listed["items"][0]["top_backbone"] == table[0]["backbone_id"]
        by_dataset = c.get(f"/v1/datasets/{dataset_id}/rankings").json()
        assert by_dataset["items"][0]["id"] == job["id"]
        history = c.get(f"/v1/backbones/{TOY_ZOO[0]}/rankings").json()
        assert history["total"] == 1 and history["items"][0]["of"] == 3

        # same request again: every embedding comes from the cache and the table is the same
        again = wait_for(c, c.post("/v1/rankings", json={**body, "probe": None}).json()["id"])
        assert [(r["backbone_id"], r["best_layer"]) for r in again["table"]] == \
            [(r["backbone_id"], r["best_layer"]) for r in table]


def test_text_ranking_with_minilm(ranking_server):
    with ranking_server.client() as c:
        dataset_id = upload(c, text_jsonl(), "reviews.jsonl", text_column="text", label_column="label")
        body = {"dataset_id": dataset_id, "layers": "last",
                "probe": {**QUICK_PROBE, "top_k": 1, "batch_size": 8, "budget_steps": 3}}
        job = wait_for(c, c.post("/v1/rankings", json=body).json()["id"])
        assert job["status"] == "SUCCEEDED", job["error"]
        [row] = job["table"]
        assert row["backbone_id"] == "hf:sentence-transformers/all-MiniLM-L6-v2"
        assert row["verdict"]["n_seeds"] == 2


def test_precomputed_features_are_scored_without_a_model(ranking_server):
    with ranking_server.client() as c:
        dataset_id = upload(c, features_npz(), "feats.npz")
        job = wait_for(c, c.post("/v1/rankings", json={"dataset_id": dataset_id}).json()["id"])
        assert job["status"] == "SUCCEEDED", job["error"]
        [row] = job["table"]
        assert row["backbone_id"] == f"features:{dataset_id}" and row["best_layer"] == "features"
        assert row["scores"]["logme"]["raw"] > row["scores"]["logme"]["raw"] - 1  # finite
        assert job["target_difficulty"]["n_classes"] == 3 and "knn_error" in job["target_difficulty"]
        r = c.post("/v1/rankings", json={"dataset_id": dataset_id, "probe": QUICK_PROBE})
        assert r.status_code == 422 and "probe" in r.json()["detail"]
        r = c.post("/v1/rankings", json={"dataset_id": dataset_id, "similarity": ["mmd"]})
        assert r.status_code == 422 and "no source sample" in r.json()["detail"]


def test_request_validation_and_idempotency(ranking_server):
    with ranking_server.client() as c:
        dataset_id = upload(c, image_zip(per_class=6), "small.zip")
        cases = [
            ({"dataset_id": dataset_id, "metrics": ["nope"]}, "unknown metric"),
            ({"dataset_id": dataset_id, "backbones": ["zoo:missing.model"]}, "backbones"),
            ({"dataset_id": dataset_id, "backbones": ["not an id"]}, "backbones"),
            ({"dataset_id": dataset_id, "backbones": ["hf:sentence-transformers/all-MiniLM-L6-v2"]}, "text"),
            ({"dataset_id": dataset_id, "layers": ["no_such_layer"], "backbones": [TOY_ZOO[0]]}, "layers"),
            ({"dataset_id": dataset_id, "aggregation": {"hscore": 1.0}, "metrics": ["logme"]}, "aggregation"),
            ({"dataset_id": "00000000-0000-0000-0000-000000000000"}, "dataset_id"),
            ({"dataset_id": dataset_id, "probe": {"arms": ["finetune"]}}, "scratch"),
            ({"dataset_id": dataset_id, "probe": {"arms": ["finetune", "scratch", "reference"]}}, "reference"),
            ({"dataset_id": dataset_id, "bogus": 1}, "bogus"),
            ({"dataset_id": dataset_id, "similarity": ["logme"]}, "not a domain distance"),
            ({"dataset_id": dataset_id, "similarity": ["nope"]}, "not a domain distance"),
            ({"dataset_id": dataset_id, "similarity": []}, "similarity"),
            ({"dataset_id": dataset_id, "similarity": ["mmd", "mmd"]}, "similarity"),
        ]
        for body, needle in cases:
            r = c.post("/v1/rankings", json=body)
            assert r.status_code == 422, (body, r.text)
            assert set(r.json()) >= {"error", "detail"} and needle in r.json()["detail"], (body, r.json())
        body = {"dataset_id": dataset_id, "backbones": [TOY_ZOO[0]], "layers": "last", "bootstrap": 0}
        first = c.post("/v1/rankings", json=body, headers={"Idempotency-Key": "k1"})
        second = c.post("/v1/rankings", json=body, headers={"Idempotency-Key": "k1"})
        assert first.status_code == second.status_code == 202 and first.json()["id"] == second.json()["id"]
        clash = c.post("/v1/rankings", json={**body, "seed": 7}, headers={"Idempotency-Key": "k1"})
        assert clash.status_code == 409 and "k1" in clash.json()["detail"]
        job = wait_for(c, first.json()["id"])
        assert job["status"] == "SUCCEEDED", job["error"]
        assert c.post(f"/v1/rankings/{job['id']}/cancel").status_code == 409
        assert c.get("/v1/rankings", params={"status": "SUCCEEDED"}).json()["total"] == 1


def test_cursor_pagination_walks_every_job(ranking_server):
    with ranking_server.client() as c:
        dataset_id = upload(c, features_npz(), "feats.npz")
        ids = [c.post("/v1/rankings", json={"dataset_id": dataset_id, "seed": s, "bootstrap": 0}).json()["id"]
               for s in range(5)]
        for job_id in ids:
            wait_for(c, job_id)
        seen, cursor = [], None
        while True:
            page = c.get("/v1/rankings", params={"limit": 2, **({"cursor": cursor} if cursor else {})}).json()
            seen += [item["id"] for item in page["items"]]
            cursor = page["next_cursor"]
            if not cursor:
                break
        assert seen == list(reversed(ids)) and page["total"] == 5
        asc = c.get("/v1/rankings", params={"sort": "created_at", "limit": 10}).json()
        assert [i["id"] for i in asc["items"]] == ids
        assert c.get("/v1/rankings", params={"cursor": "garbage"}).status_code == 422


def test_metrics_catalogue(ranking_server):
    with ranking_server.client() as c:
        body = c.get("/v1/metrics").json()
    names = {m["name"] for m in body["metrics"]}
    assert {"logme", "leep", "otdd", "task_difficulty"} <= names
    assert set(body["defaults"]) == {"classification", "regression", "multilabel"}
    assert json.dumps(body["capability_matrix"])
    assert isinstance(body["costs"], dict) and "1,000 samples × 512 features" in body["cost_basis"]
    assert {m["name"]: m["cost"] for m in body["metrics"]}["otdd"] == "expensive"
