"""Candidates given as feature sets, over real HTTP: several precomputed-feature files of the same samples (one
per model) uploaded separately and ranked against each other, without a model."""

from __future__ import annotations

import io

import numpy as np
import pytest

from tests.kits.rankings import image_zip, upload, wait_for

pytestmark = pytest.mark.slow
METRICS = ["logme", "knn_accuracy", "hscore_shrinkage"]


def _npz(features: np.ndarray, labels: np.ndarray, key: str = "labels") -> bytes:
    buf = io.BytesIO()
    np.savez(buf, features=features.astype(np.float32), **{key: labels})
    return buf.getvalue()


def _feature_sets(n_per_class: int = 25, seed: int = 0) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Labels in upload order, and three models' features of those rows: a good one, the same features
    scaled (so every scale-free score must come out equal, which only holds when rows are aligned), and noise."""
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.repeat(np.array(["cat", "dog", "owl"]), n_per_class))
    codes = np.unique(labels, return_inverse=True)[1]
    good = rng.normal(size=(len(labels), 12)) + codes[:, None] * 2.0
    return labels, {"good": good, "good-scaled": good * 3.0, "noise": rng.normal(size=(len(labels), 8))}


def test_feature_sets_rank_like_backbones(live_server_factory):
    server = live_server_factory()
    labels, sets = _feature_sets()
    with server.client() as c:
        ids = {name: upload(c, _npz(feats, labels), f"{name}.npz") for name, feats in sets.items()}
        candidates = [f"features:{ids[name]}" for name in ("noise", "good", "good-scaled")]
        r = c.post("/v1/rankings", json={"dataset_id": ids["good"], "backbones": candidates, "metrics": METRICS,
                                         "bootstrap": 4})
        assert r.status_code == 202, r.text
        job = wait_for(c, r.json()["id"])
        assert job["status"] == "SUCCEEDED", job["error"]
        table = {row["backbone_id"]: row for row in job["table"]}
        assert set(table) == set(candidates)
        good, scaled, noise = (table[f"features:{ids[n]}"] for n in ("good", "good-scaled", "noise"))
        assert noise["rank"] == 3 and {good["rank"], scaled["rank"]} == {1, 2}
        assert good["best_layer"] == "features"
        assert good["scores"]["knn_accuracy"]["raw"] == scaled["scores"]["knn_accuracy"]["raw"] > 0.9
        assert noise["scores"]["knn_accuracy"]["raw"] < 0.7
        named = job["request"]["resolved"]["feature_sets"]
        assert {v["name"] for v in named.values()} == {"good.npz", "good-scaled.npz", "noise.npz"}
        assert job["subset"]["steps"][0]["backbone_id"] in (candidates[1], candidates[2])

        # the target need not be a candidate: 'noise' ranks the other two for its own labels
        r = c.post("/v1/rankings", json={"dataset_id": ids["noise"], "backbones": candidates[1:], "bootstrap": 0,
                                         "metrics": METRICS})
        job = wait_for(c, r.json()["id"])
        assert job["status"] == "SUCCEEDED", job["error"]
        assert sorted(row["backbone_id"] for row in job["table"]) == sorted(candidates[1:])
        assert job["dataset_id"] == ids["noise"]


def test_feature_sets_that_do_not_describe_the_target_are_refused(live_server_factory):
    server = live_server_factory(start_executor=False)
    labels, sets = _feature_sets()
    rng = np.random.default_rng(1)
    with server.client() as c:
        target = upload(c, _npz(sets["good"], labels), "good.npz")
        order = rng.permutation(len(labels))
        shuffled = upload(c, _npz(sets["noise"][order], labels[order]), "shuffled.npz")
        shorter = upload(c, _npz(sets["noise"][:60], labels[:60]), "short.npz")
        regression = upload(c, _npz(sets["noise"], rng.normal(size=len(labels)), "targets"),
                            "reg.npz")
        images = upload(c, image_zip(per_class=6), "images.zip")
        cases = [
            ([f"features:{shuffled}"], "other labels than the target: row"),
            ([f"features:{shorter}"], "has 60 rows, the target has 75"),
            ([f"features:{regression}"], "regression"),
            ([f"features:{images}"], "holds image samples"),
            (["zoo:cnn_small.digits"], "is a model"),
            (["features:not-a-uuid"], "does not name a dataset id"),
            (["features:00000000-0000-0000-0000-000000000000"], "not found in this project"),
        ]
        for backbones, needle in cases:
            r = c.post("/v1/rankings", json={"dataset_id": target, "backbones": backbones})
            assert r.status_code == 422, (backbones, r.text)
            assert r.json()["error"] and needle in r.json()["detail"], (backbones, r.json())
        r = c.post("/v1/rankings", json={"dataset_id": target, "backbones": [f"features:{target}"],
                                         "probe": {"top_k": 1}})
        assert r.status_code == 422 and "probe" in r.json()["detail"]
        r = c.post("/v1/rankings", json={"dataset_id": images, "backbones": [f"features:{target}"]})
        assert r.status_code == 422 and "precomputed-features target" in r.json()["detail"]

        # a pending ranking keeps its feature sets: deleting one answers 409 until the job is gone
        second = upload(c, _npz(sets["good-scaled"], labels), "scaled.npz")
        job = c.post("/v1/rankings", json={"dataset_id": target, "backbones": [f"features:{second}"]}).json()
        r = c.delete(f"/v1/datasets/{second}")
        assert r.status_code == 409 and job["id"] in r.json()["detail"]
        assert c.post(f"/v1/rankings/{job['id']}/cancel").status_code == 202
        assert c.delete(f"/v1/datasets/{second}").status_code == 204
