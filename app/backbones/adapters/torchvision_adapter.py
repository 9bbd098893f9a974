"""torchvision: the models API and its weights enums (``torchvision:resnet18.IMAGENET1K_V1``); taps through
``torchvision.models.feature_extraction`` (only the graph up to the deepest requested tap runs).

Taps are the model's stages (top-level blocks; the children of ``features`` / ``encoder.layers``
containers), plus ``pre_logits``: the input of the last linear layer. Weights: the enum's file in
``<hub cache>/torch/hub/checkpoints/`` (as ``torch.hub`` names it), a local state-dict file, or
``"random"``; state dicts are read with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from app.backbones.adapters.common import ModuleAdapter, seeded, state_copy
from app.backbones.base import BackboneId, BackboneSpec, LayerSpec, Preprocessing, SourceTask
from app.backbones.context import RANDOM_WEIGHTS, LoadContext, random_weights_digest
from app.backbones.errors import InvalidBackbone
from app.backbones.hub import unavailable
from app.backbones.weights import sha256_file, verify_digest

PRE_LOGITS = "pre_logits"
_SKIP = (nn.BatchNorm2d, nn.LayerNorm, nn.ReLU, nn.ReLU6, nn.Hardswish, nn.SiLU, nn.GELU, nn.Dropout,
         nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.Identity, nn.Flatten, nn.Linear)
_HEADS = ("fc", "classifier", "head", "heads", "avgpool", "dropout", "aux_logits", "AuxLogits")


def _checkpoints(ctx: LoadContext) -> Path:
    return ctx.hub_cache_dir / "torch" / "hub" / "checkpoints"


def _enum(bid: BackboneId):
    from torchvision.models import get_model_weights, list_models

    if bid.arch not in list_models():
        raise InvalidBackbone(f"torchvision has no model {bid.arch!r} (from {bid}); see torchvision.models.list_models()")
    weights = get_model_weights(bid.arch)
    tag = bid.tag or "DEFAULT"
    try:
        return weights[tag]
    except KeyError:
        raise InvalidBackbone(f"torchvision {bid.arch} has no weights {tag!r}; known: {[w.name for w in weights]}") from None


def _weights_file(bid: BackboneId, ctx: LoadContext, weights: Any, card_dir: str | None = None) -> Path | None:
    """``None`` for random init; otherwise a local state-dict file (raises 422 when there is none)."""
    if isinstance(weights, str) and weights:
        path = ctx.resolve(weights, card_dir)
        if path is None:
            return None
        if not path.is_file():
            raise unavailable(str(bid), path)
        return path
    if ctx.weights_path is not None:
        return ctx.weights_path
    folder = _checkpoints(ctx)
    if ctx.offline and not (folder.is_dir() and any(p.name.startswith(bid.arch) for p in folder.iterdir())):
        # answer before importing torchvision (seconds, cold): no file there can be this model's
        raise unavailable(str(bid), folder / f"{bid.arch}-<hash>.pth",
                          hint="the file torchvision's weights enum names; or set weights = 'random'")
    enum = _enum(bid)
    path = folder / Path(enum.url).name
    if path.is_file():
        return path
    if not ctx.offline:
        from torch.hub import download_url_to_file

        folder.mkdir(parents=True, exist_ok=True)
        download_url_to_file(enum.url, str(path), progress=False)
        return path
    raise unavailable(str(bid), path, hint=f"downloadable from {enum.url}")


def _build(bid: BackboneId, num_classes: int | None) -> nn.Module:
    from torchvision.models import get_model

    return get_model(bid.arch, weights=None, **({"num_classes": num_classes} if num_classes else {}))


def _stage_names(model: nn.Module) -> list[str]:
    names: list[str] = []
    for name, child in model.named_children():
        if name in _HEADS or isinstance(child, _SKIP) or not any(True for _ in child.parameters()):
            continue
        inner = getattr(child, "layers", None)
        if name in ("features", "blocks", "stages") and isinstance(child, nn.Sequential | nn.ModuleList):
            names += [f"{name}.{n}" for n, c in child.named_children() if not isinstance(c, _SKIP)]
        elif isinstance(inner, nn.Sequential | nn.ModuleList) and len(inner) > 1:
            names += [f"{name}.layers.{n}" for n, _ in inner.named_children()]
        else:
            names.append(name)
    return names


def _pre_logits_node(model: nn.Module) -> str | None:
    from torchvision.models.feature_extraction import get_graph_node_names

    linears = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    _, nodes = get_graph_node_names(model)
    if not linears or linears[-1] not in nodes:
        return None
    i = nodes.index(linears[-1])
    return nodes[i - 1] if i > 0 else None


def _taps(model: nn.Module, input_size: tuple[int, int, int]) -> tuple[dict[str, str], tuple[LayerSpec, ...]]:
    """Node per tap and the tap specs, measured with one dummy forward."""
    from torchvision.models.feature_extraction import create_feature_extractor

    nodes = {n: n for n in _stage_names(model)}
    pre = _pre_logits_node(model)
    if pre is not None:
        nodes[PRE_LOGITS] = pre
    extractor = create_feature_extractor(model.eval(), return_nodes={v: k for k, v in nodes.items()})
    with torch.inference_mode():
        out = extractor(torch.zeros(1, *input_size))
    layers = []
    for i, (name, t) in enumerate(out.items()):
        kind = {4: "conv", 3: "tokens", 2: "vector"}.get(t.ndim)
        if kind is None:
            continue
        dim = int(t.shape[1] if kind == "conv" else t.shape[-1])
        layers.append(LayerSpec(name, dim, kind, round((i + 1) / len(out), 3)))
    return {ly.name: nodes[ly.name] for ly in layers}, tuple(layers)


def describe(bid: BackboneId, ctx: LoadContext, weights: Any = None) -> BackboneSpec:
    path = _weights_file(bid, ctx, weights)
    enum = _enum(bid) if weights != "random" or bid.tag else None
    categories = (enum.meta.get("categories") if enum is not None else None) or []
    t = enum.transforms() if enum is not None else None
    crop = int(t.crop_size[0]) if t is not None else 224
    resize = int(t.resize_size[0]) if t is not None and getattr(t, "resize_size", None) else crop
    pre = Preprocessing(input_size=(3, crop, crop), mean=tuple(t.mean) if t else (0.485, 0.456, 0.406),
                        std=tuple(t.std) if t else (0.229, 0.224, 0.225),
                        interpolation=str(t.interpolation.value) if t else "bilinear",
                        crop_pct=round(crop / resize, 4))
    model = _build(bid, len(categories) or None)
    _, layers = _taps(model, pre.input_size)
    source = None
    if path is not None and categories:
        metrics = (enum.meta.get("_metrics") or {}).get("ImageNet-1K", {})
        acc = metrics.get("acc@1")
        source = SourceTask(dataset="ImageNet-1K" if len(categories) == 1000 else bid.tag or "unknown",
                            classes=len(categories), accuracy=acc / 100 if acc else None,
                            description=str(enum.meta.get("_docs", "")).strip())
    return BackboneSpec(
        id=str(bid), family="torchvision", modality="image", preprocessing=pre, layers=layers, source=source,
        licence="BSD-3-Clause (torchvision); weights: see their source dataset's terms",
        weights_digest=random_weights_digest(str(bid)) if path is None else sha256_file(path),
        num_params=sum(p.numel() for p in model.parameters()), description=f"torchvision {bid.name}",
        extra={"weights": RANDOM_WEIGHTS if path is None else ctx.portable(path),
               "num_classes": len(categories) or None},
    )


class TorchvisionAdapter(ModuleAdapter):
    def __init__(self, spec: BackboneSpec, weights: Path | None) -> None:
        self.bid = BackboneId.parse(spec.id)
        self._num_classes = spec.extra.get("num_classes")
        if weights is None:
            model = seeded(_build, 0, self.bid, self._num_classes)
        else:
            verify_digest(weights, spec.weights_digest)
            model = _build(self.bid, self._num_classes)
            try:
                state = torch.load(weights, map_location="cpu", weights_only=True)
                model.load_state_dict(state, strict=True)
            except (RuntimeError, ValueError, OSError) as exc:
                raise InvalidBackbone(f"weights {weights.name!r} for {self.bid} cannot be loaded: {exc}") from exc
        self._state = state_copy(model)
        self._nodes, own = _taps(model, spec.preprocessing.input_size or (3, 224, 224))
        known = {ly.name: ly.dim for ly in own}
        for layer in spec.layers:
            if known.get(layer.name) != layer.dim:
                raise InvalidBackbone(f"{spec.id}: layer {layer.name!r} (dim {layer.dim}) is not one of {known}")
        self._extractors: dict[tuple[str, ...], nn.Module] = {}
        super().__init__(spec, model, head=True)

    def to(self, device):
        self._extractors.clear()
        return super().to(device)

    def _extractor(self, layers: list[str]) -> nn.Module:
        from torchvision.models.feature_extraction import create_feature_extractor

        key = tuple(sorted(layers))
        if key not in self._extractors:
            self._extractors[key] = create_feature_extractor(
                self.model, return_nodes={self._nodes[n]: n for n in key}).eval()
        return self._extractors[key]

    def _raw_taps(self, x: torch.Tensor, layers: list[str]) -> dict[str, torch.Tensor]:
        return self._extractor(layers)(x)

    def _build(self, pretrained: bool) -> nn.Module:
        model = _build(self.bid, self._num_classes)
        if pretrained:
            model.load_state_dict(self._state, strict=True)
        return model

    def _trunk_body(self, model: nn.Module, layer: str) -> nn.Module:
        from torchvision.models.feature_extraction import create_feature_extractor

        body = create_feature_extractor(model, return_nodes={self._nodes[layer]: "out"})
        return _Picked(body, self._pool_module(layer))


class _Picked(nn.Module):
    def __init__(self, body: nn.Module, pool: nn.Module) -> None:
        super().__init__()
        self.body = body
        self.pool = pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.body(x)["out"])


def create(spec: BackboneSpec, ctx: LoadContext) -> TorchvisionAdapter:
    bid = BackboneId.parse(spec.id)
    return TorchvisionAdapter(spec, _weights_file(bid, ctx, spec.extra.get("weights"), spec.extra.get("card_dir")))
