"""The backbone catalogue: built-in cards from ``models/*.toml``, plus specs registered by callers, and the
one factory :func:`create_adapter` that turns a spec (or an id) into a working adapter.

Adapter families are registered explicitly in :func:`builtin_families` (no import side effects); each
family knows how to load a spec (``create``) and, for hub families, how to describe a bare id offline
(``describe``) when a caller registers it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from app.backbones.base import BackboneAdapter, BackboneId, BackboneSpec
from app.backbones.cards import load_card, replace_spec, spec_from_card, spec_to_dict
from app.backbones.context import LoadContext, random_weights_digest
from app.backbones.errors import InvalidBackbone, UnknownBackbone, WeightsUnavailable

__all__ = [
    "AdapterFamily",
    "Catalogue",
    "LoadContext",
    "builtin_families",
    "create_adapter",
    "describe_backbone",
    "list_backbones",
    "load_card",
    "random_weights_digest",
    "spec_from_card",
    "spec_to_dict",
]


@dataclass(frozen=True)
class AdapterFamily:
    name: str
    create: Callable[[BackboneSpec, LoadContext], BackboneAdapter]
    describe: Callable[[BackboneId, LoadContext], BackboneSpec] | None = None
    doc: str = ""


def _zoo_create(spec: BackboneSpec, ctx: LoadContext) -> BackboneAdapter:
    from app.backbones.adapters.zoo import ZooAdapter, zoo_weights_path

    if ctx.weights_path is not None:
        return ZooAdapter(spec, ctx.weights_path)
    return ZooAdapter(spec, zoo_weights_path(spec, ctx))


def _timm_family() -> AdapterFamily:
    from app.backbones.adapters import timm_adapter

    return AdapterFamily("timm", timm_adapter.create, timm_adapter.describe, "any timm model name")


def _torchvision_family() -> AdapterFamily:
    from app.backbones.adapters import torchvision_adapter

    return AdapterFamily("torchvision", torchvision_adapter.create, torchvision_adapter.describe,
                         "torchvision models API + weights enums")


def _hf_family() -> AdapterFamily:
    from app.backbones.adapters import hf

    return AdapterFamily("hf", hf.create, hf.describe, "transformers AutoModel, vision and text")


def _torchscript_family() -> AdapterFamily:
    from app.backbones.adapters import torchscript

    return AdapterFamily("torchscript", torchscript.create, None, "an uploaded scripted module")


def _export_family() -> AdapterFamily:
    from app.backbones.adapters import exported

    return AdapterFamily("export", exported.create, None, "an uploaded torch.export program (.pt2)")


_FAMILY_LOADERS: dict[str, Callable[[], AdapterFamily]] = {
    "zoo": lambda: AdapterFamily("zoo", _zoo_create, None, "our own architectures + safetensors"),
    "timm": _timm_family,
    "torchvision": _torchvision_family,
    "hf": _hf_family,
    "torchscript": _torchscript_family,
    "export": _export_family,
}


def builtin_families() -> dict[str, AdapterFamily]:
    """Every adapter family, registered explicitly (each family's heavy imports happen on first use)."""
    return {name: family(name) for name in _FAMILY_LOADERS}


def family(name: str) -> AdapterFamily:
    """One registered family (loading only that family's adapter module)."""
    if name not in _FAMILY_LOADERS:
        raise InvalidBackbone(f"unknown backbone family {name!r}; known: {sorted(_FAMILY_LOADERS)}")
    return _FAMILY_LOADERS[name]()  # cheap: the adapter module is imported once by Python itself


@dataclass
class Catalogue:
    """Built-in cards (read once from ``models_dir``) and a lookup over them plus caller specs."""

    models_dir: Path
    _builtins: dict[str, BackboneSpec] | None = field(default=None, repr=False)

    @property
    def builtins(self) -> dict[str, BackboneSpec]:
        if self._builtins is None:
            self._builtins = load_builtin_cards(self.models_dir)
        return self._builtins

    def get(self, backbone_id: str, extra: Iterable[BackboneSpec] = ()) -> BackboneSpec:
        for spec in extra:
            if spec.id == backbone_id:
                return spec
        if backbone_id in self.builtins:
            return self.builtins[backbone_id]
        raise UnknownBackbone(f"backbone {backbone_id!r} is neither built in nor registered in this project")

    def list(self, extra: Iterable[BackboneSpec] = (), **filters) -> list[BackboneSpec]:
        return list_backbones([*self.builtins.values(), *extra], **filters)


def load_builtin_cards(models_dir: Path) -> dict[str, BackboneSpec]:
    """Every ``*.toml`` card in ``models_dir`` (a missing folder is an empty catalogue)."""
    specs: dict[str, BackboneSpec] = {}
    if not Path(models_dir).is_dir():
        return specs
    for path in sorted(Path(models_dir).glob("*.toml")):
        spec = complete_spec(load_card(path))
        if spec.id in specs:
            raise ValueError(f"backbone card {path}: id {spec.id} is already defined by another card")
        specs[spec.id] = replace_spec(spec, extra={"builtin": True})
    return specs


def complete_spec(spec: BackboneSpec) -> BackboneSpec:
    """Fill what a card may leave out: zoo layers from the architecture, the digest of random weights."""
    if spec.family == "zoo" and not spec.layers:
        from app.backbones.adapters.zoo import zoo_layers

        spec = replace_spec(spec, layers=zoo_layers(spec))
    if spec.weights_digest is None and spec.extra.get("weights") == "random":
        spec = replace_spec(spec, weights_digest=random_weights_digest(spec.id))
    return spec


def list_backbones(specs: Iterable[BackboneSpec], *, family: str | None = None, modality: str | None = None,
                   q: str | None = None) -> list[BackboneSpec]:
    """Filter specs by family, modality and a case-insensitive text search over id, description and source."""
    needle = (q or "").strip().lower()
    out = []
    for spec in specs:
        if family and spec.family != family:
            continue
        if modality and spec.modality != modality:
            continue
        if needle:
            hay = " ".join([spec.id, spec.description, spec.licence,
                            spec.source.dataset if spec.source else "", spec.source.description if spec.source else ""])
            if needle not in hay.lower():
                continue
        out.append(spec)
    return sorted(out, key=lambda s: s.id)


def describe_backbone(backbone_id: str, ctx: LoadContext) -> BackboneSpec:
    """A spec for a bare hub id (``timm:…``, ``torchvision:…``, ``hf:…``), built offline.

    Raises :class:`WeightsUnavailable` (422) saying where to place the weights when they are not local.
    """
    try:
        bid = BackboneId.parse(backbone_id)
    except ValueError as exc:
        raise InvalidBackbone(str(exc)) from exc
    fam = family(bid.family)
    if fam.describe is None:
        raise InvalidBackbone(
            f"{bid.family} backbones cannot be registered by id alone; upload their weights with a card"
        )
    return fam.describe(bid, ctx)


def create_adapter(spec_or_id: BackboneSpec | str, ctx: LoadContext | None = None, *,
                   catalogue: Catalogue | None = None, device: str | None = None) -> BackboneAdapter:
    """The one factory: a spec (or an id looked up in ``catalogue``, else described offline) → adapter."""
    ctx = ctx or LoadContext()
    if isinstance(spec_or_id, str):
        try:
            spec = (catalogue or Catalogue(ctx.models_dir)).get(spec_or_id)
        except UnknownBackbone:
            spec = describe_backbone(spec_or_id, ctx)
    elif isinstance(spec_or_id, BackboneSpec):
        spec = spec_or_id
    else:
        raise InvalidBackbone(f"create_adapter needs a BackboneSpec or an id, got {type(spec_or_id).__name__}")
    spec = complete_spec(spec)
    try:
        adapter = family(spec.family).create(spec, ctx)
    except (WeightsUnavailable, InvalidBackbone, UnknownBackbone):
        raise
    except (ValueError, TypeError, RuntimeError, KeyError) as exc:
        raise InvalidBackbone(f"backbone {spec.id} cannot be built: {exc}") from exc
    return adapter.to(device) if device else adapter
