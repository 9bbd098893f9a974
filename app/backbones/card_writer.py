"""Writing backbone cards: a small TOML emitter for the card format, and :func:`save_zoo_backbone`, which
stores a trained zoo model as ``<models_dir>/<name>.safetensors`` + ``<name>.toml`` (``tscout zoo build``).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from app.backbones.base import BackboneId, Preprocessing
from app.backbones.cards import load_card
from app.backbones.weights import sha256_file
from app.backbones.zoo import ZOO_ARCHITECTURES, ZooModel

_BARE_KEY = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")


def _key(k: str) -> str:
    return k if k and set(k) <= _BARE_KEY else json.dumps(k)


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)  # a JSON string is a valid TOML basic string
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_value(x)}" for k, x in v.items()) + " }"
    raise ValueError(f"cannot write {type(v).__name__} value {v!r} into a card")


def dump_card(data: dict[str, Any]) -> str:
    """TOML text for a card dict: scalars first, then tables, arrays of tables (``[[layers]]``) last."""
    lines: list[str] = []
    _emit(data, [], lines)
    return "\n".join(lines).strip() + "\n"


def _emit(table: dict[str, Any], path: list[str], lines: list[str]) -> None:
    scalars = {k: v for k, v in table.items() if v is not None and not _is_sub(v)}
    if path:
        lines.append("")
        lines.append("[" + ".".join(_key(p) for p in path) + "]")
    lines.extend(f"{_key(k)} = {_value(v)}" for k, v in scalars.items())
    for k, v in table.items():
        if isinstance(v, dict) and _is_sub(v):
            _emit(v, [*path, k], lines)
    for k, v in table.items():
        if isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
            for item in v:
                lines.append("")
                lines.append("[[" + ".".join(_key(p) for p in [*path, k]) + "]]")
                lines.extend(f"{_key(ik)} = {_value(iv)}" for ik, iv in item.items() if iv is not None)


def _is_sub(v: Any) -> bool:
    """Nested tables become ``[sections]``; ``arch.kwargs``-style flat dicts stay inline only when small."""
    if isinstance(v, list):
        return bool(v) and all(isinstance(x, dict) for x in v)
    return isinstance(v, dict)


def save_zoo_backbone(model: ZooModel, models_dir: Path, backbone_id: str, *, arch_kwargs: dict[str, Any],
                      preprocessing: Preprocessing, description: str = "", licence: str = "Apache-2.0 (own)",
                      source: dict[str, Any] | None = None, recipe: dict[str, Any] | None = None,
                      source_stats: str | None = None) -> Path:
    """Write ``<name>.safetensors`` and ``<name>.toml`` for a trained zoo model; returns the card path.

    ``backbone_id`` is ``zoo:<arch>.<tag>``; the card is re-read before returning, so what is written is
    what the catalogue will load.
    """
    from safetensors.torch import save_file

    bid = BackboneId.parse(backbone_id)
    if bid.family != "zoo" or bid.arch != model.arch or model.arch not in ZOO_ARCHITECTURES:
        raise ValueError(f"backbone id {backbone_id!r} must be 'zoo:{model.arch}.<tag>'")
    models_dir = Path(models_dir)
    models_dir.mkdir(parents=True, exist_ok=True)
    weights = models_dir / f"{bid.name}.safetensors"
    save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, str(weights))
    pre = {k: list(v) if isinstance(v, tuple) else v for k, v in preprocessing.__dict__.items() if v is not None}
    card: dict[str, Any] = {
        "id": str(bid),
        "modality": "image",
        "description": description,
        "licence": licence,
        "weights": weights.name,
        "weights_sha256": sha256_file(weights),
        "num_params": sum(p.numel() for p in model.parameters()),
        "arch": {"name": model.arch, "kwargs": dict(arch_kwargs)},
        "preprocessing": pre,
        "source": source,
        "recipe": recipe,
        "source_stats": {"file": source_stats} if source_stats else None,
        "layers": [{"name": t.name, "dim": t.dim, "kind": t.kind, "depth": t.depth} for t in model.layer_specs()],
    }
    path = models_dir / f"{bid.name}.toml"
    path.write_text(dump_card({k: v for k, v in card.items() if v is not None}), encoding="utf-8")
    load_card(path)
    return path
