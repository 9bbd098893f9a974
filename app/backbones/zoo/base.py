"""The shape every zoo architecture has: an ordered stack of named stages, each one a tap, then a head.

A tap is the output of a stage. ``forward(x)`` gives source logits; ``forward_taps(x, layers)`` gives the
raw tap outputs (conv maps ``(n, c, h, w)``, token sequences ``(n, t, d)`` or vectors ``(n, d)``) and stops
after the deepest requested stage; ``truncated(layer)`` is the trunk below a cut. The last stage is always
a ``vector`` tap (the pre-logits features) that the head reads.
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from app.backbones.base import LayerSpec


@dataclass(frozen=True)
class Stage:
    name: str
    module: nn.Module
    dim: int
    kind: str  # "conv" | "tokens" | "vector"


class ZooModel(nn.Module):
    """Named stages + classifier head. Subclasses build their stages and call ``super().__init__``."""

    arch: str = ""

    def __init__(self, stages: Sequence[Stage], num_classes: int) -> None:
        super().__init__()
        if not stages:
            raise ValueError("a zoo model needs at least one stage")
        if stages[-1].kind != "vector":
            raise ValueError(f"the last stage must be a vector tap, got {stages[-1].kind!r}")
        if not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
        self.stages = nn.ModuleDict((s.name, s.module) for s in stages)
        count = len(stages)
        self.taps: tuple[LayerSpec, ...] = tuple(
            LayerSpec(s.name, s.dim, s.kind, round((i + 1) / count, 3)) for i, s in enumerate(stages)  # type: ignore[arg-type]
        )
        self.num_classes = num_classes
        self.num_features = stages[-1].dim
        self.head = nn.Linear(self.num_features, num_classes)

    # -- taps ----------------------------------------------------------------------------------------
    def layer_specs(self) -> list[LayerSpec]:
        return list(self.taps)

    def tap(self, name: str) -> LayerSpec:
        for tap in self.taps:
            if tap.name == name:
                return tap
        raise ValueError(f"{self.arch} has no layer {name!r}; layers: {[t.name for t in self.taps]}")

    def forward_taps(self, x: torch.Tensor, layers: Sequence[str]) -> dict[str, torch.Tensor]:
        """Raw outputs of the requested stages; stages after the deepest one are not run."""
        wanted = {self.tap(name).name for name in layers}
        if not wanted:
            raise ValueError("forward_taps needs at least one layer")
        out: dict[str, torch.Tensor] = {}
        for name, stage in self.stages.items():
            x = stage(x)
            if name in wanted:
                out[name] = x
                if len(out) == len(wanted):
                    break
        return out

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        for stage in self.stages.values():
            x = stage(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x))

    def truncated(self, layer: str) -> nn.Sequential:
        """A copy of the stages up to and including ``layer`` (the trunk below the cut)."""
        self.tap(layer)
        kept: list[tuple[str, nn.Module]] = []
        for name, stage in self.stages.items():
            kept.append((name, copy.deepcopy(stage)))
            if name == layer:
                break
        return nn.Sequential(OrderedDict(kept))


def conv_bn_act(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
    )


class GlobalAvgPool(nn.Module):
    """``(n, c, h, w)`` → ``(n, c)``; ``(n, t, d)`` → ``(n, d)``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3)) if x.ndim == 4 else x.mean(dim=1)


def check_positive(arch: str, **values: int) -> None:
    for key, value in values.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{arch}: {key} must be a positive int, got {value!r}")
