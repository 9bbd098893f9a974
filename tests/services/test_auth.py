"""API keys and tenancy: 401 without a valid key, another project's rows answer 404."""

from __future__ import annotations

import uuid

import pytest

from app.db.session import make_engine, make_sessionmaker, unit_of_work
from app.db.tables import ApiKey, Job
from app.services.auth import create_key, hash_key


@pytest.fixture
def keys(settings_factory):
    settings = settings_factory(auth="required")
    engine = make_engine(settings.database_url)
    with unit_of_work(make_sessionmaker(engine)) as session:
        row_a, key_a = create_key(session, "alpha", pepper=settings.key_pepper)
        row_b, key_b = create_key(session, "beta", pepper=settings.key_pepper)
        job = Job(project_id=row_a.project_id, kind="ranking")
        session.add(job)
        session.flush()
        job_id = job.id
    engine.dispose()
    return {"a": key_a, "b": key_b, "job": job_id}


def test_keys_are_stored_only_as_hashes(settings_factory, keys):
    settings = settings_factory()
    engine = make_engine(settings.database_url)
    with make_sessionmaker(engine)() as session:
        rows = session.query(ApiKey).all()
    engine.dispose()
    assert len(rows) == 2
    for row in rows:
        assert keys["a"] not in (row.key_hash, row.prefix) and keys["b"] not in (row.key_hash, row.prefix)
    assert {r.key_hash for r in rows} == {
        hash_key(keys["a"], settings.key_pepper),
        hash_key(keys["b"], settings.key_pepper),
    }


@pytest.mark.parametrize("header", [None, "Bearer wrong-key", "Basic abc", "Bearer"])
def test_missing_or_wrong_key_is_401(live_server_factory, keys, header):
    server = live_server_factory(auth="required")
    headers = {"Authorization": header} if header is not None else {}
    with server.client() as c:
        r = c.get(f"/v1/jobs/{keys['job']}", headers=headers)
    assert r.status_code == 401
    assert r.json()["error"] == "unauthorized"


def test_owner_sees_its_job_and_another_project_gets_404(live_server_factory, keys):
    server = live_server_factory(auth="required")
    with server.client(keys["a"]) as a, server.client(keys["b"]) as b:
        mine = a.get(f"/v1/jobs/{keys['job']}")
        assert mine.status_code == 200 and mine.json()["status"] == "PENDING"
        theirs = b.get(f"/v1/jobs/{keys['job']}")
        assert theirs.status_code == 404
        assert theirs.json() == a.get(f"/v1/jobs/{uuid.uuid4()}").json() | {"detail": theirs.json()["detail"]}


def test_revoked_key_is_401(live_server_factory, keys, settings_factory):
    from app.services.auth import revoke_key

    settings = settings_factory()
    engine = make_engine(settings.database_url)
    with unit_of_work(make_sessionmaker(engine)) as session:
        assert revoke_key(session, keys["a"][:12]) == 1
    engine.dispose()
    server = live_server_factory(auth="required")
    with server.client(keys["a"]) as a:
        assert a.get(f"/v1/jobs/{keys['job']}").status_code == 401


def test_auth_disabled_maps_to_the_local_project(live_server_factory, keys):
    server = live_server_factory(auth="disabled")
    with server.client() as c:
        # the job belongs to project "alpha", not the local project
        assert c.get(f"/v1/jobs/{keys['job']}").status_code == 404


def test_production_refuses_placeholder_pepper():
    from pydantic import ValidationError

    from app.settings import Settings

    with pytest.raises(ValidationError, match="TSCOUT_KEY_PEPPER"):
        Settings(env="production")
    assert Settings(env="production", key_pepper="a-real-secret-value").env == "production"
