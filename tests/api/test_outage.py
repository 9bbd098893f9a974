"""A database outage answers ``503 unavailable`` with ``Retry-After`` on every database-backed endpoint, and
the API recovers by itself when the database is back. Runs on a private PostgreSQL cluster that the test
stops and starts (never the shared server)."""

from __future__ import annotations

import re
import uuid

import pytest

from app.db import migrate
from app.settings import Settings
from tests.kits import REPO
from tests.kits.databases import PrivatePostgres
from tests.kits.servers import LiveServer

pytestmark = pytest.mark.postgres

NO_DATABASE = {"/healthz", "/v1/metrics", "/docs", "/redoc", "/openapi.json"}


@pytest.fixture
def cluster():
    with PrivatePostgres() as pg:
        migrate.upgrade(pg.url)
        yield pg


def _calls(spec: dict) -> list[tuple[str, str]]:
    calls = []
    for path, ops in spec["paths"].items():
        concrete = re.sub(r"\{name\}", "ranking", path)
        concrete = re.sub(r"\{backbone_id(:path)?\}", "zoo:cnn_small.digits_all", concrete)
        concrete = re.sub(r"\{[a-z_]+\}", str(uuid.uuid4()), concrete)
        for method in ops:
            calls.append((method.upper(), concrete))
    return calls


def test_every_database_endpoint_answers_503_with_retry_after_then_recovers(cluster, tmp_path):
    settings = Settings(database_url=cluster.url, storage_url=str(tmp_path / "artifacts"),
                        models_dir=REPO / "models", hub_cache_dir=tmp_path / "hub", retry_after_seconds=7)
    with LiveServer(settings, start_executor=False) as server, server.client() as c:
        spec = c.get("/openapi.json").json()
        assert c.get("/v1/datasets").status_code == 200
        cluster.stop()
        checked = 0
        for method, path in _calls(spec):
            if path in NO_DATABASE:
                continue
            kwargs = {"json": {}} if method == "POST" else {}
            r = c.request(method, path, **kwargs)
            checked += 1
            if path == "/readyz":
                assert r.status_code == 503 and r.json()["checks"]["database"].startswith("unreachable")
                continue
            assert r.status_code == 503, (method, path, r.status_code, r.text)
            assert r.json()["error"] == "unavailable", r.text
            assert r.headers["retry-after"] == "7"
            assert "Traceback" not in r.text and "psycopg" not in r.text
            documented = spec["paths"]
            assert any("503" in op.get("responses", {}) for op in documented[next(
                p for p in documented if re.fullmatch(re.sub(r"\{[^}]+\}", ".+", p), path))].values())
        assert checked >= 12
        cluster.start()
        assert c.get("/v1/datasets").status_code == 200  # recovered without a restart
        assert c.get("/readyz").status_code == 200
