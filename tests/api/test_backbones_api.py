"""Backbones over real HTTP: listing and filtering, layer lists, offline registration, uploads, tenancy,
and a pickle payload that must never run."""

from __future__ import annotations

import io
import json
import shutil
import time
import zipfile

import pytest
import torch
from safetensors.torch import save_file

from app.db.session import make_engine, make_sessionmaker, unit_of_work
from app.services.auth import create_key
from tests.kits.backbones import REPO, tiny_hf_vision, torchscript_file, zoo_card

MINILM = "hf:sentence-transformers/all-MiniLM-L6-v2"
PRE = {"input_size": [3, 32, 32], "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]}


@pytest.fixture
def models_dir(tmp_path):
    folder = tmp_path / "models"
    zoo_card(folder, "resnet_small", "toy", width=8, blocks=[1, 1, 1])
    zoo_card(folder, "vit_tiny", "toy", dim=32, depth=2, heads=2)
    shutil.copy(REPO / "models" / "hf-all-minilm-l6-v2.toml", folder)
    return folder


@pytest.fixture
def api(live_server_factory, models_dir, tmp_path):
    server = live_server_factory(start_executor=False, models_dir=models_dir, hub_cache_dir=tmp_path / "hub")
    with server.client() as client:
        yield client


def test_list_filter_search_and_paginate(api):
    body = api.get("/v1/backbones").json()
    assert [b["id"] for b in body["items"]] == [MINILM, "zoo:resnet_small.toy", "zoo:vit_tiny.toy"]
    assert body["total"] == 3 and all(b["builtin"] for b in body["items"])
    assert [b["id"] for b in api.get("/v1/backbones", params={"modality": "text"}).json()["items"]] == [MINILM]
    assert [b["id"] for b in api.get("/v1/backbones", params={"family": "zoo", "q": "VIT"}).json()["items"]] == [
        "zoo:vit_tiny.toy"]
    first = api.get("/v1/backbones", params={"limit": 2}).json()
    assert len(first["items"]) == 2 and first["next_cursor"] == "2"
    rest = api.get("/v1/backbones", params={"limit": 2, "cursor": first["next_cursor"]}).json()
    assert [b["id"] for b in rest["items"]] == ["zoo:vit_tiny.toy"] and rest["next_cursor"] is None


def test_layer_lists_for_resnet_and_vit_like_models(api):
    resnet = api.get("/v1/backbones/zoo:resnet_small.toy").json()
    assert [(ly["name"], ly["dim"], ly["kind"]) for ly in resnet["layers"]] == [
        ("stage1", 8, "conv"), ("stage2", 16, "conv"), ("stage3", 32, "conv"), ("pool", 32, "vector")]
    assert resnet["arch"]["name"] == "resnet_small" and resnet["source"]["dataset"] == "toy"
    vit = api.get("/v1/backbones/zoo:vit_tiny.toy").json()
    assert [ly["name"] for ly in vit["layers"]] == ["patch_embed", "block1", "block2", "pre_logits"]
    assert {ly["kind"] for ly in vit["layers"][:-1]} == {"tokens"}
    minilm = api.get(f"/v1/backbones/{MINILM}").json()
    assert [ly["name"] for ly in minilm["layers"]] == ["embeddings"] + [f"layer{i}" for i in range(1, 7)]
    assert minilm["preprocessing"]["pooling"] == "mean" and minilm["modality"] == "text"
    missing = api.get("/v1/backbones/timm:nope.x")
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"


@pytest.mark.parametrize("backbone_id", ["timm:resnet18.a1_in1k", "torchvision:resnet18.IMAGENET1K_V1",
                                         "hf:google/vit-base-patch16-224"])
def test_unavailable_hub_id_is_422_within_a_second(api, backbone_id):
    started = time.monotonic()
    response = api.post("/v1/backbones", json={"id": backbone_id})
    elapsed = time.monotonic() - started
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] == "backbone_unavailable"
    assert "place them at" in body["detail"] and "hub" in body["detail"]
    assert elapsed < 1.0


def test_register_hub_backbones_found_offline(api, tmp_path):
    hub = tmp_path / "hub"
    tiny_hf_vision(tmp_path)
    shutil.copytree(tmp_path / "tiny-vit", hub / "hf" / "acme" / "tiny-vit")
    response = api.post("/v1/backbones", json={"id": "hf:acme/tiny-vit", "description": "a tiny ViT",
                                               "source": {"dataset": "none", "classes": 2}})
    assert response.status_code == 201, response.text
    got = api.get("/v1/backbones/hf:acme/tiny-vit").json()
    assert got["builtin"] is False and got["description"] == "a tiny ViT"
    assert [(ly["name"], ly["dim"]) for ly in got["layers"]] == [("embeddings", 32), ("layer1", 32), ("layer2", 32)]
    assert api.post("/v1/backbones", json={"id": "hf:acme/tiny-vit"}).status_code == 409

    import timm

    model = timm.create_model("test_resnet", pretrained=False)
    (hub / "timm" / "test_resnet.r160_in1k").mkdir(parents=True)
    save_file(model.state_dict(), str(hub / "timm" / "test_resnet.r160_in1k" / "model.safetensors"))
    response = api.post("/v1/backbones", json={"id": "timm:test_resnet.r160_in1k"})
    assert response.status_code == 201, response.text
    layers = [ly["name"] for ly in response.json()["layers"]]
    assert layers == ["act1", "layer1", "layer2", "layer3", "layer4", "pre_logits"]
    assert api.get("/v1/backbones", params={"family": "timm"}).json()["total"] == 1


def test_upload_torchscript_and_zoo_weights(api, tmp_path):
    path = torchscript_file(tmp_path)
    with open(path, "rb") as fh:
        response = api.post("/v1/backbones/upload", files={"weights": ("net.pt", fh)},
                            data={"card": json.dumps({"preprocessing": PRE, "description": "scripted"})})
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["id"].startswith("torchscript:") and len(body["id"]) == len("torchscript:") + 64
    assert [(ly["name"], ly["dim"]) for ly in body["layers"]] == [("conv", 8), ("pool", 8)]
    assert api.get(f"/v1/backbones/{body['id']}").json()["description"] == "scripted"

    card = zoo_card(tmp_path / "z", "cnn_small", "mine")
    arch = {"name": "cnn_small", "kwargs": {"num_classes": 4, "width": 8}}
    with open(card.with_suffix(".safetensors"), "rb") as fh:
        response = api.post("/v1/backbones/upload", files={"weights": ("w.safetensors", fh)},
                            data={"card": json.dumps({"id": "zoo:cnn_small.mine", "arch": arch, "preprocessing": PRE})})
    assert response.status_code == 201, response.text
    assert [ly["dim"] for ly in response.json()["layers"]] == [8, 16, 32, 32]
    wrong = {"id": "zoo:cnn_small.other", "arch": {"name": "cnn_small", "kwargs": {"num_classes": 4, "width": 16}},
             "preprocessing": PRE}
    with open(card.with_suffix(".safetensors"), "rb") as fh:
        response = api.post("/v1/backbones/upload", files={"weights": ("w.safetensors", fh)},
                            data={"card": json.dumps(wrong)})
    assert response.status_code == 422 and "do not fit" in response.json()["detail"]


def _pickle_payload(marker) -> bytes:
    """A protocol-0 pickle that would run ``open(marker, 'w')`` if anything unpickled it."""
    code = f"open({str(marker)!r}, 'w').write('pwned')"
    return b"cbuiltins\nexec\n(V" + code.encode() + b"\ntR."


def test_pickle_payload_is_refused_and_never_executed(api, tmp_path):
    marker = tmp_path / "pwned.txt"
    card = json.dumps({"id": "zoo:cnn_small.evil", "arch": {"name": "cnn_small"}, "preprocessing": PRE})
    response = api.post("/v1/backbones/upload", files={"weights": ("model.pt", _pickle_payload(marker))},
                        data={"card": card})
    assert response.status_code == 415, response.text
    assert "pickle" in response.json()["detail"] and "'model.pt'" in response.json()["detail"]
    # the same payload inside a torch.save-style zip reaches torch.load(weights_only=True), which refuses it
    buf = io.BytesIO()
    torch.save({"w": torch.zeros(1)}, buf)
    src = zipfile.ZipFile(io.BytesIO(buf.getvalue()))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as dst:
        for item in src.infolist():
            data = _pickle_payload(marker) if item.filename.endswith("data.pkl") else src.read(item)
            dst.writestr(item, data)
    response = api.post("/v1/backbones/upload", files={"weights": ("model.pt", out.getvalue())},
                        data={"card": card})
    assert response.status_code == 422, response.text
    assert "weights-only" in response.json()["detail"]
    assert not marker.exists()
    assert api.get("/v1/backbones", params={"q": "evil"}).json()["total"] == 0


def test_registered_backbones_belong_to_their_project(live_server_factory, models_dir, tmp_path):
    server = live_server_factory(start_executor=False, auth="required", models_dir=models_dir,
                                 hub_cache_dir=tmp_path / "hub")
    engine = make_engine(server.settings.database_url)
    with unit_of_work(make_sessionmaker(engine)) as session:
        _, key_a = create_key(session, "alpha", pepper=server.settings.key_pepper)
        _, key_b = create_key(session, "beta", pepper=server.settings.key_pepper)
    engine.dispose()
    path = torchscript_file(tmp_path)
    with server.client(key_a) as a, server.client(key_b) as b, open(path, "rb") as fh:
        created = a.post("/v1/backbones/upload", files={"weights": ("n.pt", fh)},
                         data={"card": json.dumps({"preprocessing": PRE})})
        assert created.status_code == 201, created.text
        bid = created.json()["id"]
        assert a.get(f"/v1/backbones/{bid}").status_code == 200
        assert b.get(f"/v1/backbones/{bid}").status_code == 404
        assert b.get("/v1/backbones", params={"family": "torchscript"}).json()["total"] == 0
        assert b.get("/v1/backbones/zoo:vit_tiny.toy").status_code == 200  # built-ins are everyone's


def test_registering_weights_outside_the_weights_directory_is_refused(live_server_factory, tmp_path):
    server = live_server_factory(hub_cache_dir=tmp_path / "hub")
    with server.client() as c:
        r = c.post("/v1/backbones", json={"id": "hf:someone/model", "weights": "/etc"})
        assert r.status_code == 422 and "outside the server's weights directory" in r.json()["detail"]
        r = c.post("/v1/backbones", json={"id": "hf:someone/model", "weights": "../../etc"})
        assert r.status_code == 422


def test_card_errors_name_the_field_without_library_text(api, tmp_path):
    path = torchscript_file(tmp_path)
    for card, needle in (("{}", "card: preprocessing: Field required"), ("{nope", "card: not valid JSON"),
                         (json.dumps({"preprocessing": PRE, "bogus": 1}), "card: bogus: Extra inputs")):
        with open(path, "rb") as fh:
            response = api.post("/v1/backbones/upload", files={"weights": ("n.pt", fh)}, data={"card": card})
        assert response.status_code == 422, response.text
        detail = response.json()["detail"]
        assert needle in detail and "errors.pydantic.dev" not in detail and "\n" not in detail, detail
