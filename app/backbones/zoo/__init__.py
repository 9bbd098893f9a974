"""Our own small architectures (the built-in zoo), for 32×32×3 input.

Registration is explicit (no import side effects elsewhere): :data:`ZOO_ARCHITECTURES` maps a registry
name to its class. Training-time API (``tscout zoo build``)::

    model = build_zoo_model("cnn_small", num_classes=10, width=32)
    logits = model(x)                                   # (n, num_classes): the source head
    taps = model.forward_taps(x, ["stage2", "pool"])    # {layer: raw tap output}
    model.layer_specs()                                 # [LayerSpec(name, dim, kind, depth), …]

Weights are saved with ``safetensors.torch.save_file(model.state_dict(), …)`` and described by a card
(``models/README.md``).
"""

from __future__ import annotations

import inspect
from typing import Any

from app.backbones.zoo.base import Stage, ZooModel
from app.backbones.zoo.convnets import CnnSmall, ResNetSmall
from app.backbones.zoo.vit import MixerTiny, VitTiny

ZOO_ARCHITECTURES: dict[str, type[ZooModel]] = {
    "cnn_small": CnnSmall,
    "resnet_small": ResNetSmall,
    "vit_tiny": VitTiny,
    "mixer_tiny": MixerTiny,
}

__all__ = ["ZOO_ARCHITECTURES", "Stage", "ZooModel", "build_zoo_model", "zoo_arch_kwargs"]


def zoo_arch_kwargs(arch: str) -> dict[str, Any]:
    """The constructor keywords of ``arch`` with their defaults."""
    cls = _lookup(arch)
    return {
        name: p.default for name, p in inspect.signature(cls.__init__).parameters.items() if name != "self"
    }


def build_zoo_model(arch: str, **kwargs: Any) -> ZooModel:
    """A freshly initialised zoo model (seed torch first for a reproducible init)."""
    cls = _lookup(arch)
    unknown = sorted(set(kwargs) - set(zoo_arch_kwargs(arch)))
    if unknown:
        raise ValueError(f"zoo architecture {arch!r} takes no argument(s) {unknown}; "
                         f"accepted: {sorted(zoo_arch_kwargs(arch))}")
    return cls(**kwargs)


def _lookup(arch: str) -> type[ZooModel]:
    try:
        return ZOO_ARCHITECTURES[arch]
    except KeyError:
        raise ValueError(f"unknown zoo architecture {arch!r}; known: {sorted(ZOO_ARCHITECTURES)}") from None
