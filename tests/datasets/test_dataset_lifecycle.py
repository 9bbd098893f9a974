"""Tenancy, deletion (refused while a job uses the dataset), and artifact cleanup when a transaction
rolls back after the artifacts were written."""

from __future__ import annotations

import io
import uuid

import pytest
from sqlalchemy import select

from app.datasets.collected import IngestOptions
from app.db.session import make_engine, make_sessionmaker, unit_of_work
from app.db.tables import Dataset, Job
from app.jobs.status import JobStatus
from app.runtime import Runtime
from app.services.auth import create_key, get_or_create_project
from app.services.datasets import create_dataset
from tests.kits.datasets import class_folder_files, dataset_rows, stored_files, upload, zip_bytes

ARCHIVE = zip_bytes(class_folder_files(per_class=3))


@pytest.fixture
def two_keys(settings_factory):
    settings = settings_factory(auth="required")
    engine = make_engine(settings.database_url)
    with unit_of_work(make_sessionmaker(engine)) as session:
        _, key_a = create_key(session, "alpha", pepper=settings.key_pepper)
        _, key_b = create_key(session, "beta", pepper=settings.key_pepper)
    engine.dispose()
    return key_a, key_b


def test_another_projects_dataset_is_404_and_dedupe_is_per_project(live_server_factory, two_keys):
    server = live_server_factory(auth="required")
    with server.client(two_keys[0]) as a, server.client(two_keys[1]) as b:
        mine = upload(a, ARCHIVE, "pets.zip")
        assert mine.status_code == 201
        dataset_id = mine.json()["id"]
        assert b.get(f"/v1/datasets/{dataset_id}").status_code == 404
        assert b.delete(f"/v1/datasets/{dataset_id}").status_code == 404
        assert b.get("/v1/datasets").json()["total"] == 0
        theirs = upload(b, ARCHIVE, "pets.zip")  # same content, other project: its own dataset
        assert theirs.status_code == 201 and theirs.json()["id"] != dataset_id
        assert theirs.json()["digest"] == mine.json()["digest"]
        assert a.get(f"/v1/datasets/{dataset_id}").status_code == 200
    with server.client() as anonymous:
        assert upload(anonymous, ARCHIVE, "x.zip").status_code == 401


def _add_job(server, dataset_id: str, status: JobStatus) -> uuid.UUID:
    with server.runtime.sessions() as session:
        ds = session.get(Dataset, uuid.UUID(dataset_id))
        job = Job(project_id=ds.project_id, dataset_id=ds.id, status=status.value)
        session.add(job)
        session.commit()
        return job.id


def _set_status(server, job_id: uuid.UUID, status: JobStatus) -> None:
    with server.runtime.sessions() as session:
        session.get(Job, job_id).status = status.value
        session.commit()


def test_delete_is_refused_while_a_job_uses_the_dataset(server, client):
    dataset_id = upload(client, ARCHIVE, "pets.zip").json()["id"]
    files = stored_files(server)
    assert files
    job_id = _add_job(server, dataset_id, JobStatus.RUNNING)
    r = client.delete(f"/v1/datasets/{dataset_id}")
    assert r.status_code == 409 and str(job_id) in r.json()["detail"] and "RUNNING" in r.json()["detail"]
    _set_status(server, job_id, JobStatus.PENDING)
    assert client.delete(f"/v1/datasets/{dataset_id}").status_code == 409
    assert stored_files(server) == files and dataset_rows(server) == 1

    _set_status(server, job_id, JobStatus.SUCCEEDED)
    r = client.delete(f"/v1/datasets/{dataset_id}")
    assert r.status_code == 204 and r.content == b""
    assert client.get(f"/v1/datasets/{dataset_id}").status_code == 404
    assert dataset_rows(server) == 0 and stored_files(server) == []
    with server.runtime.sessions() as session:  # the finished job keeps its results, without the link
        assert session.get(Job, job_id).dataset_id is None
    assert client.delete(f"/v1/datasets/{dataset_id}").status_code == 404
    # the same content can come back afterwards, as a new dataset
    assert upload(client, ARCHIVE, "pets.zip").status_code == 201


def test_artifacts_vanish_when_the_transaction_rolls_back(settings_factory):
    runtime = Runtime.from_settings(settings_factory())
    try:
        session = runtime.sessions()
        project = get_or_create_project(session, "rollback")
        row, created = create_dataset(session, runtime.store, runtime.settings, project.id,
                                      source=io.BytesIO(ARCHIVE), name="x", options=IngestOptions("x.zip"))
        key = row.artifact_key
        assert created and runtime.store.exists(f"{key}/manifest.json")
        session.rollback()  # e.g. the request's commit failed
        assert not runtime.store.exists(f"{key}/manifest.json")
        session.close()

        with runtime.sessions() as session:
            project = get_or_create_project(session, "rollback")
            row, created = create_dataset(session, runtime.store, runtime.settings, project.id,
                                          source=io.BytesIO(ARCHIVE), name="x", options=IngestOptions("x.zip"))
            session.commit()
            key, row_id = row.artifact_key, row.id
            assert session.scalars(select(Dataset.id)).all() == [row_id]
            session.rollback()  # a later rollback of the same session must not touch committed artifacts
        assert runtime.store.exists(f"{key}/manifest.json")
    finally:
        runtime.close()
