"""Changing what a project registered: PATCH (card fields) and DELETE of a registered backbone, both
refused (409) for built-in backbones and while a pending or running job of the project ranks it.
Registration and lookup live in :mod:`app.services.backbones`."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from app.backbones.base import SourceTask
from app.backbones.cards import replace_spec, spec_from_dict, spec_to_dict
from app.backbones.catalogue import Catalogue
from app.db.tables import Backbone, Job
from app.errors import Conflict, InvalidInput, NotFound, raises
from app.jobs.status import JobStatus
from app.runtime import Runtime
from app.services.backbones import to_read

_ACTIVE = (JobStatus.PENDING.value, JobStatus.RUNNING.value)


def _registered_row(session: Session, project_id: uuid.UUID, catalogue: Catalogue, backbone_id: str) -> Backbone:
    row = session.scalar(select(Backbone).where(Backbone.project_id == project_id,
                                                Backbone.backbone_id == backbone_id))
    if row is not None:
        return row
    if backbone_id in catalogue.builtins:
        raise Conflict(f"backbone {backbone_id} is built in (models/*.toml); only registered backbones change")
    raise NotFound(f"backbone {backbone_id!r} is not registered in this project")


def _check_unused(session: Session, project_id: uuid.UUID, backbone_id: str) -> None:
    """409 while a pending or running job of the project ranks ``backbone_id`` or uses it as its reference."""
    jobs = session.execute(select(Job.id, Job.status, Job.request).where(
        Job.project_id == project_id, Job.kind == "ranking", Job.status.in_(_ACTIVE)).with_for_update())
    for job_id, job_status, request in jobs:
        resolved = (request or {}).get("resolved") or {}
        if backbone_id in (resolved.get("backbones") or []) or backbone_id == resolved.get("reference_backbone"):
            raise Conflict(f"backbone {backbone_id} is in use by job {job_id} ({job_status}); cancel the job or "
                           "wait for it to finish")


@raises(NotFound, Conflict)
def delete_backbone(session: Session, project_id: uuid.UUID, runtime: Runtime, backbone_id: str) -> None:
    """Forget a registered backbone (finished jobs keep their rows); 409 for built-ins and while a job uses it.

    Uploaded weights stay in the artifact store: they are content-addressed and may back another project's
    registration of the same bytes.
    """
    row = _registered_row(session, project_id, runtime.catalogue, backbone_id)
    _check_unused(session, project_id, backbone_id)
    session.execute(delete(Backbone).where(Backbone.id == row.id))
    session.flush()


@raises(NotFound, Conflict, InvalidInput)
def update_backbone(session: Session, project_id: uuid.UUID, runtime: Runtime, backbone_id: str, *,
                    description: str | None = None, licence: str | None = None,
                    source: dict[str, Any] | None = None) -> dict[str, Any]:
    """Change a registered backbone's card (description, licence, source task); 409 while a job uses it.

    Weights, layers and preprocessing are what the id stands for: to change them, delete and register again.
    """
    if description is None and licence is None and source is None:
        raise InvalidInput("nothing to change: send at least one of description, licence, source")
    row = _registered_row(session, project_id, runtime.catalogue, backbone_id)
    _check_unused(session, project_id, backbone_id)
    spec = spec_from_dict(row.spec)
    changes: dict[str, Any] = {}
    if description is not None:
        changes["description"] = description
    if licence is not None:
        changes["licence"] = licence
    if source is not None:
        changes["source"] = SourceTask(**source)
    spec = replace_spec(spec, **changes)
    row.spec = spec_to_dict(spec)
    session.flush()
    return to_read(spec, builtin=False)


__all__ = ["delete_backbone", "update_backbone"]
