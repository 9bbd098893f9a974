"""Registered hub backbones over real HTTP: one tiny local model per hub family (timm, torchvision, hf),
built offline from configs into a hub cache given as a *relative* path (the case that used to resolve
against ``models/``), registered by id, then ranked; ``"weights": "random"``; PATCH and DELETE, with 409
while a job uses the backbone."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from sqlalchemy import select

from app.backbones.context import random_weights_digest
from app.db.tables import Backbone
from tests.kits.backbones import tiny_hf_vision
from tests.kits.rankings import image_zip, toy_models_dir, upload, wait_for

TIMM = "timm:test_resnet.r160_in1k"
TORCHVISION = "torchvision:mobilenet_v3_small.IMAGENET1K_V1"
HF = "hf:tiny/vit"


def _hub_cache(root: Path) -> dict[str, str]:
    """Seeded random weights laid out as the hub cache expects them; returns each family's file or folder."""
    import timm
    from torchvision.models import get_model, get_model_weights

    torch.manual_seed(0)
    timm_dir = root / "timm" / TIMM.removeprefix("timm:")
    timm_dir.mkdir(parents=True)
    save_file(timm.create_model("test_resnet", pretrained=False).state_dict(), timm_dir / "model.safetensors")
    checkpoints = root / "torch" / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    name = Path(get_model_weights("mobilenet_v3_small")["IMAGENET1K_V1"].url).name
    torch.save(get_model("mobilenet_v3_small", weights=None).state_dict(), checkpoints / name)
    (root / "hf" / "tiny").mkdir(parents=True)
    built = tiny_hf_vision(root / "hf" / "tiny")
    built.rename(root / "hf" / "tiny" / "vit")
    return {"timm": f"timm/{TIMM.removeprefix('timm:')}/model.safetensors",
            "torchvision": f"torch/hub/checkpoints/{name}", "hf": "hf/tiny/vit"}


@pytest.fixture
def hub_server(live_server_factory, tmp_path):
    root = tmp_path / "hub"
    files = _hub_cache(root)
    relative = os.path.relpath(root)  # as the default setting is: var/hub-cache, relative to the working dir
    assert not Path(relative).is_absolute()
    server = live_server_factory(models_dir=toy_models_dir(tmp_path / "models"), hub_cache_dir=relative)
    return server, files


@pytest.mark.slow
def test_each_hub_family_registers_with_local_weights_and_ranks(hub_server):
    server, files = hub_server
    with server.client() as c:
        for body in ({"id": TIMM}, {"id": TORCHVISION, "weights": files["torchvision"]}, {"id": HF}):
            r = c.post("/v1/backbones", json=body)
            assert r.status_code == 201, r.text
            assert r.json()["builtin"] is False and r.json()["num_params"] > 0
            if body["id"] == TIMM:
                assert r.json()["source"]["dataset"] == "ImageNet-1k"  # not the tag "r160_in1k"
        with server.runtime.sessions() as session:
            stored = {row.backbone_id: row.spec["extra"]["weights"] for row in session.scalars(select(Backbone))}
        # stored relative to the hub-cache setting, so the job resolves them exactly as registration did
        assert stored == {TIMM: files["timm"], TORCHVISION: files["torchvision"], HF: files["hf"]}

        dataset_id = upload(c, image_zip(per_class=8), "target.zip")
        r = c.post("/v1/rankings", json={"dataset_id": dataset_id, "backbones": [TIMM, TORCHVISION, HF],
                                         "layers": "last", "metrics": ["logme", "knn_accuracy"], "bootstrap": 0,
                                         "subset_size": 0})
        assert r.status_code == 202, r.text
        job = wait_for(c, r.json()["id"])
        assert job["status"] == "SUCCEEDED", (job["error"], job["table"])
        assert sorted(row["backbone_id"] for row in job["table"]) == sorted([TIMM, TORCHVISION, HF])
        assert all(row["status"] == "ranked" and row["rank"] >= 1 for row in job["table"])


def test_random_weights_patch_and_delete(live_server_factory, tmp_path):
    server = live_server_factory(start_executor=False, models_dir=toy_models_dir(tmp_path / "models"),
                                 hub_cache_dir=tmp_path / "empty-hub")
    with server.client() as c:
        r = c.post("/v1/backbones", json={"id": TIMM, "weights": "random"})
        assert r.status_code == 201, r.text
        assert r.json()["weights_digest"] == random_weights_digest(TIMM)
        assert r.json()["source"] is None  # random weights were trained on nothing

        r = c.patch(f"/v1/backbones/{TIMM}", json={"description": "architecture control",
                                                   "source": {"dataset": "none"}})
        assert r.status_code == 200, r.text
        assert r.json()["description"] == "architecture control" and r.json()["source"]["dataset"] == "none"
        assert c.get(f"/v1/backbones/{TIMM}").json()["description"] == "architecture control"
        assert c.patch(f"/v1/backbones/{TIMM}", json={}).status_code == 422
        assert c.patch(f"/v1/backbones/{TIMM}", json={"weights": "x"}).status_code == 422
        for number in ({"accuracy": False}, {"classes": True}, {"samples": "10"}):  # JSON numbers only
            r = c.patch(f"/v1/backbones/{TIMM}", json={"source": {"dataset": "none", **number}})
            assert r.status_code == 422, (number, r.text)
        r = c.patch(f"/v1/backbones/{TIMM}", json={"source": {"dataset": "none", "accuracy": 1, "classes": 10}})
        assert r.status_code == 200 and r.json()["source"]["accuracy"] == 1.0, r.text
        builtin = c.patch("/v1/backbones/zoo:cnn_small.toy_a", json={"description": "x"})
        assert builtin.status_code == 409 and builtin.json()["error"] == "conflict"
        assert c.delete("/v1/backbones/timm:nope.x").status_code == 404

        dataset_id = upload(c, image_zip(per_class=4), "target.zip")
        job = c.post("/v1/rankings", json={"dataset_id": dataset_id, "backbones": [TIMM]}).json()
        busy = c.delete(f"/v1/backbones/{TIMM}")
        assert busy.status_code == 409 and job["id"] in busy.json()["detail"]
        assert c.patch(f"/v1/backbones/{TIMM}", json={"licence": "MIT"}).status_code == 409
        assert c.post(f"/v1/rankings/{job['id']}/cancel").status_code in (200, 202)

        assert c.delete(f"/v1/backbones/{TIMM}").status_code == 204
        assert c.get(f"/v1/backbones/{TIMM}").status_code == 404
        # and it can be registered again, now from a file
        again = c.post("/v1/backbones", json={"id": TIMM, "weights": "timm/missing/model.safetensors"})
        assert again.status_code == 422 and again.json()["error"] == "backbone_unavailable"
