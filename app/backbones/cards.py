"""Backbone cards: one TOML file per backbone (format in ``models/README.md``) ↔ :class:`BackboneSpec`.

Also the JSON form of a spec (``spec_to_dict`` / ``spec_from_dict``) that registered backbones are stored
and served in. Card keys that ``BackboneSpec`` has no field for (``arch``, ``weights``, ``weights_sha256``,
``recipe``, ``source_stats`` …) land in ``spec.extra``; ``extra["card_dir"]`` remembers where relative
paths in the card resolve from.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

from app.backbones.base import BackboneId, BackboneSpec, LayerSpec, Preprocessing, SourceTask

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_SPEC_KEYS = {"id", "modality", "description", "licence", "num_params", "preprocessing", "layers", "source"}
_LAYER_KINDS = ("conv", "tokens", "vector")


def load_card(path: Path | str) -> BackboneSpec:
    """Parse one card file; errors name the file and the offending key."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"backbone card {path}: cannot read ({exc})") from exc
    try:
        spec = spec_from_card(data)
    except ValueError as exc:
        raise ValueError(f"backbone card {path}: {exc}") from exc
    return _with_extra(spec, card_dir=str(path.parent.resolve()))


def spec_from_card(data: dict[str, Any]) -> BackboneSpec:
    """A spec from a parsed card (a TOML table, or the same keys as JSON)."""
    if not isinstance(data, dict):
        raise ValueError(f"a card must be a table, got {type(data).__name__}")
    raw_id = data.get("id")
    if not isinstance(raw_id, str):
        raise ValueError(f"'id' must be a string like 'zoo:cnn_small.digits', got {raw_id!r}")
    bid = BackboneId.parse(raw_id)
    modality = data.get("modality")
    if modality not in ("image", "text"):
        raise ValueError(f"'modality' must be 'image' or 'text', got {modality!r}")
    digest = data.get("weights_sha256")
    if digest is not None and (not isinstance(digest, str) or not _SHA256.match(digest)):
        raise ValueError(f"'weights_sha256' must be 64 lowercase hex digits, got {digest!r}")
    num_params = data.get("num_params")
    if num_params is not None and (not isinstance(num_params, int) or num_params < 0):
        raise ValueError(f"'num_params' must be a non-negative int, got {num_params!r}")
    extra = {k: v for k, v in data.items() if k not in _SPEC_KEYS}
    return BackboneSpec(
        id=str(bid),
        family=bid.family,
        modality=modality,
        preprocessing=_preprocessing(data.get("preprocessing") or {}),
        layers=tuple(_layer(i, v) for i, v in enumerate(data.get("layers") or [])),
        source=_source(data["source"]) if data.get("source") else None,
        licence=str(data.get("licence", "unknown")),
        weights_digest=digest,
        num_params=num_params,
        description=str(data.get("description", "")),
        extra=extra,
    )


def _preprocessing(table: Any) -> Preprocessing:
    if not isinstance(table, dict):
        raise ValueError(f"[preprocessing] must be a table, got {table!r}")
    known = {f.name for f in fields(Preprocessing)}
    unknown = sorted(set(table) - known)
    if unknown:
        raise ValueError(f"[preprocessing] has unknown key(s) {unknown}; known: {sorted(known)}")
    values = dict(table)
    for key in ("input_size", "mean", "std"):
        if values.get(key) is not None:
            if not isinstance(values[key], list | tuple) or not all(isinstance(v, int | float) for v in values[key]):
                raise ValueError(f"preprocessing.{key} must be a list of numbers, got {values[key]!r}")
            values[key] = tuple(int(v) for v in values[key]) if key == "input_size" else tuple(
                float(v) for v in values[key])
    if values.get("input_size") is not None and len(values["input_size"]) != 3:
        raise ValueError(f"preprocessing.input_size must be [channels, height, width], got {values['input_size']!r}")
    if values.get("pooling") not in (None, "mean", "cls"):
        raise ValueError(f"preprocessing.pooling must be 'mean' or 'cls', got {values['pooling']!r}")
    return Preprocessing(**values)


def _layer(i: int, table: Any) -> LayerSpec:
    if not isinstance(table, dict) or not isinstance(table.get("name"), str) or not table["name"]:
        raise ValueError(f"layers[{i}] needs a non-empty 'name', got {table!r}")
    dim = table.get("dim")
    if not isinstance(dim, int) or dim < 1:
        raise ValueError(f"layers[{i}] ({table['name']}): 'dim' must be a positive int, got {dim!r}")
    kind = table.get("kind", "conv")
    if kind not in _LAYER_KINDS:
        raise ValueError(f"layers[{i}] ({table['name']}): 'kind' must be one of {_LAYER_KINDS}, got {kind!r}")
    depth = table.get("depth", 1.0)
    if not isinstance(depth, int | float) or not 0 <= depth <= 1:
        raise ValueError(f"layers[{i}] ({table['name']}): 'depth' must be in [0, 1], got {depth!r}")
    return LayerSpec(table["name"], dim, kind, float(depth))


def _source(table: Any) -> SourceTask:
    if not isinstance(table, dict) or not isinstance(table.get("dataset"), str):
        raise ValueError(f"[source] needs a 'dataset' name, got {table!r}")
    known = {f.name for f in fields(SourceTask)}
    unknown = sorted(set(table) - known)
    if unknown:
        raise ValueError(f"[source] has unknown key(s) {unknown}; known: {sorted(known)}")
    return SourceTask(**table)


def _with_extra(spec: BackboneSpec, **extra: Any) -> BackboneSpec:
    return BackboneSpec(**{**{f.name: getattr(spec, f.name) for f in fields(spec)}, "extra": {**spec.extra, **extra}})


def replace_spec(spec: BackboneSpec, **changes: Any) -> BackboneSpec:
    """A copy of ``spec`` with some fields changed (``extra`` is merged, not replaced)."""
    values = {f.name: getattr(spec, f.name) for f in fields(spec)}
    extra = changes.pop("extra", None)
    values.update(changes)
    if extra:
        values["extra"] = {**spec.extra, **extra}
    return BackboneSpec(**values)


def spec_to_dict(spec: BackboneSpec) -> dict[str, Any]:
    """JSON-ready form of a spec (the card keys, plus ``family`` and ``weights_digest``)."""
    data = asdict(spec)
    data["preprocessing"] = {k: list(v) if isinstance(v, tuple) else v for k, v in data["preprocessing"].items()}
    data["layers"] = [dict(layer) for layer in data["layers"]]
    return data


def spec_from_dict(data: dict[str, Any]) -> BackboneSpec:
    """Inverse of :func:`spec_to_dict`."""
    card = {k: v for k, v in data.items() if k in _SPEC_KEYS}
    card.update(data.get("extra") or {})
    if data.get("weights_digest"):
        card["weights_sha256"] = data["weights_digest"]
    spec = spec_from_card(card)
    return spec


def is_sha256(value: Any) -> bool:
    return isinstance(value, str) and bool(_SHA256.match(value))
