"""``torch.export`` programs (``.pt2``) over real HTTP: a tiny exported model uploads, ranks and probes; hostile
archives — each a path by which ``torch.export.load`` would unpickle or call outside ATen — are refused before
torch reads them, and their payload never runs."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from tests.kits.backbones import exported_file
from tests.kits.rankings import image_zip, toy_models_dir, upload, wait_for

PRE = {"input_size": [3, 32, 32], "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]}


def _pickle_payload(marker: Path) -> bytes:
    """A protocol-0 pickle that would run ``open(marker, 'w')`` if anything unpickled it."""
    code = f"open({str(marker)!r}, 'w').write('pwned')"
    return b"cbuiltins\nexec\n(V" + code.encode() + b"\ntR."


def _torch_save_with(payload: bytes) -> bytes:
    """A ``torch.save`` zip whose ``data.pkl`` is ``payload``: weights_only refuses it, a plain load runs it."""
    buf = io.BytesIO()
    torch.save((torch.zeros(1),), buf)
    src = zipfile.ZipFile(io.BytesIO(buf.getvalue()))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as dst:
        for item in src.infolist():
            dst.writestr(item, payload if item.filename.endswith("data.pkl") else src.read(item))
    return out.getvalue()


def _rewrite(path: Path, change: Callable[[str, bytes], bytes | None], add: dict[str, bytes] | None = None) -> bytes:
    """The archive at ``path`` with each member passed through ``change`` (None drops it) and ``add``ed."""
    out = io.BytesIO()
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(out, "w") as dst:
        root = src.namelist()[0].split("/", 1)[0]
        for item in src.infolist():
            data = change(item.filename.removeprefix(f"{root}/"), src.read(item))
            if data is not None:
                dst.writestr(item.filename, data)
        for name, data in (add or {}).items():
            dst.writestr(f"{root}/{name}", data)
    return out.getvalue()


def _pickled_weight(marker: Path) -> Callable[[str, bytes], bytes | None]:
    def change(name: str, data: bytes) -> bytes:
        if name == "data/weights/model_weights_config.json":
            config = json.loads(data)
            first = next(iter(config["config"].values()))
            first["use_pickle"] = True
            return json.dumps(config).encode()
        if name == "data/weights/weight_0":
            return _torch_save_with(_pickle_payload(marker))
        return data
    return change


def _graph_calling(target: str) -> Callable[[str, bytes], bytes]:
    def change(name: str, data: bytes) -> bytes:
        return data.replace(b'"torch.ops.aten.mean.dim"', json.dumps(target).encode()) \
            if name == "models/model.json" else data
    return change


def _hostile(tmp_path: Path, marker: Path) -> dict[str, tuple[bytes, str]]:
    good = exported_file(tmp_path / "good")
    keep = lambda name, data: data  # noqa: E731
    sample = lambda name, data: _torch_save_with(_pickle_payload(marker)) \
        if name == "data/sample_inputs/model.pt" else data  # noqa: E731
    return {
        # torch tries weights_only=True, then falls back to a plain unpickle: the fallback must never be reached
        "sample inputs": (_rewrite(good, sample), "sample inputs are not plain tensors"),
        "pickled weight": (_rewrite(good, _pickled_weight(marker)), "stored as a pickle"),
        "torch.load in the graph": (_rewrite(good, _graph_calling("torch.load")), "'torch.load'"),
        "aten.from_file": (_rewrite(good, _graph_calling("torch.ops.aten.from_file.default")), "from_file"),
        "AOTInductor library": (_rewrite(good, keep, {"data/aotinductor/model/model.so": b"\x7fELF"}),
                                "data/aotinductor"),
        "opaque constant": (_rewrite(good, lambda n, d: json.dumps({"config": {"c": {
            "path_name": "opaque_obj_0", "use_pickle": True}}}).encode()
            if n == "data/constants/model_constants_config.json" else d,
            {"data/constants/opaque_obj_0": _pickle_payload(marker)}), "pickle"),
    }


def _post(client, data: bytes, name: str = "net.pt2", card: dict | None = None):
    return client.post("/v1/backbones/upload", files={"weights": (name, data)},
                       data={"card": json.dumps(card or {"preprocessing": PRE, "description": "exported"})})


@pytest.fixture
def server(live_server_factory, tmp_path):
    return live_server_factory(models_dir=toy_models_dir(tmp_path / "models"), hub_cache_dir=tmp_path / "hub")


def test_hostile_archives_are_refused_unread(server, tmp_path):
    marker = tmp_path / "pwned.txt"
    with server.client() as c:
        for what, (data, needle) in _hostile(tmp_path, marker).items():
            r = c.post("/v1/backbones/upload", files={"weights": ("evil.pt2", data)},
                       data={"card": json.dumps({"preprocessing": PRE})})
            assert r.status_code == 415, (what, r.text)
            assert r.json()["error"] and needle in r.json()["detail"] and "'evil.pt2'" in r.json()["detail"], \
                (what, r.json())
        assert c.get("/v1/backbones", params={"family": "export"}).json()["total"] == 0
    assert not marker.exists()


@pytest.mark.slow
def test_exported_program_uploads_ranks_and_probes(server, tmp_path):
    with server.client() as c:
        static = _post(c, exported_file(tmp_path / "static", dynamic_batch=False).read_bytes())
        assert static.status_code == 422 and "Dim('batch')" in static.json()["detail"], static.text
        created = _post(c, exported_file(tmp_path / "good").read_bytes())
        assert created.status_code == 201, created.text
        body = created.json()
        assert body["id"].startswith("export:") and len(body["id"]) == len("export:") + 64
        assert [(ly["name"], ly["dim"]) for ly in body["layers"]] == [("conv", 8), ("pool", 8)]
        assert _post(c, exported_file(tmp_path / "good").read_bytes()).status_code == 409
        assert c.get("/v1/backbones", params={"family": "export"}).json()["total"] == 1

        dataset_id = upload(c, image_zip(per_class=8), "target.zip")
        probe = {"top_k": 1, "seeds": 2, "budget_steps": 3, "lr_grid": [0.003], "batch_size": 8,
                 "include_suspicious": False}
        r = c.post("/v1/rankings", json={"dataset_id": dataset_id, "backbones": [body["id"]], "bootstrap": 0,
                                         "metrics": ["logme", "leep"], "probe": probe})
        assert r.status_code == 202, r.text
        job = wait_for(c, r.json()["id"])
        assert job["status"] == "SUCCEEDED", job["error"]
        [row] = job["table"]
        assert row["status"] != "failed", row
        assert row["scores"]["leep"]["raw"] is not None  # the source_logits output is the head
        assert row["verdict"]["n_seeds"] == 2
