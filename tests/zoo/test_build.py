"""The built-in zoo: domains are pure functions of a seed, a reduced build is bitwise reproducible, and
every committed card loads through the catalogue with its weights digest and source statistics."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest
import torch

from app.backbones.catalogue import Catalogue, LoadContext, create_adapter, load_card
from app.backbones.weights import sha256_file
from app.zoo import images as im
from app.zoo.build import build_source, stratified_sample, write_npz
from app.zoo.domains import DOMAINS, digits_pool, generate
from app.zoo.sources import ZOO_SOURCES, zoo_source
from tests.kits import REPO

MODELS = REPO / "models"
ZOO_CARDS = sorted(p for p in MODELS.glob("*.toml") if load_card(p).family == "zoo")


@pytest.mark.parametrize("domain", sorted(DOMAINS))
def test_domains_are_seeded_balanced_uint8(domain):
    x, y = generate(domain, 24, 3)
    x2, y2 = generate(domain, 24, 3)
    assert x.dtype == np.uint8 and x.shape == (24, 32, 32, 3) and y.dtype == np.int64
    assert np.array_equal(x, x2) and np.array_equal(y, y2)
    assert not np.array_equal(x, generate(domain, 24, 4)[0])
    counts = np.bincount(y)
    assert counts.max() - counts.min() <= 1 or domain == "digits"


def test_digit_pools_are_disjoint_and_cover_everything():
    source, target = digits_pool("source"), digits_pool("target")
    assert len(np.intersect1d(source, target)) == 0
    assert len(source) + len(target) == 1797
    with pytest.raises(ValueError, match="'train'"):
        digits_pool("train")


def test_unknown_domain_and_too_few_samples_are_named():
    with pytest.raises(ValueError, match="unknown image domain 'faces'"):
        generate("faces", 10, 0)
    with pytest.raises(ValueError, match="n=3"):
        generate("shapes", 3, 0)


def test_model_input_matches_the_card_preprocessing():
    from PIL import Image

    from app.backbones.preprocess import ImageTransform
    from app.zoo.build import PREPROCESSING

    x, _ = generate("textures", 5, 0)
    ours = im.to_model_input(x)
    theirs = torch.stack([ImageTransform(PREPROCESSING)(Image.fromarray(img)) for img in x])
    torch.testing.assert_close(ours, theirs, rtol=0, atol=0)


def test_npz_bytes_depend_on_the_arrays_only(tmp_path):
    arrays = {"pool/features": np.arange(6, dtype=np.float32).reshape(3, 2), "pool/labels": np.array([0, 1, 0])}
    write_npz(tmp_path / "a.npz", arrays)
    write_npz(tmp_path / "b.npz", dict(reversed(arrays.items())))
    assert sha256_file(tmp_path / "a.npz") == sha256_file(tmp_path / "b.npz")
    with np.load(tmp_path / "a.npz", allow_pickle=False) as z:
        assert np.array_equal(z["pool/features"], arrays["pool/features"])
    with zipfile.ZipFile(tmp_path / "a.npz") as zf:
        assert {i.date_time for i in zf.infolist()} == {(1980, 1, 1, 0, 0, 0)}


def test_stratified_sample_is_even_and_seeded():
    labels = np.array([0] * 50 + [1] * 5 + [2] * 50)
    rows = stratified_sample(labels, 30, seed=1)
    assert len(rows) == 30 and np.bincount(labels[rows]).tolist() == [13, 5, 12]
    assert np.array_equal(rows, stratified_sample(labels, 30, seed=1))


@pytest.mark.slow
def test_reduced_build_is_bitwise_reproducible(tmp_path):
    source = zoo_source("cnn_small.shapes").reduced(n_train=96, epochs=2)
    first = build_source(source, tmp_path / "a")
    second = build_source(source, tmp_path / "b")
    assert first.weights_sha256 == second.weights_sha256
    assert sha256_file(tmp_path / "a" / "cnn_small.shapes.stats.npz") == \
        sha256_file(tmp_path / "b" / "cnn_small.shapes.stats.npz")
    spec = load_card(first.card)
    assert spec.weights_digest == first.weights_sha256 and spec.licence == "Apache-2.0 (own)"
    assert spec.extra["recipe"]["seed"] == source.seed and spec.extra["recipe"]["epochs"] == 2
    assert set(spec.source.difficulty) >= {"knn_error", "fisher_separability", "n_classes"}
    # a different seed is a different model
    other = build_source(zoo_source("cnn_small.noise").reduced(n_train=96, epochs=2), tmp_path / "c")
    assert other.weights_sha256 != first.weights_sha256


def test_the_zoo_is_committed_and_sized():
    assert len(ZOO_CARDS) >= 10, f"expected >= 10 zoo cards in models/, found {len(ZOO_CARDS)}"
    ids = {load_card(p).id for p in ZOO_CARDS}
    assert {s.id for s in ZOO_SOURCES} <= ids
    assert len({s.arch for s in ZOO_SOURCES}) >= 3
    assert {s.labels for s in ZOO_SOURCES} == {"true", "shuffled"}
    assert any(s.recipe.epochs == 0 for s in ZOO_SOURCES)
    total = sum(p.stat().st_size for p in MODELS.iterdir() if p.is_file())
    assert total <= 30 * 1024 * 1024, f"models/ holds {total / 2**20:.1f} MiB, over the 30 MiB budget"


@pytest.mark.parametrize("card", ZOO_CARDS, ids=lambda p: p.stem)
def test_committed_card_loads_with_matching_digest_and_stats(card):
    spec = Catalogue(MODELS).get(load_card(card).id)
    assert sha256_file(card.parent / spec.extra["weights"]) == spec.weights_digest
    adapter = create_adapter(spec, LoadContext(models_dir=MODELS))
    x = im.to_model_input(generate("shapes", 6, 0)[0])
    feats = adapter.embed(x, adapter.layers())
    assert adapter.source_logits(x).shape == (6, spec.source.classes)
    stats = card.parent / spec.extra["source_stats"]["file"]
    assert sha256_file(stats) == spec.extra["recipe"]["stats_sha256"]
    with np.load(stats, allow_pickle=False) as z:
        for layer in adapter.layers():
            f, y = z[f"{layer}/features"], z[f"{layer}/labels"]
            assert f.shape == (256, feats[layer].shape[1]) and y.shape == (256,)
            assert f.dtype == np.float32 and y.min() >= 0 and y.max() < spec.source.classes
    assert 0.0 <= spec.source.accuracy <= 1.0 and spec.licence == "Apache-2.0 (own)"
