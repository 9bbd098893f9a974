"""Adapter for our own zoo architectures (``app.backbones.zoo``) with safetensors weights from a card."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from app.backbones.adapters.common import ModuleAdapter, seeded, state_copy
from app.backbones.base import BackboneSpec, LayerSpec
from app.backbones.context import LoadContext
from app.backbones.errors import InvalidBackbone, WeightsUnavailable
from app.backbones.zoo import ZooModel, build_zoo_model


def zoo_arch(spec: BackboneSpec) -> tuple[str, dict[str, Any]]:
    arch = spec.extra.get("arch")
    if not isinstance(arch, dict) or not isinstance(arch.get("name"), str):
        raise InvalidBackbone(f"zoo backbone {spec.id} needs an [arch] table with a 'name', got {arch!r}")
    kwargs = arch.get("kwargs") or {}
    if not isinstance(kwargs, dict):
        raise InvalidBackbone(f"zoo backbone {spec.id}: arch.kwargs must be a table, got {kwargs!r}")
    return arch["name"], dict(kwargs)


def zoo_layers(spec: BackboneSpec) -> tuple[LayerSpec, ...]:
    """The architecture's own taps (what a card without ``[[layers]]`` gets)."""
    name, kwargs = zoo_arch(spec)
    with torch.device("meta"):
        return tuple(build_zoo_model(name, **kwargs).layer_specs())


def zoo_weights_path(spec: BackboneSpec, ctx: LoadContext) -> Path | None:
    """The card's weights file (``None`` for ``"random"``), by :meth:`LoadContext.resolve`'s rule."""
    weights = spec.extra.get("weights")
    if not isinstance(weights, str) or not weights:
        raise InvalidBackbone(f"zoo backbone {spec.id} has no 'weights' file in its card")
    return ctx.resolve(weights, spec.extra.get("card_dir"))


class ZooAdapter(ModuleAdapter):
    def __init__(self, spec: BackboneSpec, weights_path: Path | None) -> None:
        from app.backbones.weights import load_state_dict

        self.arch, self.kwargs = zoo_arch(spec)
        try:
            model = build_zoo_model(self.arch, **self.kwargs)
        except (ValueError, TypeError) as exc:
            raise InvalidBackbone(f"zoo backbone {spec.id}: {exc}") from exc
        own = {t.name: t for t in model.layer_specs()}
        for layer in spec.layers:
            if layer.name not in own or own[layer.name].dim != layer.dim:
                raise InvalidBackbone(
                    f"zoo backbone {spec.id}: card layer {layer.name!r} (dim {layer.dim}) does not match "
                    f"{self.arch}'s taps {[(t.name, t.dim) for t in own.values()]}"
                )
        self._state: dict[str, torch.Tensor] | None = None
        if weights_path is None:  # "random": seed 0, and trunks start from this same state
            model = seeded(lambda: build_zoo_model(self.arch, **self.kwargs), 0)
            self._state = state_copy(model)
        else:
            if not weights_path.is_file():
                raise WeightsUnavailable(
                    f"weights of {spec.id} not found: place the safetensors file at {weights_path}"
                )
            self._state = load_state_dict(weights_path, expected_sha256=spec.weights_digest)
            try:
                model.load_state_dict(self._state, strict=True)
            except RuntimeError as exc:
                raise InvalidBackbone(f"weights of {spec.id} do not fit {self.arch}{self.kwargs}: {exc}") from exc
        super().__init__(spec, model, head=True)

    @property
    def zoo_model(self) -> ZooModel:
        return self.model  # type: ignore[return-value]

    def _raw_taps(self, x: torch.Tensor, layers: list[str]) -> dict[str, torch.Tensor]:
        return self.zoo_model.forward_taps(x, layers)

    def _build(self, pretrained: bool) -> nn.Module:
        model = build_zoo_model(self.arch, **self.kwargs)
        if pretrained and self._state is not None:
            model.load_state_dict(self._state, strict=True)
        return model

    def _trunk_body(self, model: nn.Module, layer: str) -> nn.Module:
        if not isinstance(model, ZooModel):
            raise TypeError(f"zoo trunk needs a ZooModel, got {type(model).__name__}")
        return nn.Sequential(model.truncated(layer), self._pool_module(layer))
