"""Liveness, readiness, OpenAPI docs and the error shape, through real HTTP."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import text

from app.db.session import make_engine


def test_healthz_and_readyz(client):
    assert client.get("/healthz").json() == {"status": "ok", "checks": {}}
    ready = client.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"] == {"database": "ok", "migrations": "ok", "artifacts": "ok"}


def test_docs_render_and_operation_ids_are_stable(client):
    assert client.get("/docs").status_code == 200
    assert "redoc" in client.get("/redoc").text.lower()
    spec = client.get("/openapi.json").json()
    op_ids = [op["operationId"] for path in spec["paths"].values() for op in path.values()]
    assert len(op_ids) == len(set(op_ids))
    assert "health-ready" in op_ids and "jobs-get" in op_ids
    assert all("-" in op_id for op_id in op_ids)
    assert {t["name"] for t in spec["tags"]} >= {"health", "jobs"}


def test_unknown_route_and_unknown_id_answer_404_in_error_shape(client):
    r = client.get("/v1/nothing-here")
    assert r.status_code == 404 and set(r.json()) == {"error", "detail"}
    r = client.get(f"/v1/jobs/{uuid.uuid4()}")
    assert r.status_code == 404
    assert r.json()["error"] == "not_found" and "not found" in r.json()["detail"]


def test_malformed_id_is_422_naming_the_field(client):
    r = client.get("/v1/jobs/not-a-uuid")
    assert r.status_code == 422
    body = r.json()
    assert body["error"] == "validation_error"
    assert "job_id" in body["detail"]
    assert body["fields"][0]["field"] == "job_id"


def test_readyz_reports_unwritable_artifact_store(live_server_factory, tmp_path):
    blocker = tmp_path / "file-not-dir"
    blocker.write_text("x")
    server = live_server_factory()
    server.runtime.store._local = blocker / "sub"  # a path under a file can never be written
    with server.client() as c:
        r = c.get("/readyz")
    assert r.status_code == 503
    assert r.json()["checks"]["artifacts"].startswith("not writable")


def test_server_behind_head_refuses_to_serve(settings_factory, db_url):
    from app.main import SchemaNotAtHead, create_app

    settings = settings_factory()
    engine = make_engine(db_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = 'behind'"))
    try:
        app = create_app(settings)
        from fastapi.testclient import TestClient

        with pytest.raises(SchemaNotAtHead, match="tscout db upgrade"), TestClient(app):
            pass
    finally:
        from app.db.migrate import head_revision

        with engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = :v"), {"v": head_revision(db_url)})
        engine.dispose()
