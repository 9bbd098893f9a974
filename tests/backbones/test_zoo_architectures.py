"""Zoo architectures, the card format (write → read), and the zoo adapter's weight checks."""

from __future__ import annotations

import pytest
import torch

from app.backbones.base import Preprocessing
from app.backbones.card_writer import dump_card, save_zoo_backbone
from app.backbones.cards import spec_from_dict, spec_to_dict
from app.backbones.catalogue import Catalogue, LoadContext, create_adapter, load_card
from app.backbones.errors import InvalidBackbone, WeightsUnavailable
from app.backbones.zoo import ZOO_ARCHITECTURES, build_zoo_model

PRE = Preprocessing(input_size=(3, 32, 32), mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
SMALL = {"cnn_small": {"width": 8}, "resnet_small": {"width": 8, "blocks": [1, 1, 1]},
         "vit_tiny": {"dim": 32, "depth": 2, "heads": 2}, "mixer_tiny": {"dim": 32, "depth": 2}}


def test_every_architecture_is_tested():
    assert set(SMALL) == set(ZOO_ARCHITECTURES)


@pytest.mark.parametrize("arch", sorted(ZOO_ARCHITECTURES))
def test_architecture_taps_and_head(arch):
    torch.manual_seed(0)
    model = build_zoo_model(arch, num_classes=5, **SMALL[arch]).eval()
    x = torch.randn(3, 3, 32, 32)
    assert model(x).shape == (3, 5)
    specs = model.layer_specs()
    assert specs[-1].kind == "vector" and specs[-1].depth == 1.0
    taps = model.forward_taps(x, [s.name for s in specs])
    for spec in specs:
        t = taps[spec.name]
        width = t.shape[1] if spec.kind == "conv" else t.shape[-1]
        assert width == spec.dim, (arch, spec)
        trunk = model.truncated(spec.name).eval()
        torch.testing.assert_close(trunk(x), t)
    torch.testing.assert_close(model.head(taps[specs[-1].name]), model(x))


def test_build_errors_name_the_value():
    with pytest.raises(ValueError, match="unknown zoo architecture 'nope'"):
        build_zoo_model("nope")
    with pytest.raises(ValueError, match=r"takes no argument\(s\) \['depth'\]"):
        build_zoo_model("cnn_small", depth=3)
    with pytest.raises(ValueError, match="width must be a positive int, got 0"):
        build_zoo_model("cnn_small", width=0)


def _publish(tmp_path, arch="cnn_small", tag="toy"):
    torch.manual_seed(1)
    kwargs = {"num_classes": 4, **SMALL[arch]}
    model = build_zoo_model(arch, **kwargs)
    card = save_zoo_backbone(
        model, tmp_path, f"zoo:{arch}.{tag}", arch_kwargs=kwargs, preprocessing=PRE, description="a toy",
        source={"dataset": "toy-shapes", "classes": 4, "samples": 100, "accuracy": 0.5,
                "difficulty": {"fisher_ratio": 0.3}},
        recipe={"epochs": 1, "optimizer": "sgd"},
    )
    return model.eval(), card


def test_card_round_trip(tmp_path):
    _, card = _publish(tmp_path)
    spec = load_card(card)
    assert spec.id == "zoo:cnn_small.toy" and spec.family == "zoo" and spec.modality == "image"
    assert [ly.name for ly in spec.layers] == ["stage1", "stage2", "stage3", "pool"]
    assert [ly.dim for ly in spec.layers] == [8, 16, 32, 32]
    assert spec.source.dataset == "toy-shapes" and spec.source.difficulty == {"fisher_ratio": 0.3}
    assert spec.extra["arch"] == {"name": "cnn_small", "kwargs": {"num_classes": 4, "width": 8}}
    assert spec.extra["recipe"] == {"epochs": 1, "optimizer": "sgd"}
    assert spec.weights_digest == spec.extra["weights_sha256"]
    again = spec_from_dict(spec_to_dict(spec))
    assert again.layers == spec.layers and again.preprocessing == spec.preprocessing
    assert again.weights_digest == spec.weights_digest


def test_dump_card_quotes_odd_keys_and_strings():
    text = dump_card({"id": 'zoo:a.b"c', "source": {"dataset": "x", "difficulty": {"odd key": 1.5}}})
    import tomllib

    assert tomllib.loads(text) == {"id": 'zoo:a.b"c', "source": {"dataset": "x", "difficulty": {"odd key": 1.5}}}


@pytest.mark.parametrize("arch", sorted(ZOO_ARCHITECTURES))
def test_zoo_adapter_loads_published_weights(tmp_path, arch):
    model, card = _publish(tmp_path, arch)
    adapter = create_adapter(load_card(card), LoadContext(models_dir=tmp_path))
    x = torch.randn(5, 3, 32, 32)
    out = adapter.embed(x, adapter.layers())
    for layer in adapter.spec.layers:
        assert out[layer.name].shape == (5, layer.dim) and out[layer.name].dtype == torch.float32
    with torch.no_grad():
        torch.testing.assert_close(adapter.source_logits(x), model(x))
    last = adapter.spec.last_layer
    trunk = adapter.trunk(last, pretrained=True).eval()
    with torch.no_grad():
        torch.testing.assert_close(trunk(x), out[last])
    s1 = adapter.trunk(last, pretrained=False, seed=3).eval()
    s2 = adapter.trunk(last, pretrained=False, seed=3).eval()
    with torch.no_grad():
        torch.testing.assert_close(s1(x), s2(x))
        assert not torch.allclose(s1(x), out[last])


def test_builtin_catalogue_reads_cards(tmp_path):
    _publish(tmp_path, "cnn_small", "a")
    _publish(tmp_path, "vit_tiny", "b")
    cat = Catalogue(tmp_path)
    assert [s.id for s in cat.list()] == ["zoo:cnn_small.a", "zoo:vit_tiny.b"]
    assert [s.id for s in cat.list(q="VIT")] == ["zoo:vit_tiny.b"]
    adapter = create_adapter("zoo:vit_tiny.b", LoadContext(models_dir=tmp_path), catalogue=cat)
    assert adapter.layers()[0] == "patch_embed"


def test_tampered_weights_are_refused(tmp_path):
    _, card = _publish(tmp_path)
    weights = tmp_path / "cnn_small.toy.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(InvalidBackbone, match="sha256"):
        create_adapter(load_card(card), LoadContext(models_dir=tmp_path))


def test_missing_weights_say_where_to_place_them(tmp_path):
    _, card = _publish(tmp_path)
    (tmp_path / "cnn_small.toy.safetensors").unlink()
    with pytest.raises(WeightsUnavailable, match="place the safetensors file at .*cnn_small.toy.safetensors"):
        create_adapter(load_card(card), LoadContext(models_dir=tmp_path))


def test_card_errors_name_the_key(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('id = "zoo:x.y"\nmodality = "audio"\n')
    with pytest.raises(ValueError, match="bad.toml: 'modality' must be 'image' or 'text', got 'audio'"):
        load_card(bad)
    bad.write_text('id = "zoo:x.y"\nmodality = "image"\n[[layers]]\nname = "a"\ndim = 0\n')
    with pytest.raises(ValueError, match=r"layers\[0\] \(a\): 'dim' must be a positive int, got 0"):
        load_card(bad)
