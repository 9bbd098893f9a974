"""Target datasets: upload, list, read, delete."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, File, Form, Query, Response, UploadFile

from app.api.deps import PrincipalDep, SessionDep, SettingsDep, StoreDep
from app.api.errors import responses_for
from app.api.params import Cursor
from app.api.upload_limit import UploadLimitedRoute
from app.datasets.collected import IngestOptions
from app.enums import Modality, TaskType
from app.schemas.datasets import DatasetCreate, DatasetPage, DatasetRead
from app.services import datasets as service

router = APIRouter(prefix="/v1/datasets", tags=["datasets"], route_class=UploadLimitedRoute)


@router.post(
    "",
    operation_id="datasets-create",
    summary="Upload a target dataset",
    description=(
        "Multipart upload: `file` plus the form fields below. Formats: images in class folders in a .zip, "
        ".tar or .tar.gz (JPEG, PNG, WebP, BMP), optionally with a CSV manifest (`path,label…`); text as CSV "
        "or JSONL; precomputed features as .npz or .parquet (`features` and `labels`/`targets`). Answers 201 "
        "with a new dataset, or 200 with the existing one when this project already holds the same content."
    ),
    status_code=201,
    responses={200: {"model": DatasetRead,
                      "description": "The same content was already uploaded: the existing dataset, with a note "
                                     "when its name differs from the one asked"},
               **responses_for(service.create_dataset, body=True)},
)
def create_dataset(
    file: Annotated[UploadFile, File(description="The dataset file.")],
    form: Annotated[DatasetCreate, Form()],
    response: Response,
    session: SessionDep,
    principal: PrincipalDep,
    settings: SettingsDep,
    store: StoreDep,
) -> DatasetRead:
    options = IngestOptions(
        filename=file.filename or "",
        task_type=form.task_type.value if form.task_type else None,
        label_columns=form.all_label_columns() or None,
        text_column=form.text_column,
        on_bad_file=form.on_bad_file,
    )
    row, created = service.create_dataset(
        session, store, settings, principal.project_id, source=file.file, name=form.name, options=options
    )
    read = DatasetRead.model_validate(row)
    if not created:
        response.status_code = 200
        read.notes = service.duplicate_notes(row, form.name, options.filename)
    return read


@router.get("", operation_id="datasets-list", summary="List datasets, newest first",
            responses=responses_for(service.list_datasets))
def list_datasets(
    session: SessionDep,
    principal: PrincipalDep,
    name: Annotated[str | None, Query(description="Case-insensitive substring of the name.")] = None,
    modality: Modality | None = None,
    task_type: TaskType | None = None,
    limit: Annotated[int, Query(ge=1, le=service.MAX_PAGE)] = 50,
    cursor: Cursor = None,
) -> DatasetPage:
    rows, total, next_cursor = service.list_datasets(
        session, principal.project_id, name=name, modality=modality, task_type=task_type, limit=limit, cursor=cursor
    )
    return DatasetPage(items=[DatasetRead.model_validate(r) for r in rows], total=total, next_cursor=next_cursor)


@router.get("/{dataset_id}", operation_id="datasets-get", summary="A dataset with its statistics and split",
            responses=responses_for(service.get_dataset))
def get_dataset(dataset_id: uuid.UUID, session: SessionDep, principal: PrincipalDep) -> DatasetRead:
    return DatasetRead.model_validate(service.get_dataset(session, dataset_id, principal.project_id))


@router.delete("/{dataset_id}", operation_id="datasets-delete", summary="Delete a dataset and its artifacts",
               status_code=204, responses=responses_for(service.delete_dataset))
def delete_dataset(dataset_id: uuid.UUID, session: SessionDep, principal: PrincipalDep, store: StoreDep) -> Response:
    service.delete_dataset(session, store, dataset_id, principal.project_id)
    return Response(status_code=204)
