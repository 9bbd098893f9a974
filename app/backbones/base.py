"""The backbone contract: what a spec carries and what every adapter can do.

A pretrained model is a stack of pieces; transfer means cutting it at a layer and reusing what is below
the cut. So an adapter exposes its tap-able **layers**, embeds a batch at several of them at once, and
builds the **trunk** below a cut as a trainable module (pretrained, or the same architecture freshly
initialised — the scratch baseline of a probe).

Ids are ``family:arch.tag[@revision]``, e.g. ``zoo:cnn_small.digits``, ``timm:resnet50.a1_in1k``,
``hf:sentence-transformers/all-MiniLM-L6-v2``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

import torch
from torch import nn

FAMILIES = ("zoo", "timm", "torchvision", "hf", "torchscript", "export")
_ID_RE = re.compile(r"^(?P<family>[a-z]+):(?P<name>[^@\s]+?)(?:@(?P<revision>[^@\s]+))?$")


@dataclass(frozen=True)
class BackboneId:
    family: str
    name: str
    revision: str | None = None

    @property
    def arch(self) -> str:
        """Architecture part of ``arch.tag`` (the whole name for hub ids without a tag)."""
        return self.name.split(".", 1)[0] if self.family in ("zoo", "timm", "torchvision") else self.name

    @property
    def tag(self) -> str | None:
        if self.family in ("zoo", "timm", "torchvision") and "." in self.name:
            return self.name.split(".", 1)[1]
        return None

    def __str__(self) -> str:
        return f"{self.family}:{self.name}" + (f"@{self.revision}" if self.revision else "")

    @classmethod
    def parse(cls, value: str) -> BackboneId:
        m = _ID_RE.match(value.strip()) if isinstance(value, str) else None
        if m is None:
            raise ValueError(f"backbone id must look like 'family:arch.tag[@revision]', got {value!r}")
        if m["family"] not in FAMILIES:
            raise ValueError(f"unknown backbone family {m['family']!r} in {value!r}; expected one of {FAMILIES}")
        return cls(m["family"], m["name"], m["revision"])


@dataclass(frozen=True)
class LayerSpec:
    """A tap-able cut point. ``kind`` says how its output is pooled to (n, dim)."""

    name: str
    dim: int
    kind: Literal["conv", "tokens", "vector"] = "conv"
    depth: float = 1.0  # relative position in the network, 0 (input) … 1 (last)


@dataclass(frozen=True)
class Preprocessing:
    """How raw samples become model input (travels with the weights)."""

    input_size: tuple[int, int, int] | None = None  # (channels, height, width) for images
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    interpolation: str = "bilinear"
    crop_pct: float = 1.0
    tokenizer: str | None = None  # text: tokenizer id or local directory
    max_length: int | None = None
    pooling: Literal["mean", "cls"] | None = None  # text: per-layer pooling of token states


@dataclass(frozen=True)
class SourceTask:
    """The card of the task the source was trained on."""

    dataset: str
    classes: int | None = None
    samples: int | None = None
    accuracy: float | None = None
    difficulty: dict[str, Any] | None = None
    description: str = ""


@dataclass(frozen=True)
class BackboneSpec:
    id: str
    family: str
    modality: Literal["image", "text"]
    preprocessing: Preprocessing
    layers: tuple[LayerSpec, ...]
    source: SourceTask | None = None
    licence: str = "unknown"
    weights_digest: str | None = None
    num_params: int | None = None
    description: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def layer(self, name: str) -> LayerSpec:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise ValueError(f"backbone {self.id} has no layer {name!r}; layers: {[ly.name for ly in self.layers]}")

    @property
    def last_layer(self) -> str:
        return self.layers[-1].name


@runtime_checkable
class BackboneAdapter(Protocol):
    """One contract for every family."""

    spec: BackboneSpec

    def layers(self) -> list[str]:
        """Names of the tap-able layers, input side first."""

    @property
    def transform(self) -> Callable[[Any], Any]:
        """Per-sample preprocessing: a PIL image → tensor (images); identity for text."""

    def collate(self, samples: Sequence[Any]) -> Any:
        """Batch transformed samples into model input (stack tensors; tokenize strings)."""

    def to(self, device: torch.device | str) -> BackboneAdapter:
        """Move the model; returns self."""

    def embed(self, batch: Any, layers: Sequence[str]) -> dict[str, torch.Tensor]:
        """Pooled float32 features ``{layer: (n, dim)}`` for a collated batch, in inference mode."""

    @property
    def has_source_head(self) -> bool:
        """Whether :meth:`source_logits` is available (LEEP/NCE need it)."""

    def source_logits(self, batch: Any) -> torch.Tensor:
        """Logits ``(n, source_classes)`` of the source head; raises ``ValueError`` when there is none."""

    def trunk(self, layer: str, *, pretrained: bool = True, seed: int = 0) -> nn.Module:
        """A trainable module mapping a collated batch to pooled ``(n, dim)`` features at ``layer``.

        ``pretrained=False`` gives the same architecture freshly initialised with ``seed`` (the scratch
        baseline); the module shares no parameters with the adapter's own model.
        """
