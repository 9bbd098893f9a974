"""The Python client against the real app over real HTTP: a folder uploaded as a zip built while it streams,
a ranking followed with progress, the table, plots, the three exports; typed errors carrying the service's
code; and the async client doing the same round trip."""

from __future__ import annotations

import asyncio
import csv
import html
import io
import json
import re
import uuid
import zipfile

import pytest

from app.client import (
    AsyncClient,
    BackboneUnavailableError,
    Client,
    NotFoundError,
    ScoutError,
    TransportError,
    ValidationError,
)
from app.client._core import Call
from app.client.folder import ZipStream
from tests.kits.rankings import TOY_ZOO, features_npz, image_zip, toy_models_dir

QUICK_PROBE = {"top_k": 1, "seeds": 2, "budget_steps": 3, "lr_grid": [0.003], "batch_size": 16,
               "include_suspicious": False}


def image_folder(root, per_class: int = 8):
    """The kit's class-folder images unpacked into ``root/target/…`` (plus a hidden file to be skipped)."""
    with zipfile.ZipFile(io.BytesIO(image_zip(per_class=per_class))) as zf:
        zf.extractall(root)
    (root / "target" / ".DS_Store").write_bytes(b"junk")
    return root / "target"


@pytest.fixture
def server(live_server_factory, tmp_path):
    return live_server_factory(models_dir=toy_models_dir(tmp_path / "models"), probe_seeds=2)


def test_zip_stream_is_a_valid_archive_built_in_chunks(tmp_path):
    folder = image_folder(tmp_path)
    stream = ZipStream(folder)
    chunks = []
    while chunk := stream.read(4096):
        chunks.append(chunk)
    assert max(len(c) for c in chunks) <= 4096 and len(chunks) > 5
    with zipfile.ZipFile(io.BytesIO(b"".join(chunks))) as zf:
        names = zf.namelist()
        assert zf.testzip() is None
    assert len(names) == 24 and all(n.startswith("target/class_") for n in names)  # .DS_Store skipped
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no files"):
        ZipStream(tmp_path / "empty")


@pytest.mark.slow
def test_sync_client_round_trip(server, tmp_path):
    states: list[dict] = []
    with Client(server.url) as scout:
        dataset = scout.upload_dataset(image_folder(tmp_path))
        assert dataset.num_samples == 24 and dataset.name == "target.zip" and dataset.modality == "image"
        job = scout.rank(dataset.id, backbones=list(TOY_ZOO), layers="last", metrics=["logme", "knn_accuracy"],
                         bootstrap=0, subset_size=0, probe=QUICK_PROBE, idempotency_key="client-1")
        assert job.status.value == "PENDING"
        assert scout.rank(dataset.id, backbones=list(TOY_ZOO), layers="last", metrics=["logme", "knn_accuracy"],
                          bootstrap=0, subset_size=0, probe=QUICK_PROBE, idempotency_key="client-1").id == job.id
        final = scout.wait(job, on_progress=states.append, timeout=600)
        assert final.status.value == "SUCCEEDED", final.error
        assert states and states[-1]["status"] == "SUCCEEDED"
        assert {"embed", "score"} <= {s for st in states for s in (st.get("progress") or {}).get("stages", {})}
        table = scout.table(final)
        assert sorted(r.backbone_id for r in table) == sorted(TOY_ZOO)
        assert scout.plot(final).startswith(b"\x89PNG") and b"<svg" in scout.plot(final, "ranking", "svg")

        rows = list(csv.DictReader(io.StringIO(scout.export(final, "csv"))))
        assert [r["backbone_id"] for r in rows] == [r.backbone_id for r in table]
        assert {"rank", "aggregate", "logme_raw", "logme_normalised", "verdict"} <= set(rows[0])
        assert json.loads(scout.export(final, "json"))["id"] == str(final.id)
        page = scout.export(final, "html")
        assert "<table>" in page and "<svg" in page
        assert not re.findall(r"""(?:src|href)=["']https?://""", page)  # self-contained
        probed = [r for r in table if r.verdict]
        assert probed and all(html.escape(r.verdict.text) in page for r in probed)

        with pytest.raises(NotFoundError) as missing:
            scout.ranking(uuid.uuid4())
        assert missing.value.status == 404 and missing.value.error == "not_found"
        with pytest.raises(BackboneUnavailableError) as unavailable:
            scout.register_backbone("timm:resnet18.a1_in1k")
        assert "place them at" in unavailable.value.detail
        with pytest.raises(ScoutError) as invalid:
            scout.upload_dataset(b"not,a\nuseful,file\n", filename="x.bin")
        assert invalid.value.status in (415, 422)
        with pytest.raises(ValueError, match="invalid ranking request"):
            scout.rank(dataset.id, bootstrap=-1)
    with pytest.raises(TransportError, match="cannot reach"):
        Client("http://127.0.0.1:9", timeout=2).ranking(uuid.uuid4())


def test_async_client_round_trip(server):
    async def main() -> None:
        async with AsyncClient(server.url) as scout:
            dataset = await scout.upload_dataset(features_npz(), filename="feats.npz")
            job = await scout.rank(dataset.id, bootstrap=0)
            final = await scout.wait(job, timeout=300)
            assert final.status.value == "SUCCEEDED", final.error
            assert [r.backbone_id for r in await scout.table(final)] == [f"features:{dataset.id}"]
            assert "features:" in await scout.export(final, "csv")
            with pytest.raises(NotFoundError):
                await scout.ranking(uuid.uuid4())
            with pytest.raises(ValidationError) as bad:
                await scout._send(Call("POST", "/v1/rankings", {"json": {"dataset_id": "nope"}}))
            assert bad.value.status == 422 and bad.value.fields

    asyncio.run(main())


def test_feature_sets_ranked_by_both_clients(server):
    """Two models' features of the same rows (the kit's npz with two seeds), ranked against each other; the
    HTML export names each set by its dataset name."""
    with Client(server.url) as scout:
        sets = [scout.upload_dataset(features_npz(seed=s), filename=f"model_{s}.npz") for s in (0, 1)]
        job = scout.wait(scout.rank_feature_sets(sets, bootstrap=0, metrics=["logme", "knn_accuracy"]), timeout=300)
        assert job.status.value == "SUCCEEDED", job.error
        assert sorted(r.backbone_id for r in job.table) == sorted(f"features:{d.id}" for d in sets)
        page = scout.export(job, "html")
        assert f"features:{sets[1].id} (model_1.npz)" in page
        with pytest.raises(ValueError, match="at least one"):
            scout.rank_feature_sets([])

    async def main() -> None:
        async with AsyncClient(server.url) as scout:
            job = await scout.rank_feature_sets([d.id for d in reversed(sets)], target=sets[0].id, bootstrap=0)
            final = await scout.wait(job, timeout=300)
            assert final.status.value == "SUCCEEDED", final.error
            assert final.dataset_id == sets[0].id and len(final.table) == 2

    asyncio.run(main())
