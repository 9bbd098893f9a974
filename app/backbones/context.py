"""What loading a backbone needs to know besides its spec: where weights live (:class:`LoadContext`), the
one rule every family resolves a weights reference by, and the digest that stands for random initial
weights. Adapters import this module, never the catalogue.

A weights reference (a card's or a registered spec's ``weights``) is one of:

- ``"random"`` (:data:`RANDOM_WEIGHTS`): seeded random initialisation, no file;
- an absolute path: used as it is;
- a relative path: relative to the card's folder for a card (``extra["card_dir"]``), otherwise relative
  to the hub cache (``TSCOUT_HUB_CACHE_DIR``) — registered backbones store their weights that way
  (:meth:`LoadContext.portable`), so moving the hub cache moves them too.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

__all__ = ["RANDOM_WEIGHTS", "LoadContext", "random_weights_digest"]

RANDOM_WEIGHTS = "random"


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

    def resolve(self, ref: str, card_dir: str | Path | None = None) -> Path | None:
        """The file or folder a weights reference names (``None`` for ``"random"``), by the rule above.

        Parameters
        ----------
        ref : str
            ``"random"``, an absolute path, or a path relative to ``card_dir`` (cards) or the hub cache.
        card_dir : str or Path, optional
            The folder of the card the reference comes from.
        """
        if not isinstance(ref, str) or not ref:
            raise ValueError(f"a weights reference must be a non-empty string, got {ref!r}")
        if ref == RANDOM_WEIGHTS:
            return None
        path = Path(ref)
        if path.is_absolute():
            return path
        return Path(card_dir) / path if card_dir else self.hub_cache_dir / path

    def portable(self, path: Path) -> str:
        """How a registered spec stores ``path``: relative to the hub cache when inside it, else absolute."""
        resolved = Path(path).resolve()
        root = self.hub_cache_dir.resolve()
        if resolved == root or root in resolved.parents:
            return resolved.relative_to(root).as_posix()
        return str(resolved)


def random_weights_digest(backbone_id: str) -> str:
    """Digest standing for "randomly initialised with seed 0" (``weights = "random"`` in a card)."""
    return hashlib.sha256(f"random-init:seed0:{backbone_id}".encode()).hexdigest()
