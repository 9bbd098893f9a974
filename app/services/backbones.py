r"""The backbone catalogue as a project sees it: built-in cards plus the project's registered backbones,
registration (hub ids described offline; uploaded safetensors / TorchScript weights), and the one way jobs
turn a backbone id into a loaded adapter (:func:`load_adapter`).

``app.backbones`` raises plain :class:`~app.backbones.errors.BackboneError`\ s; this module translates them
once (:func:`translated`) into the HTTP-aware :mod:`app.errors` tree. The built-in catalogue is the
runtime's (read once per process, in the lifespan), never a module-level cache.
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.backbones.base import BackboneAdapter, BackboneId, BackboneSpec, Preprocessing, SourceTask
from app.backbones.cards import replace_spec, spec_from_card, spec_from_dict, spec_to_dict
from app.backbones.catalogue import Catalogue, complete_spec, create_adapter, family, list_backbones
from app.backbones.context import RANDOM_WEIGHTS, LoadContext
from app.backbones.errors import BackboneError, UnknownBackbone, UnsupportedWeights, WeightsUnavailable
from app.backbones.weights import sha256_file, sniff_format
from app.db.tables import Backbone
from app.errors import (
    BackboneUnavailable,
    Conflict,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    UnsupportedMediaType,
    raises,
)
from app.runtime import Runtime
from app.settings import Settings
from app.storage import ArtifactStore, content_key, copy_capped

_CHUNK = 1024 * 1024
_EXT = {"safetensors": ".safetensors", "torchscript": ".pt", "exported": ".pt2", "state_dict": ".pth"}


@contextmanager
def translated() -> Iterator[None]:
    """Map the backbone package's plain errors to the API's error tree (the one place this happens)."""
    try:
        yield
    except UnknownBackbone as exc:
        raise NotFound(str(exc)) from None
    except WeightsUnavailable as exc:
        raise BackboneUnavailable(str(exc)) from None
    except UnsupportedWeights as exc:
        raise UnsupportedMediaType(str(exc)) from None
    except BackboneError as exc:
        raise InvalidInput(str(exc)) from None


def _project_specs(session: Session, project_id: uuid.UUID) -> list[tuple[Backbone, BackboneSpec]]:
    rows = session.scalars(select(Backbone).where(Backbone.project_id == project_id)).all()
    return [(row, spec_from_dict(row.spec)) for row in rows]


#: the response shape of each built-in spec, built once: the catalogue's specs are frozen and live as long as
#: the process, and ``GET /v1/backbones`` (polled by other services) would otherwise rebuild every card's
#: dict on every read. Keyed by the spec object; the entry holds the spec, so its id cannot be reused.
_BUILTIN_READS: dict[int, tuple[BackboneSpec, dict[str, Any]]] = {}
_BUILTIN_READS_MAX = 4096


def to_read(spec: BackboneSpec, *, builtin: bool) -> dict[str, Any]:
    """Response shape of a spec; drops server paths (card folder, local weights locations)."""
    if not builtin:
        return _to_read(spec, builtin=False)
    hit = _BUILTIN_READS.get(id(spec))
    if hit is None or hit[0] is not spec:
        if len(_BUILTIN_READS) >= _BUILTIN_READS_MAX:  # a process that reloads catalogues: start over
            _BUILTIN_READS.clear()
        hit = _BUILTIN_READS[id(spec)] = (spec, _to_read(spec, builtin=True))
    return dict(hit[1])


def _to_read(spec: BackboneSpec, *, builtin: bool) -> dict[str, Any]:
    data = spec_to_dict(spec)
    extra = data.pop("extra")
    data.pop("family", None)
    return {**data, "family": spec.family, "builtin": builtin, "arch": extra.get("arch"),
            "recipe": extra.get("recipe")}


@raises(InvalidInput)
def list_project_backbones(session: Session, project_id: uuid.UUID, catalogue: Catalogue, *,
                           family_name: str | None = None, modality: str | None = None, q: str | None = None,
                           offset: int = 0, limit: int = 50) -> tuple[list[dict[str, Any]], int]:
    own = [spec for _, spec in _project_specs(session, project_id)]
    builtins = catalogue.builtins
    specs = list_backbones([*builtins.values(), *own], family=family_name, modality=modality, q=q)
    page = specs[offset: offset + limit]
    return [to_read(s, builtin=builtins.get(s.id) is s) for s in page], len(specs)


@raises(NotFound)
def get_spec(session: Session, project_id: uuid.UUID, catalogue: Catalogue,
             backbone_id: str) -> tuple[BackboneSpec, Backbone | None]:
    """The project's registered spec for ``backbone_id``, else the built-in one; 404 otherwise."""
    row = session.scalar(select(Backbone).where(Backbone.project_id == project_id, Backbone.backbone_id == backbone_id))
    if row is not None:
        return spec_from_dict(row.spec), row
    with translated():
        return catalogue.get(backbone_id), None


@raises(NotFound)
def get_backbone(session: Session, project_id: uuid.UUID, catalogue: Catalogue, backbone_id: str) -> dict[str, Any]:
    spec, row = get_spec(session, project_id, catalogue, backbone_id)
    return to_read(spec, builtin=row is None)


def _check_free(session: Session, project_id: uuid.UUID, catalogue: Catalogue, backbone_id: str) -> None:
    if backbone_id in catalogue.builtins:
        raise Conflict(f"backbone {backbone_id} is built in; use it directly")
    exists = session.scalar(select(Backbone.id).where(Backbone.project_id == project_id,
                                                       Backbone.backbone_id == backbone_id))
    if exists is not None:
        raise Conflict(f"backbone {backbone_id} is already registered in this project")


def _card_overrides(spec: BackboneSpec, description: str | None, licence: str | None,
                    source: dict[str, Any] | None) -> BackboneSpec:
    changes: dict[str, Any] = {}
    if description:
        changes["description"] = description
    if licence:
        changes["licence"] = licence
    if source:
        changes["source"] = SourceTask(**source)
    return replace_spec(spec, **changes) if changes else spec


def _add_row(session: Session, project_id: uuid.UUID, spec: BackboneSpec, artifact: str | None) -> Backbone:
    stored = dataclasses.replace(spec, extra={k: v for k, v in spec.extra.items() if k != "card_dir"})
    row = Backbone(project_id=project_id, backbone_id=spec.id, family=spec.family, modality=spec.modality,
                   weights_digest=spec.weights_digest, artifact_key=artifact, spec=spec_to_dict(stored))
    session.add(row)
    session.flush()
    return row


@raises(Conflict, InvalidInput, BackboneUnavailable)
def register_hub(session: Session, project_id: uuid.UUID, runtime: Runtime, backbone_id: str, *,
                 weights: str | None = None, description: str | None = None, licence: str | None = None,
                 source: dict[str, Any] | None = None) -> dict[str, Any]:
    """Register a hub id described offline; 422 (``backbone_unavailable``) says where to put missing weights."""
    settings = runtime.settings
    try:
        bid = BackboneId.parse(backbone_id)
    except ValueError as exc:
        raise InvalidInput(str(exc)) from exc
    with translated():
        fam = family(bid.family)
    if fam.describe is None:
        raise InvalidInput(f"{bid.family} backbones are registered by uploading their weights, not by id")
    _check_free(session, project_id, runtime.catalogue, str(bid))
    if weights and weights != RANDOM_WEIGHTS:
        weights = str(_server_weights_path(settings, weights))
    ctx = LoadContext.from_settings(settings)
    module_describe: Any = fam.describe
    with translated():
        spec = module_describe(bid, ctx, weights) if weights else module_describe(bid, ctx)
    spec = _card_overrides(spec, description, licence, source)
    _add_row(session, project_id, spec, None)
    return to_read(spec, builtin=False)


def _server_weights_path(settings: Settings, weights: str) -> Path:
    """A caller may point at weights already on the server only inside the hub cache directory: the API
    must not become a way to probe or load arbitrary server files."""
    root = Path(settings.hub_cache_dir).resolve()
    path = Path(weights)
    path = (path if path.is_absolute() else root / path).resolve()
    if path != root and root not in path.parents:
        raise InvalidInput(f"weights: {weights!r} is outside the server's weights directory "
                           f"(TSCOUT_HUB_CACHE_DIR={settings.hub_cache_dir}); place them there or upload them")
    return path


def _upload_name(filename: str | None) -> str:
    """The caller's file name, reduced to a safe base name, so that messages name the file they sent."""
    base = Path(filename or "").name
    safe = "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in base).lstrip(".")[:100]
    return safe or "weights"


def _receive(stream: BinaryIO, limit: int, folder: Path, filename: str | None = None) -> Path:
    path = folder / _upload_name(filename)
    total = copy_capped(stream, path, limit, too_large=PayloadTooLarge,
                        what="weights upload (the cap is TSCOUT_MAX_WEIGHTS_BYTES)")
    if total == 0:
        raise InvalidInput("the uploaded weights file is empty")
    return path


@raises(Conflict, InvalidInput, PayloadTooLarge, UnsupportedMediaType, BackboneUnavailable)
def register_upload(session: Session, project_id: uuid.UUID, runtime: Runtime, stream: BinaryIO,
                    card: dict[str, Any], filename: str | None = None) -> dict[str, Any]:
    """Register uploaded weights: TorchScript or a torch.export program (id derived from its sha256), or zoo
    safetensors/state dict.

    The bytes are identified by content, never by name; a pickle or anything else is refused unread.
    """
    with translated():
        return _register_upload(session, project_id, runtime, stream, card, filename)


def _register_upload(session: Session, project_id: uuid.UUID, runtime: Runtime, stream: BinaryIO,
                     card: dict[str, Any], filename: str | None) -> dict[str, Any]:
    settings, store = runtime.settings, runtime.store
    pre = Preprocessing(**{k: tuple(v) if isinstance(v, list) else v for k, v in card["preprocessing"].items()})
    with tempfile.TemporaryDirectory(prefix="tscout-upload-") as tmp:
        path = _receive(stream, settings.max_weights_bytes, Path(tmp), filename)
        fmt = sniff_format(path)
        digest = sha256_file(path)
        if fmt in ("torchscript", "exported"):
            if fmt == "torchscript":
                from app.backbones.adapters.torchscript import describe_upload
            else:
                from app.backbones.adapters.exported import describe_upload

            source = SourceTask(**card["source"]) if card.get("source") else None
            spec = describe_upload(path, pre, description=card.get("description"), licence=card.get("licence"),
                                   source=source)
            if card.get("id") not in (None, spec.id):
                raise InvalidInput(f"an uploaded {spec.family} backbone's id is derived from its bytes: {spec.id}, "
                                   f"not {card['id']!r}")
        else:
            if not card.get("id") or not card.get("arch"):
                raise InvalidInput("uploaded safetensors / state-dict weights are zoo backbones: the card needs "
                                   "'id' ('zoo:<arch>.<tag>') and 'arch' ({name, kwargs})")
            spec = spec_from_card({**{k: v for k, v in card.items() if v is not None}, "weights_sha256": digest,
                                   "preprocessing": {k: v for k, v in asdict(pre).items() if v is not None}})
            if spec.family != "zoo":
                raise InvalidInput(f"uploaded state dicts are registered as zoo backbones, got id {spec.id!r}")
            spec = complete_spec(spec)
        _check_free(session, project_id, runtime.catalogue, spec.id)
        create_adapter(spec, LoadContext.from_settings(settings, weights_path=path))  # loads strictly: proves it works
        artifact = store.put_file(content_key("backbones", digest, _EXT[fmt]), path)
    _add_row(session, project_id, spec, artifact)
    return to_read(spec, builtin=False)


def local_weights(settings: Settings, store: ArtifactStore, artifact: str) -> Path:
    """A local file for an uploaded-weights artifact (the store's own file, or a copy in the hub cache)."""
    if store.is_local:
        return store.local_path(artifact)
    dest = Path(settings.hub_cache_dir) / "uploads" / Path(artifact).name
    if not dest.is_file():
        dest.parent.mkdir(parents=True, exist_ok=True)
        part = dest.with_suffix(dest.suffix + f".{uuid.uuid4().hex}.part")
        with store.open(artifact) as src, open(part, "wb") as out:
            shutil.copyfileobj(src, out, _CHUNK)
        part.replace(dest)
    return dest


@raises(NotFound, InvalidInput, BackboneUnavailable)
def load_adapter(session: Session, project_id: uuid.UUID, runtime: Runtime, backbone_id: str, *,
                 device: str | None = None) -> BackboneAdapter:
    """The adapter for a built-in or project backbone (what ranking jobs call)."""
    spec, row = get_spec(session, project_id, runtime.catalogue, backbone_id)
    weights = local_weights(runtime.settings, runtime.store, row.artifact_key) \
        if row is not None and row.artifact_key else None
    with translated():
        return create_adapter(spec, LoadContext.from_settings(runtime.settings, weights_path=weights), device=device)


__all__ = ["get_backbone", "get_spec", "list_project_backbones", "load_adapter", "register_hub",
           "register_upload", "translated"]
