"""Shared fixtures: real SQLite and real PostgreSQL databases built by the migrations, and the real app
served over real HTTP (uvicorn on a loopback port) for the HTTP tests. The builders behind them live in
``tests/kits`` (``databases``, ``servers``); tests import kits, never this module.

PostgreSQL: ``TSCOUT_TEST_PG_ADMIN_URL`` (default: the local trust-auth server, database ``test``); each run
creates its own database and drops it at the end. If the server is unreachable the PostgreSQL tests fail
loudly — they are never skipped silently.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from app.db import migrate
from app.settings import Settings
from tests.kits import REPO
from tests.kits.databases import PG_ADMIN_URL, pg_url, wipe
from tests.kits.servers import LiveServer

BACKENDS = ["sqlite", "postgres"]

# score units run on threads in the suite, so that a test may patch the code they call in this process;
# tests/execution/test_unit_processes.py runs them in worker processes (the service's default)
os.environ.setdefault("TSCOUT_UNIT_PROCESSES", "0")


@pytest.fixture(scope="session")
def _postgres_database() -> Iterator[str]:
    """A fresh PostgreSQL database for this test run, migrated to head; dropped at the end."""
    name = f"tscout_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # fail loudly: the PostgreSQL half must never be skipped
        pytest.fail(
            f"PostgreSQL is unreachable at {PG_ADMIN_URL} ({type(exc).__name__}: {exc}); "
            "start it or set TSCOUT_TEST_PG_ADMIN_URL",
            pytrace=False,
        )
    url = pg_url(name)
    try:
        migrate.upgrade(url)
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def _sqlite_database(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'tscout.db'}"
    migrate.upgrade(url)
    return url


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A migrated database on each backend, emptied after the test."""
    url = request.getfixturevalue(f"_{request.param}_database")
    yield url
    wipe(url)


@pytest.fixture
def settings_factory(db_url: str, tmp_path: Path) -> Callable[..., Settings]:
    def make(**overrides) -> Settings:
        values = dict(
            database_url=db_url,
            storage_url=str(tmp_path / "artifacts"),
            models_dir=REPO / "models",
            hub_cache_dir=tmp_path / "hub",
        )
        values.update(overrides)
        return Settings(**values)

    return make


@pytest.fixture
def live_server_factory(settings_factory) -> Iterator[Callable[..., LiveServer]]:
    servers: list[LiveServer] = []

    def start(start_executor: bool = True, **overrides) -> LiveServer:
        server = LiveServer(settings_factory(**overrides), start_executor=start_executor).__enter__()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.__exit__(None, None, None)


@pytest.fixture
def server(live_server_factory) -> LiveServer:
    """The real app with default (embedded) settings on the test database."""
    return live_server_factory()


@pytest.fixture
def client(server: LiveServer) -> Iterator[httpx.Client]:
    with server.client() as c:
        yield c
