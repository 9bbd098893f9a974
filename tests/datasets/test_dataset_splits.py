"""Splits (seeded, stratified, content-determined) and the pipeline loader (lazy decode, transforms,
parallel DataLoader workers, raw strings for text)."""

from __future__ import annotations

import io
import uuid

import numpy as np
import pytest

from app.datasets.archive import Limits
from app.datasets.collected import IngestOptions
from app.datasets.ingest import prepare
from app.datasets.split import stratified_split
from app.datasets.stored import StoredDataset
from app.db.tables import Dataset
from app.storage import ArtifactStore
from tests.kits.datasets import class_folder_files, tar_bytes, upload, zip_bytes

LIMITS = Limits(max_total_bytes=10**8, max_member_bytes=10**7, max_ratio=200, max_files=10_000, max_pixels=10**6)


def test_classification_split_is_seeded_and_stratified():
    labels = np.repeat(np.arange(4), [50, 30, 20, 2])
    split, info = stratified_split(labels, "classification", seed=0, val_fraction=0.2)
    again, _ = stratified_split(labels, "classification", seed=0, val_fraction=0.2)
    other, _ = stratified_split(labels, "classification", seed=1, val_fraction=0.2)
    assert all(np.array_equal(split[k], again[k]) for k in split)
    assert not np.array_equal(split["val"], other["val"])
    assert np.array_equal(np.sort(np.concatenate([split["train"], split["val"]])), np.arange(len(labels)))
    assert np.all(np.diff(split["train"]) > 0) and split["val"].dtype == np.int64
    assert np.bincount(labels[split["val"]]).tolist() == [10, 6, 4, 1]  # every class in both splits
    assert np.bincount(labels[split["train"]]).tolist() == [40, 24, 16, 1]
    assert info == {"seed": 0, "val_fraction": 0.2, "train_fraction": 0.8, "stratify": "class", "train": 81,
                    "val": 21}


def test_regression_split_is_stratified_by_target_quantiles():
    rng = np.random.default_rng(3)
    targets = rng.permutation(np.arange(100, dtype=np.float32)).reshape(-1, 1)
    split, info = stratified_split(targets, "regression", seed=0, val_fraction=0.2)
    deciles = (targets[split["val"], 0] // 10).astype(int)
    assert np.bincount(deciles, minlength=10).tolist() == [2] * 10
    assert info["stratify"].startswith("target quantiles (10 bins")


def test_multilabel_split_keeps_label_sets_together():
    rows = np.array([[1, 0]] * 10 + [[0, 1]] * 10 + [[1, 1]] * 5 + [[0, 0]], dtype=np.float32)
    split, info = stratified_split(rows, "multilabel", seed=0, val_fraction=0.2)
    val = rows[split["val"]]
    assert sorted(map(tuple, val.tolist())) == [(0, 1)] * 2 + [(1, 0)] * 2 + [(1, 1)]
    assert info["stratify"] == "label set"


def test_split_depends_on_content_not_on_member_order(tmp_path):
    files = class_folder_files(per_class=7)
    first = prepare(io.BytesIO(zip_bytes(files)), IngestOptions("a.zip"), LIMITS, split_seed=5, val_fraction=0.3,
                    workdir=tmp_path)
    second = prepare(io.BytesIO(tar_bytes(list(reversed(list(files.items()))), gz=True)), IngestOptions("b.tgz"),
                     LIMITS, split_seed=5, val_fraction=0.3, workdir=tmp_path)
    try:
        assert first.digest == second.digest
        assert all(np.array_equal(first.split[k], second.split[k]) for k in ("train", "val"))
        assert np.array_equal(first.labels, second.labels)
    finally:
        first.close()
        second.close()


def test_stored_split_matches_the_recorded_recipe(live_server_factory):
    server = live_server_factory(split_seed=7, val_fraction=0.25)
    with server.client() as client:
        body = upload(client, zip_bytes(class_folder_files(classes=("a", "b", "c"), per_class=8)), "x.zip").json()
    assert body["split"] == {"seed": 7, "val_fraction": 0.25, "train_fraction": 0.75, "stratify": "class",
                             "train": 18, "val": 6}
    assert body["stats"]["split"] == {"train": 18, "val": 6}
    with server.runtime.sessions() as session:
        key = session.get(Dataset, uuid.UUID(body["id"])).artifact_key
    ds = StoredDataset(server.runtime.store, key)
    assert np.bincount(ds.labels[ds.split("val")]).tolist() == [2, 2, 2]
    assert len(ds.split("train")) == 18 and not set(ds.split("train")) & set(ds.split("val"))


@pytest.fixture
def stored_images(tmp_path):
    store = ArtifactStore(str(tmp_path / "store"))
    prepared = prepare(io.BytesIO(zip_bytes(class_folder_files(per_class=6))), IngestOptions("a.zip"), LIMITS,
                       split_seed=0, val_fraction=0.2, workdir=tmp_path)
    prepared.write(store, "datasets/imgs")
    prepared.close()
    return StoredDataset(store, "datasets/imgs")


def _to_tensor(img):
    import torch

    return torch.from_numpy(np.asarray(img, dtype=np.float32).mean(axis=(0, 1)))


def test_loader_decodes_lazily_applies_the_transform_and_works_in_parallel_workers(stored_images):
    import torch
    from torch.utils.data import DataLoader

    dataset = stored_images.torch_dataset("train", transform=_to_tensor)
    assert len(dataset) == 10
    serial = [(x, int(y)) for x, y in dataset]
    loader = DataLoader(dataset, batch_size=4, num_workers=2, multiprocessing_context="fork")
    xs, ys = zip(*loader, strict=True)
    parallel_x, parallel_y = torch.cat(xs), torch.cat(ys)
    assert parallel_x.shape == (10, 3)
    assert torch.equal(parallel_x, torch.stack([x for x, _ in serial]))
    assert parallel_y.tolist() == [y for _, y in serial]
    assert all(int(x[0] > 128) == y for x, y in serial)  # bright images are class 1 ("dog")


def test_text_loader_yields_raw_strings(tmp_path):
    from torch.utils.data import DataLoader

    store = ArtifactStore(str(tmp_path / "store"))
    csv_bytes = "text,label\n" + "".join(f"\"line {i}, ünïcode\",{'ab'[i % 2]}\n" for i in range(10))
    prepared = prepare(io.BytesIO(csv_bytes.encode()), IngestOptions("t.csv"), LIMITS, split_seed=0,
                       val_fraction=0.2, workdir=tmp_path)
    prepared.write(store, "datasets/text")
    prepared.close()
    ds = StoredDataset(store, "datasets/text")
    batches = list(DataLoader(ds.torch_dataset("all"), batch_size=5))
    texts = [t for batch, _ in batches for t in batch]
    assert sorted(texts) == sorted(f"line {i}, ünïcode" for i in range(10))
    labels = [int(y) for _, ys in batches for y in ys]
    assert all(ds.manifest.classes[y] == "ab"[int(t.split()[1][:-1]) % 2] for t, y in zip(texts, labels, strict=True))
