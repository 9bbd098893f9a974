"""timm: any timm model name (``timm:resnet50.a1_in1k``), intermediate features via timm's own
``forward_intermediates`` (``FeatureListNet`` for models without it), plus a ``pre_logits`` vector tap.

Weights: ``weights = "random"`` (seeded init), a local file, or the pretrained tag found in the hub cache
(:mod:`app.backbones.hub`); with ``offline = false`` timm may download into that cache.
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
from app.backbones.hub import cached_hf_file, unavailable
from app.backbones.weights import load_state_dict, sha256_file

PRE_LOGITS = "pre_logits"


def _timm():
    import timm

    return timm


def _weights_file(bid: BackboneId, ctx: LoadContext, weights: Any, card_dir: str | None = None) -> Path | None:
    """``None`` for random init; otherwise a local weights file (raises 422 when there is none)."""
    if isinstance(weights, str) and weights:
        path = ctx.resolve(weights, card_dir)
        if path is None:
            return None
        if not path.is_file():
            raise unavailable(str(bid), path)
        return path
    if ctx.weights_path is not None:
        return ctx.weights_path
    plain = ctx.hub_cache_dir / "timm" / bid.name
    for name in ("model.safetensors", "pytorch_model.bin"):
        if (plain / name).is_file():
            return plain / name
    if ctx.offline and not _anything_cached(bid, ctx):
        # answer before importing timm (seconds, cold): nothing under either layout can match
        raise unavailable(str(bid), plain / "model.safetensors",
                          hint=f"the files of the Hugging Face repo timm/{bid.name}, or set weights = 'random'")
    cfg = _pretrained_cfg(bid)
    repo = cfg.get("hf_hub_id") or f"timm/{bid.name}"
    for name in ("model.safetensors", "pytorch_model.bin"):
        found = cached_hf_file(ctx.hub_cache_dir, repo, name)
        if found is not None:
            return found
    if not ctx.offline:
        from huggingface_hub import hf_hub_download

        from app.backbones.hub import hf_cache_dir

        return Path(hf_hub_download(repo, "model.safetensors", cache_dir=str(hf_cache_dir(ctx.hub_cache_dir))))
    raise unavailable(str(bid), plain / "model.safetensors",
                      hint=f"the file of the Hugging Face repo {repo}, or set weights = 'random' in a card")


def _anything_cached(bid: BackboneId, ctx: LoadContext) -> bool:
    from app.backbones.hub import hf_cache_dir

    prefix = f"models--timm--{bid.arch}"
    root = hf_cache_dir(ctx.hub_cache_dir)
    return root.is_dir() and any(p.name.startswith(prefix) for p in root.iterdir())


def _pretrained_cfg(bid: BackboneId) -> dict[str, Any]:
    timm = _timm()
    if not timm.is_model(bid.arch):
        raise InvalidBackbone(f"timm has no model {bid.arch!r} (from {bid}); see timm.list_models()")
    try:
        cfg = timm.models.get_pretrained_cfg(bid.name) if bid.tag else None
    except (RuntimeError, ValueError):
        cfg = None
    if bid.tag and cfg is None:
        raise InvalidBackbone(f"timm model {bid.arch!r} has no pretrained tag {bid.tag!r} (from {bid})")
    if cfg is None:
        cfg = timm.models.get_pretrained_cfg(bid.arch)
    return cfg.to_dict() if cfg is not None and hasattr(cfg, "to_dict") else dict(cfg or {})


def _build(bid: BackboneId, num_classes: int | None = None) -> nn.Module:
    kwargs = {} if num_classes is None else {"num_classes": num_classes}
    return _timm().create_model(bid.name, pretrained=False, **kwargs)


def _layers(model: nn.Module) -> tuple[LayerSpec, ...]:
    info = list(model.feature_info) if hasattr(model, "feature_info") else []
    n = len(info) + 1
    layers = [LayerSpec(str(f["module"]), int(f["num_chs"]), "conv", round((i + 1) / n, 3)) for i, f in enumerate(info)]
    width = int(getattr(model, "head_hidden_size", None) or model.num_features)
    layers.append(LayerSpec(PRE_LOGITS, width, "vector", 1.0))
    return tuple(layers)


_DATASET_SUFFIXES = (("in22k", "ImageNet-22k"), ("in21k", "ImageNet-21k"), ("in12k", "ImageNet-12k"),
                     ("in1k", "ImageNet-1k"))


def source_dataset(tag: str | None, num_classes: int) -> str:
    """The source dataset a timm pretrained tag names (``a1_in1k`` → ``ImageNet-1k``; a fine-tune names its
    last dataset: ``in22k_ft_in1k`` → ``ImageNet-1k``); an unknown tag is kept as it is."""
    if not tag:
        return "ImageNet-1k" if num_classes == 1000 else "unknown"
    for suffix, name in _DATASET_SUFFIXES:
        if tag == suffix or tag.endswith("_" + suffix):
            return name
    return tag


def describe(bid: BackboneId, ctx: LoadContext, weights: Any = None) -> BackboneSpec:
    """A spec for a timm name, offline: architecture and taps from timm, preprocessing from its config."""
    path = _weights_file(bid, ctx, weights)  # first: a missing file answers before timm is imported
    cfg = _pretrained_cfg(bid)
    with torch.device("meta"):
        model = _build(bid)
    c, h, w = cfg.get("input_size", (3, 224, 224))
    pre = Preprocessing(input_size=(int(c), int(h), int(w)), mean=tuple(cfg.get("mean", (0.485, 0.456, 0.406))),
                        std=tuple(cfg.get("std", (0.229, 0.224, 0.225))),
                        interpolation=str(cfg.get("interpolation") or "bilinear"),
                        crop_pct=float(cfg.get("crop_pct") or 1.0))
    num_classes = int(getattr(model, "num_classes", 0) or 0)
    source = None
    if path is not None and num_classes:
        source = SourceTask(dataset=source_dataset(bid.tag, num_classes), classes=num_classes,
                            description=f"timm pretrained tag {bid.tag or 'default'}")
    return BackboneSpec(
        id=str(bid), family="timm", modality="image", preprocessing=pre, layers=_layers(model), source=source,
        licence=str(cfg.get("license") or "see timm model card"),
        weights_digest=random_weights_digest(str(bid)) if path is None else sha256_file(path),
        num_params=sum(p.numel() for p in model.parameters()),
        description=f"timm {bid.name}",
        extra={"weights": RANDOM_WEIGHTS if path is None else ctx.portable(path)},
    )


class TimmAdapter(ModuleAdapter):
    def __init__(self, spec: BackboneSpec, weights: Path | None) -> None:
        self.bid = BackboneId.parse(spec.id)
        self._weights = weights
        if weights is not None:
            self._state: dict[str, torch.Tensor] | None = load_state_dict(weights, expected_sha256=spec.weights_digest)
            model = self._build(pretrained=True)
        else:  # "random": seed 0 (what random_weights_digest stands for); trunks reuse this state
            self._state = None
            model = seeded(self._build, 0, False)
            self._state = state_copy(model)
        self._indices = {str(f["module"]): i for i, f in enumerate(model.feature_info)}
        self._has_intermediates = hasattr(model, "forward_intermediates")
        self._feature_net: nn.Module | None = None
        super().__init__(spec, model, head=int(getattr(model, "num_classes", 0) or 0) > 0)

    def _build(self, pretrained: bool) -> nn.Module:
        model = _build(self.bid)
        if pretrained and self._state is not None:
            try:
                model.load_state_dict(self._state, strict=True)
            except RuntimeError as exc:
                raise InvalidBackbone(f"weights for {self.bid} do not fit timm's {self.bid.arch}: {exc}") from exc
        return model

    def _raw_taps(self, x: torch.Tensor, layers: list[str]) -> dict[str, torch.Tensor]:
        tapped = [n for n in layers if n != PRE_LOGITS]
        indices = sorted(self._indices[n] for n in tapped)
        out: dict[str, torch.Tensor] = {}
        if PRE_LOGITS in layers:
            if indices and self._has_intermediates:
                final, feats = self.model.forward_intermediates(x, indices=indices)
            else:
                final, feats = self.model.forward_features(x), self._feature_list(x, indices)
            out[PRE_LOGITS] = self.model.forward_head(final, pre_logits=True)
        elif self._has_intermediates:
            feats = self.model.forward_intermediates(x, indices=indices, intermediates_only=True, stop_early=True)
        else:
            feats = self._feature_list(x, indices)
        by_index = dict(zip(indices, feats, strict=True))
        out.update({n: by_index[self._indices[n]] for n in tapped})
        return out

    def _feature_list(self, x: torch.Tensor, indices: list[int]) -> list[torch.Tensor]:
        if not indices:
            return []
        if self._feature_net is None:
            from timm.models import FeatureListNet

            self._feature_net = FeatureListNet(self.model, out_indices=tuple(range(len(self._indices))))
        feats = self._feature_net(x)
        return [feats[i] for i in indices]

    def _trunk_body(self, model: nn.Module, layer: str) -> nn.Module:
        return _TimmTrunk(model, None if layer == PRE_LOGITS else self._indices[layer], self._pool_module(layer))


class _TimmTrunk(nn.Module):
    """A timm model cut at one feature index (later blocks and the head pruned), pooled."""

    def __init__(self, model: nn.Module, index: int | None, pool: nn.Module) -> None:
        super().__init__()
        self.index = index
        if index is None:
            model.reset_classifier(0)
        elif hasattr(model, "prune_intermediate_layers"):
            model.prune_intermediate_layers(indices=[index], prune_head=True)
        self.model = model
        self.pool = pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.index is None:
            return self.model(x)
        feats = self.model.forward_intermediates(x, indices=[self.index], intermediates_only=True)
        return self.pool(feats[-1])


def create(spec: BackboneSpec, ctx: LoadContext) -> TimmAdapter:
    bid = BackboneId.parse(spec.id)
    _pretrained_cfg(bid)
    weights = spec.extra.get("weights")
    return TimmAdapter(spec, _weights_file(bid, ctx, weights, spec.extra.get("card_dir")))
