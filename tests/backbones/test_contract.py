"""The adapter contract, over every family: tiny random-weight models and the real packaged MiniLM."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from app.backbones.base import FAMILIES, BackboneAdapter
from app.backbones.catalogue import create_adapter
from tests.kits.backbones import build_specs

SENTENCES = ["a cat sat on the mat", "transfer learning cuts a network at a layer", "x",
             "the quick brown fox jumps over the lazy dog again and again", "hello", "négatif", "42"]


@pytest.fixture(scope="module")
def specs(tmp_path_factory):
    return build_specs(tmp_path_factory.mktemp("backbones"))


@pytest.fixture(scope="module")
def adapters(specs):
    return {name: create_adapter(spec, ctx) for name, (spec, ctx) in specs.items()}


NAMES = ["zoo", "timm", "timm-vit", "torchvision", "hf-vision", "hf-text", "minilm", "torchscript", "export"]


def test_every_family_is_covered(specs):
    assert set(NAMES) == set(specs)
    assert {spec.family for spec, _ in specs.values()} == set(FAMILIES)


def _samples(adapter: BackboneAdapter, n: int, seed: int = 0):
    if adapter.spec.modality == "text":
        return [SENTENCES[i % len(SENTENCES)] for i in range(n)]
    rng = np.random.default_rng(seed)
    # sizes differ from the model's input size on purpose: the transform must resize
    return [Image.fromarray(rng.integers(0, 256, (40 + i, 36, 3), dtype=np.uint8)) for i in range(n)]


def _batch(adapter, samples):
    return adapter.collate([adapter.transform(s) for s in samples])


@pytest.mark.parametrize("name", NAMES)
def test_layer_widths_match_the_spec(adapters, name):
    adapter = adapters[name]
    assert isinstance(adapter, BackboneAdapter)
    assert adapter.layers() == [ly.name for ly in adapter.spec.layers] and adapter.layers()
    out = adapter.embed(_batch(adapter, _samples(adapter, 3)), adapter.layers())
    assert list(out) == adapter.layers()
    for layer in adapter.spec.layers:
        feats = out[layer.name]
        assert feats.shape == (3, layer.dim), (name, layer)
        assert feats.dtype == torch.float32 and torch.isfinite(feats).all()


@pytest.mark.parametrize("name", NAMES)
def test_deterministic_and_batch_independent(adapters, name):
    adapter = adapters[name]
    samples = _samples(adapter, 7)
    layers = [adapter.layers()[0], adapter.spec.last_layer]
    full = adapter.embed(_batch(adapter, samples), layers)
    again = adapter.embed(_batch(adapter, samples), layers)
    for layer in layers:
        assert torch.equal(full[layer], again[layer])
    for size in (1, 3):
        part = adapter.embed(_batch(adapter, samples[:size]), layers)
        for layer in layers:
            assert part[layer].shape[0] == size
            torch.testing.assert_close(part[layer], full[layer][:size], atol=2e-4, rtol=1e-3)


@pytest.mark.parametrize("name", NAMES)
def test_trunk_pretrained_and_scratch(adapters, name):
    adapter = adapters[name]
    batch = _batch(adapter, _samples(adapter, 3))
    layers = adapter.layers()
    cut = layers[len(layers) // 2]
    expected = adapter.embed(batch, [cut])[cut]
    trunk = adapter.trunk(cut, pretrained=True).eval()
    with torch.no_grad():
        torch.testing.assert_close(trunk(batch), expected, atol=2e-4, rtol=1e-3)
    s1, s2 = (adapter.trunk(cut, pretrained=False, seed=7).eval() for _ in range(2))
    with torch.no_grad():
        a, b = s1(batch), s2(batch)
    torch.testing.assert_close(a, b)
    assert a.shape == expected.shape and not torch.allclose(a, expected)
    trainable = adapter.trunk(cut, pretrained=False, seed=1).train()
    trainable(batch).pow(2).mean().backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in trainable.parameters())
    assert not any(p.grad is not None for p in adapter.model.parameters())  # shares nothing with the adapter


@pytest.mark.parametrize("name", NAMES)
def test_source_head(adapters, name):
    adapter = adapters[name]
    batch = _batch(adapter, _samples(adapter, 2))
    if adapter.has_source_head:
        logits = adapter.source_logits(batch)
        assert logits.ndim == 2 and logits.shape[0] == 2 and torch.isfinite(logits).all()
    else:
        with pytest.raises(ValueError, match="no source classification head"):
            adapter.source_logits(batch)


def test_unknown_layer_is_named(adapters):
    adapter = adapters["zoo"]
    with pytest.raises(ValueError, match=r"no layer\(s\) \['nope'\]"):
        adapter.embed(_batch(adapter, _samples(adapter, 1)), ["nope"])


def test_minilm_embeds_text_offline(adapters, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    adapter = adapters["minilm"]
    out = adapter.embed(adapter.collate(["A man is eating food.", "A man is eating a meal.", "The sky is blue."]),
                        ["layer6"])["layer6"]
    unit = torch.nn.functional.normalize(out, dim=1)
    sims = unit @ unit.T
    assert sims[0, 1] > 0.7 > sims[0, 2]  # the real weights: paraphrases are close, unrelated text is not


def test_timm_source_dataset_names_the_dataset_not_the_tag():
    from app.backbones.adapters.timm_adapter import source_dataset

    assert source_dataset("a1_in1k", 1000) == "ImageNet-1k"
    assert source_dataset("in22k_ft_in1k", 1000) == "ImageNet-1k"
    assert source_dataset("in21k", 21843) == "ImageNet-21k"
    assert source_dataset("r160_in1k", 1000) == "ImageNet-1k"
    assert source_dataset("laion2b", 0) == "laion2b"
    assert source_dataset(None, 1000) == "ImageNet-1k"


def test_hf_cards_count_their_parameters(tmp_path):
    from transformers import AutoModel

    from app.backbones.catalogue import LoadContext, describe_backbone
    from tests.kits.backbones import tiny_hf_vision

    folder = tiny_hf_vision(tmp_path)
    spec = describe_backbone(f"hf:{folder}", LoadContext(models_dir=tmp_path, hub_cache_dir=tmp_path / "hub"))
    model = AutoModel.from_pretrained(str(folder))
    assert spec.num_params == sum(p.numel() for p in model.parameters()) > 0
