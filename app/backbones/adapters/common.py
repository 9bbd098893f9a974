"""The shared half of every adapter whose model is a ``torch.nn.Module``.

Subclasses provide ``_raw_taps(x, layers)`` (raw tap outputs), ``_build(pretrained)`` (a fresh model, used
for trunks) and ``_trunk_body(model, layer)`` (the module below the cut); the base does validation,
device placement, pooling, float32 conversion, inference mode and seeding.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from app.backbones.base import BackboneSpec
from app.backbones.preprocess import ImageTransform, Pool, identity, pool


def seeded(fn: Callable[..., Any], seed: int, *args: Any) -> Any:
    """``fn(*args)`` with torch's CPU generator seeded, leaving the global RNG state as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return fn(*args)


def state_copy(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


class ModuleAdapter(ABC):
    """Base adapter: image input by default (text adapters override ``transform``/``collate``/``_input``)."""

    def __init__(self, spec: BackboneSpec, model: nn.Module, *, head: bool = False) -> None:
        if not spec.layers:
            raise ValueError(f"backbone {spec.id} declares no layers")
        self.spec = spec
        self.model = model.eval()
        self.device = torch.device("cpu")
        self.channels_last = False
        self._has_head = head
        self._transform: Callable[[Any], Any] = (
            ImageTransform(spec.preprocessing) if spec.modality == "image" else identity
        )

    # -- contract ----------------------------------------------------------------------------------
    def layers(self) -> list[str]:
        return [layer.name for layer in self.spec.layers]

    @property
    def transform(self) -> Callable[[Any], Any]:
        return self._transform

    def collate(self, samples: Sequence[Any]) -> Any:
        if not samples:
            raise ValueError("cannot collate an empty batch")
        return torch.stack(list(samples))

    @property
    def stacks_samples(self) -> bool:
        """Whether ``collate`` is ``torch.stack`` of the transformed samples, so that a caller may build the
        batch itself (the embedding pipeline's pixel batch path); subclasses that override ``collate`` say."""
        return type(self).collate is ModuleAdapter.collate

    def to(self, device: torch.device | str) -> ModuleAdapter:
        self.device = torch.device(device)
        # channels_last speeds up convolutions on CUDA; on CPU the default layout is as fast or faster
        self.channels_last = self.device.type == "cuda" and self.spec.modality == "image"
        self.model.to(self.device)
        if self.channels_last:
            self.model.to(memory_format=torch.channels_last)
        return self

    def embed(self, batch: Any, layers: Sequence[str]) -> dict[str, torch.Tensor]:
        names = self.check_layers(layers)
        with torch.inference_mode():
            inputs = self._input(batch)
            raw = self._raw_taps(inputs, names)
            return {n: self._pool(n, raw[n], inputs).float() for n in names}

    @property
    def has_source_head(self) -> bool:
        return self._has_head

    def source_logits(self, batch: Any) -> torch.Tensor:
        if not self._has_head:
            raise ValueError(f"backbone {self.spec.id} has no source classification head")
        with torch.inference_mode():
            return self._logits(self._input(batch)).float()

    def trunk(self, layer: str, *, pretrained: bool = True, seed: int = 0) -> nn.Module:
        (name,) = self.check_layers([layer])
        model = seeded(self._build, seed, pretrained)
        return self._trunk_body(model, name).train()

    # -- helpers for subclasses -------------------------------------------------------------------
    def check_layers(self, layers: Sequence[str]) -> list[str]:
        if isinstance(layers, str) or not layers:
            raise ValueError(f"layers must be a non-empty list of layer names, got {layers!r}")
        known = self.layers()
        unknown = [name for name in layers if name not in known]
        if unknown:
            raise ValueError(f"backbone {self.spec.id} has no layer(s) {unknown}; layers: {known}")
        return list(dict.fromkeys(layers))

    def _input(self, batch: Any) -> Any:
        if not isinstance(batch, torch.Tensor):
            raise TypeError(f"an image batch must be a tensor (n, c, h, w), got {type(batch).__name__}")
        x = batch.to(self.device, non_blocking=True)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last and x.ndim == 4 else x

    def _pool(self, name: str, raw: torch.Tensor, inputs: Any) -> torch.Tensor:
        kind = self.spec.layer(name).kind
        return pool(raw, kind, pooling=self.spec.preprocessing.pooling or "mean")

    def _pool_module(self, name: str) -> nn.Module:
        return Pool(self.spec.layer(name).kind, self.spec.preprocessing.pooling or "mean")

    @abstractmethod
    def _raw_taps(self, x: Any, layers: list[str]) -> dict[str, torch.Tensor]:
        """Raw outputs ``{layer: tensor}`` of the model on prepared input ``x``."""

    def _logits(self, x: Any) -> torch.Tensor:
        return self.model(x)

    @abstractmethod
    def _build(self, pretrained: bool) -> nn.Module:
        """A new model of the same architecture: loaded weights, or freshly initialised (seeded by caller)."""

    @abstractmethod
    def _trunk_body(self, model: nn.Module, layer: str) -> nn.Module:
        """``model`` cut at ``layer``: collated batch → pooled ``(n, dim)`` features."""
