"""The backbone catalogue: built-in cards plus the project's registered backbones."""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, File, Form, Query, Response, UploadFile, status
from pydantic import ValidationError

from app.api.deps import PrincipalDep, RuntimeDep, SessionDep
from app.api.errors import responses_for
from app.api.guard import check_json_depth
from app.api.params import check_backbone_id, json_body
from app.errors import InvalidInput
from app.schemas.backbones import BackboneCard, BackboneCreate, BackbonePage, BackboneRead, BackboneUpdate
from app.services import backbone_changes as changes
from app.services import backbones as service

router = APIRouter(prefix="/v1/backbones", tags=["backbones"])


@router.get("", operation_id="backbones-list", summary="List built-in and registered backbones",
            response_model=BackbonePage, responses=responses_for(service.list_project_backbones))
def list_backbones(
    session: SessionDep, principal: PrincipalDep, runtime: RuntimeDep,
    family: Annotated[str | None, Query(description="zoo, timm, torchvision, hf, torchscript or export")] = None,
    modality: Annotated[str | None, Query(pattern="^(image|text)$")] = None,
    q: Annotated[str | None, Query(max_length=200, description="Text search over id, description, source.")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(pattern="^[0-9]{1,9}$", description="From a previous page.")] = None,
) -> Response:
    offset = int(cursor or 0)
    items, total = service.list_project_backbones(session, principal.project_id, runtime.catalogue, family_name=family,
                                                  modality=modality, q=q, offset=offset, limit=limit)
    more = offset + len(items) < total
    return json_body(BackbonePage(items=[BackboneRead(**i) for i in items], total=total,
                                  next_cursor=str(offset + len(items)) if more else None))


@router.post("", operation_id="backbones-register", summary="Register a hub backbone by id (found offline)",
             status_code=status.HTTP_201_CREATED, responses=responses_for(service.register_hub, body=True, extra=(InvalidInput,)))
def register_backbone(body: BackboneCreate, session: SessionDep, principal: PrincipalDep,
                      runtime: RuntimeDep) -> BackboneRead:
    check_backbone_id(body.id)
    try:
        return BackboneRead(**service.register_hub(
            session, principal.project_id, runtime, body.id, weights=body.weights, description=body.description,
            licence=body.licence, source=body.source.model_dump() if body.source else None))
    except ValueError as exc:  # a hub library's own validation of the id (names only the id)
        raise InvalidInput(f"id: {exc}") from None


@router.post("/upload", operation_id="backbones-upload",
             summary="Register uploaded weights (safetensors for zoo architectures, or TorchScript)",
             status_code=status.HTTP_201_CREATED, responses=responses_for(service.register_upload, body=True, extra=(InvalidInput,)))
def upload_backbone(
    session: SessionDep, principal: PrincipalDep, runtime: RuntimeDep,
    weights: Annotated[UploadFile, File(description="safetensors, a zoo state dict, or a TorchScript archive")],
    card: Annotated[str, Form(description="BackboneCard as JSON: preprocessing, and for zoo: id + arch")],
) -> BackboneRead:
    check_json_depth(card, runtime.settings.max_json_depth, "card")
    try:
        parsed = BackboneCard.model_validate(json.loads(card))
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"card: not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})") from None
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '(the card)'}: {e['msg']}" for e in exc.errors())
        raise InvalidInput(f"card: {problems}") from None
    return BackboneRead(**service.register_upload(session, principal.project_id, runtime, weights.file,
                                                  parsed.model_dump(), filename=weights.filename))


@router.get("/{backbone_id:backbone_id}", operation_id="backbones-get", summary="A backbone's spec and tap-able layers",
            responses=responses_for(service.get_backbone, validated=False))
def get_backbone(backbone_id: str, session: SessionDep, principal: PrincipalDep, runtime: RuntimeDep) -> BackboneRead:
    return BackboneRead(**service.get_backbone(session, principal.project_id, runtime.catalogue, backbone_id))


@router.patch("/{backbone_id:backbone_id}", operation_id="backbones-update",
              summary="Change a registered backbone's description, licence or source task",
              responses=responses_for(changes.update_backbone, body=True))
def update_backbone(backbone_id: str, body: BackboneUpdate, session: SessionDep, principal: PrincipalDep,
                    runtime: RuntimeDep) -> BackboneRead:
    return BackboneRead(**changes.update_backbone(
        session, principal.project_id, runtime, backbone_id, description=body.description, licence=body.licence,
        source=body.source.model_dump() if body.source else None))


@router.delete("/{backbone_id:backbone_id}", operation_id="backbones-delete", status_code=status.HTTP_204_NO_CONTENT,
               summary="Forget a registered backbone (409 while a pending or running job uses it)",
               responses=responses_for(changes.delete_backbone, validated=False))
def delete_backbone(backbone_id: str, session: SessionDep, principal: PrincipalDep, runtime: RuntimeDep) -> Response:
    changes.delete_backbone(session, principal.project_id, runtime, backbone_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
