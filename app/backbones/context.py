"""What loading a backbone needs to know besides its spec: where weights live (:class:`LoadContext`) and
the digest that stands for random initial weights. Adapters import this module, never the catalogue.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

__all__ = ["LoadContext", "random_weights_digest"]


@dataclass(frozen=True)
class LoadContext:
    """Where weights are looked up. ``weights_path`` is a local copy of uploaded weights, when any."""

    models_dir: Path = Path("models")
    hub_cache_dir: Path = Path("var/hub-cache")
    offline: bool = True
    weights_path: Path | None = None

    @classmethod
    def from_settings(cls, settings, weights_path: Path | None = None) -> LoadContext:
        return cls(Path(settings.models_dir), Path(settings.hub_cache_dir), bool(settings.offline), weights_path)



def random_weights_digest(backbone_id: str) -> str:
    """Digest standing for "randomly initialised with seed 0" (``weights = "random"`` in a card)."""
    return hashlib.sha256(f"random-init:seed0:{backbone_id}".encode()).hexdigest()
