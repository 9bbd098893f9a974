"""Target datasets: create (stream → validate → dedupe → store), list, get, delete.

Invariants: a refused or interrupted upload leaves no artifact and no row. The artifacts of a new dataset
are written under ``datasets/<id>/`` only after the whole upload validated and only if its content digest
is new in the project; if anything fails after that — including the commit the request makes after this
service returns — the prefix is deleted (see :func:`_delete_unless_committed`). Deleting a dataset
removes its artifacts only once the row's deletion is committed.
"""

from __future__ import annotations

import tempfile
import uuid
from pathlib import Path
from typing import BinaryIO

from sqlalchemy import event as sa_event
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.datasets.archive import Limits
from app.datasets.collected import IngestOptions
from app.datasets.errors import DatasetRejected, LimitExceeded, UnknownFormat
from app.datasets.ingest import prepare
from app.db.pagination import keyset, split_page
from app.db.tables import Dataset, Job
from app.enums import Modality, TaskType
from app.errors import (
    Conflict,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    Unavailable,
    UnsupportedMediaType,
    raises,
)
from app.jobs.status import JobStatus
from app.settings import Settings
from app.storage import ArtifactStore, copy_capped

MAX_PAGE = 200
_ACTIVE = (JobStatus.PENDING.value, JobStatus.RUNNING.value)


def _copy_capped(source: BinaryIO, dest: Path, cap: int) -> int:
    return copy_capped(source, dest, cap, too_large=PayloadTooLarge,
                       what="upload (the cap is TSCOUT_MAX_UPLOAD_BYTES)")


def _delete_unless_committed(session: Session, store: ArtifactStore, prefix: str) -> None:
    """Delete ``prefix`` if this session's transaction rolls back instead of committing."""
    state = {"settled": False}

    def committed(_: Session) -> None:
        state["settled"] = True

    def rolled_back(_: Session) -> None:
        if not state["settled"]:
            state["settled"] = True
            store.delete_prefix(prefix)

    sa_event.listen(session, "after_commit", committed, once=True)
    sa_event.listen(session, "after_rollback", rolled_back, once=True)


def _delete_after_commit(session: Session, store: ArtifactStore, prefix: str) -> None:
    sa_event.listen(session, "after_commit", lambda _: store.delete_prefix(prefix), once=True)


@raises(Conflict, InvalidInput, PayloadTooLarge, UnsupportedMediaType, Unavailable)
def create_dataset(session: Session, store: ArtifactStore, settings: Settings, project_id: uuid.UUID, *,
                   source: BinaryIO, name: str | None, options: IngestOptions) -> tuple[Dataset, bool]:
    """Ingest an upload. Returns ``(dataset, created)``; ``created`` is False when the project already
    holds a dataset with the same content digest (that dataset is returned, nothing is stored)."""
    name = (name or options.filename or "").strip()
    if not name or len(name) > 300:
        raise InvalidInput(f"name must be 1–300 characters, got {name!r}")
    with tempfile.TemporaryDirectory(prefix="tscout-upload-") as tmp:
        workdir = Path(tmp)
        _copy_capped(source, workdir / "upload", settings.max_upload_bytes)
        try:
            with open(workdir / "upload", "rb") as fh:
                prepared = prepare(fh, options, Limits.from_settings(settings), split_seed=settings.split_seed,
                                   val_fraction=settings.val_fraction, workdir=workdir)
        except UnknownFormat as exc:
            raise UnsupportedMediaType(str(exc)) from None
        except LimitExceeded as exc:
            raise PayloadTooLarge(str(exc)) from None
        except DatasetRejected as exc:
            raise InvalidInput(str(exc)) from None
        try:
            existing = session.scalar(
                select(Dataset).where(Dataset.project_id == project_id, Dataset.digest == prepared.digest)
            )
            if existing is not None:
                return existing, False
            dataset_id = uuid.uuid4()
            prefix = f"datasets/{dataset_id}"
            try:
                try:
                    size = prepared.write(store, prefix)
                except OSError as exc:  # a read-only or full store: named by its reason, never its path
                    raise Unavailable(f"the artifact store cannot be written ({exc.strerror or type(exc).__name__}); "
                                      "retry later") from None
                row = Dataset(
                    id=dataset_id, project_id=project_id, name=name, modality=prepared.manifest.modality,
                    task_type=prepared.manifest.task_type, format=prepared.format, digest=prepared.digest,
                    artifact_key=prefix, num_samples=prepared.manifest.num_samples,
                    num_classes=prepared.num_classes, size_bytes=size, stats=prepared.stats,
                    split=prepared.split_info,
                )
                session.add(row)
                session.flush()
            except IntegrityError:
                store.delete_prefix(prefix)
                raise Conflict(
                    "a dataset with the same content was uploaded to this project at the same moment; retry "
                    "to get it"
                ) from None
            except BaseException:
                store.delete_prefix(prefix)
                raise
            _delete_unless_committed(session, store, prefix)
            return row, True
        finally:
            prepared.close()


def duplicate_notes(row: Dataset, requested_name: str | None, filename: str) -> list[str]:
    """What a caller should know when an upload matched an existing dataset: the name it asked for (or its
    file's name) was not applied, because the content already is dataset ``row``."""
    asked = (requested_name or filename or "").strip()
    if not asked or asked == row.name:
        return []
    return [f"this content is already dataset {row.id} named {row.name!r} (uploaded {row.created_at:%Y-%m-%d %H:%M} "
            f"UTC); it keeps that name, so {asked!r} was not applied"]


@raises(NotFound)
def get_dataset(session: Session, dataset_id: uuid.UUID, project_id: uuid.UUID) -> Dataset:
    """The dataset if it belongs to ``project_id``; another project's dataset is 'not found'."""
    row = session.get(Dataset, dataset_id)
    if row is None or row.project_id != project_id:
        raise NotFound(f"dataset {dataset_id} not found")
    return row


@raises(InvalidInput)
def list_datasets(session: Session, project_id: uuid.UUID, *, name: str | None = None,
                  modality: Modality | None = None, task_type: TaskType | None = None, limit: int = 50,
                  cursor: str | None = None) -> tuple[list[Dataset], int, str | None]:
    """One page, newest first: ``(items, total matching, next cursor)``. ``name`` matches a substring,
    case-insensitively."""
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidInput(f"limit must be between 1 and {MAX_PAGE}, got {limit}")
    conditions = [Dataset.project_id == project_id]
    if name:
        escaped = name.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        conditions.append(func.lower(Dataset.name).like(f"%{escaped}%", escape="\\"))
    if modality is not None:
        conditions.append(Dataset.modality == Modality(modality).value)
    if task_type is not None:
        conditions.append(Dataset.task_type == TaskType(task_type).value)
    total = session.scalar(select(func.count()).select_from(Dataset).where(*conditions)) or 0
    query = keyset(select(Dataset).where(*conditions), Dataset, cursor, limit=limit)
    rows, next_cursor = split_page(list(session.scalars(query)), limit)
    return rows, total, next_cursor


def _ranking_feature_set(session: Session, row: Dataset):
    """A pending or running ranking of the project that ranks ``row`` as a feature set, or ``None``."""
    if row.modality != Modality.features.value:
        return None
    candidate = f"features:{row.id}"
    jobs = session.execute(select(Job.id, Job.status, Job.request).where(
        Job.project_id == row.project_id, Job.kind == "ranking", Job.status.in_(_ACTIVE)))
    for job in jobs:
        if candidate in (((job.request or {}).get("resolved") or {}).get("backbones") or []):
            return job
    return None


@raises(NotFound, Conflict)
def delete_dataset(session: Session, store: ArtifactStore, dataset_id: uuid.UUID, project_id: uuid.UUID) -> None:
    """Delete the row, and its artifacts once that is committed. Refused (409) while a pending or running
    job uses the dataset; finished jobs keep their results and lose the link."""
    row = get_dataset(session, dataset_id, project_id)
    active = session.execute(
        select(Job.id, Job.status).where(Job.dataset_id == row.id, Job.status.in_(_ACTIVE)).limit(1)
    ).first()
    if active is None:
        active = _ranking_feature_set(session, row)
    if active is not None:
        raise Conflict(
            f"dataset {dataset_id} is in use by job {active.id} ({active.status}); cancel the job or wait "
            "for it to finish"
        )
    session.execute(
        update(Job)
        .where(Job.dataset_id == row.id, Job.status.not_in(_ACTIVE))
        .values(dataset_id=None)
        .execution_options(synchronize_session=False)
    )
    prefix = row.artifact_key
    session.delete(row)
    try:
        session.flush()
    except IntegrityError:
        raise Conflict(f"dataset {dataset_id} was just taken up by a new job; retry later") from None
    _delete_after_commit(session, store, prefix)
