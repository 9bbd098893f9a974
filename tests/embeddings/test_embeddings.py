"""The embedding pipeline and its content-addressed cache, on real SQLite and PostgreSQL."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from sqlalchemy import func, select

from app.backbones.catalogue import LoadContext, create_adapter, load_card
from app.db.embedding_index import SqlEmbeddingIndex
from app.db.session import make_engine, make_sessionmaker
from app.db.tables import Embedding
from app.embeddings import SOURCE_PROBS, EmbedOptions, cache_key, embed_dataset, embed_samples, source_probs
from app.embeddings.cache import artifact_key
from app.runtime import KeyedLocks
from app.storage import ArtifactStore
from tests.kits.backbones import MINILM_ID, REPO, make_stored_dataset, zoo_card

DIGEST = "d" * 64


@pytest.fixture
def store(tmp_path):
    return ArtifactStore(str(tmp_path / "artifacts"))


@pytest.fixture
def zoo(tmp_path):
    spec = load_card(zoo_card(tmp_path / "models"))
    return spec, LoadContext(models_dir=tmp_path / "models")


@pytest.fixture
def sessions(db_url):
    engine = make_engine(db_url)
    yield make_sessionmaker(engine)
    engine.dispose()


def test_pipeline_matches_direct_embedding_and_reports_progress(store, zoo):
    spec, ctx = zoo
    adapter = create_adapter(spec, ctx)
    stored = make_stored_dataset(store, "datasets/a", n=23)
    seen = []
    out = embed_samples(adapter, stored.torch_dataset("all", adapter.transform), ["stage2", "pool"],
                        options=EmbedOptions(batch_size=5, device="cpu"), progress=lambda d, t: seen.append((d, t)))
    assert seen == [(5, 23), (10, 23), (15, 23), (20, 23), (23, 23)]
    images = [adapter.transform(stored.image(i)) for i in range(23)]
    direct = adapter.embed(torch.stack(images), ["stage2", "pool"])
    for layer in ("stage2", "pool"):
        assert out[layer].dtype == np.float32 and out[layer].shape == (23, spec.layer(layer).dim)
        np.testing.assert_allclose(out[layer], direct[layer].numpy(), atol=1e-5)
    workers = embed_samples(adapter, stored.torch_dataset("all", adapter.transform), ["stage2", "pool"],
                            options=EmbedOptions(batch_size=4, num_workers=2, device="cpu"))
    for layer in ("stage2", "pool"):
        np.testing.assert_array_equal(workers[layer], out[layer])  # identical inputs → identical results


class _OomOnLargeBatches:
    """Wraps an adapter; raises CUDA OOM for batches above a size, as a small GPU would."""

    def __init__(self, adapter, limit: int) -> None:
        self._adapter, self.limit, self.sizes = adapter, limit, []

    def __getattr__(self, name):
        return getattr(self._adapter, name)

    def embed(self, batch, layers):
        self.sizes.append(batch.shape[0])
        if batch.shape[0] > self.limit:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return self._adapter.embed(batch, layers)


def test_batch_is_halved_on_out_of_memory(store, zoo):
    spec, ctx = zoo
    adapter = create_adapter(spec, ctx)
    stored = make_stored_dataset(store, "datasets/b", n=20)
    wrapped = _OomOnLargeBatches(adapter, limit=3)
    out = embed_samples(wrapped, stored.torch_dataset("all", adapter.transform), ["pool"],
                        options=EmbedOptions(batch_size=16, device="cpu"))
    plain = embed_samples(adapter, stored.torch_dataset("all", adapter.transform), ["pool"],
                          options=EmbedOptions(batch_size=16, device="cpu"))
    np.testing.assert_allclose(out["pool"], plain["pool"], atol=1e-5)
    assert wrapped.sizes[:3] == [16, 8, 4] and max(wrapped.sizes[3:]) <= 2


def test_cache_miss_then_hit_without_loading_the_model(store, zoo, sessions):
    spec, ctx = zoo
    stored = make_stored_dataset(store, "datasets/c", n=23)
    builds = []

    def factory(s):
        builds.append(s.id)
        return create_adapter(s, ctx)

    with sessions() as session:
        cold = embed_dataset(SqlEmbeddingIndex(session), store, stored, DIGEST, spec, ["stage1", "pool", SOURCE_PROBS], "train",
                             adapter_factory=factory, options=EmbedOptions(batch_size=8, device="cpu"))
        session.commit()
    assert builds == [spec.id]
    assert cold["pool"].shape == (len(stored.split("train")), spec.layer("pool").dim)
    np.testing.assert_allclose(cold[SOURCE_PROBS].sum(axis=1), 1.0, rtol=1e-5)
    with sessions() as session:
        rows = session.scalars(select(Embedding).order_by(Embedding.layer)).all()
        assert [r.layer for r in rows] == sorted(["stage1", "pool", SOURCE_PROBS])
        row = next(r for r in rows if r.layer == "pool")
        assert row.cache_key == cache_key(DIGEST, spec.weights_digest, "pool", row.preprocess_digest, "train")
        assert row.artifact_key == f"embeddings/{row.cache_key[:2]}/{row.cache_key}.npy"
        assert store.exists(row.artifact_key) and row.size_bytes == store.size(row.artifact_key)

        def no_model(_):
            raise AssertionError("a cache hit must not load the model")

        hit = embed_dataset(SqlEmbeddingIndex(session), store, stored, DIGEST, spec, ["pool", "stage1"], "train", adapter_factory=no_model)
        np.testing.assert_array_equal(hit["pool"], cold["pool"])
        probs = source_probs(SqlEmbeddingIndex(session), store, stored, DIGEST, spec, "train", adapter_factory=no_model)
        np.testing.assert_array_equal(probs, cold[SOURCE_PROBS])
        # a different split, dataset or layer is a different key: only the missing layer is computed
        val = embed_dataset(SqlEmbeddingIndex(session), store, stored, DIGEST, spec, ["pool"], "val", adapter_factory=factory,
                            options=EmbedOptions(device="cpu"))
        assert val["pool"].shape[0] == len(stored.split("val")) and len(builds) == 2


def test_concurrent_requests_compute_once(store, zoo, sessions):
    spec, ctx = zoo
    stored = make_stored_dataset(store, "datasets/d", n=30)
    builds, results, errors = [], [], []
    start = threading.Barrier(4)
    locks = KeyedLocks()  # what the runtime shares between the jobs of one process

    def factory(s):
        builds.append(s.id)
        return create_adapter(s, ctx)

    def worker():
        try:
            start.wait()
            with sessions() as session:
                results.append(embed_dataset(SqlEmbeddingIndex(session), store, stored, DIGEST, spec, ["stage3"],
                                             "train", adapter_factory=factory, options=EmbedOptions(device="cpu"),
                                             locks=locks))
                session.commit()
        except Exception as exc:  # surfaced below with the thread's error
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(results) == 4 and builds == [spec.id]
    for r in results[1:]:
        np.testing.assert_array_equal(r["stage3"], results[0]["stage3"])
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Embedding)) == 1


def test_cross_process_duplicate_row_is_ignored(store, zoo, sessions):
    spec, ctx = zoo
    stored = make_stored_dataset(store, "datasets/e", n=10)
    with sessions() as session:
        first = embed_dataset(SqlEmbeddingIndex(session), store, stored, DIGEST, create_adapter(spec, ctx), ["pool"], "train",
                              options=EmbedOptions(device="cpu"))
        session.commit()
        key = session.scalar(select(Embedding.cache_key))
    store.delete(artifact_key(key))  # as if another process raced us: the row exists, the file is rewritten
    with sessions() as session:
        again = embed_dataset(SqlEmbeddingIndex(session), store, stored, DIGEST, create_adapter(spec, ctx), ["pool"], "train",
                              options=EmbedOptions(device="cpu"))
        session.commit()
        assert session.scalar(select(func.count()).select_from(Embedding)) == 1
    np.testing.assert_array_equal(first["pool"], again["pool"])


def test_text_dataset_embeds_with_minilm_offline(store, sessions, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from app.backbones.catalogue import Catalogue

    catalogue = Catalogue(REPO / "models")
    spec = catalogue.get(MINILM_ID)
    stored = make_stored_dataset(store, "datasets/t", n=12, modality="text")
    with sessions() as session:
        out = embed_dataset(SqlEmbeddingIndex(session), store, stored, DIGEST, spec, ["layer3", "layer6"], "train",
                            adapter_factory=lambda s: create_adapter(s, LoadContext(models_dir=REPO / "models")),
                            options=EmbedOptions(batch_size=4, device="cpu"))
    assert out["layer6"].shape == (len(stored.split("train")), 384) and np.isfinite(out["layer6"]).all()


def test_unknown_layer_and_missing_factory_are_named(store, zoo, sessions):
    spec, _ = zoo
    stored = make_stored_dataset(store, "datasets/f", n=5)
    with sessions() as session:
        with pytest.raises(ValueError, match=r"no layer\(s\) \['nope'\]"):
            embed_dataset(SqlEmbeddingIndex(session), store, stored, DIGEST, spec, ["nope"])
        with pytest.raises(ValueError, match="no adapter_factory"):
            embed_dataset(SqlEmbeddingIndex(session), store, stored, DIGEST, spec, ["pool"])
