"""Shared fixtures: real SQLite and real PostgreSQL databases built by the migrations, and the real app
served over real HTTP (uvicorn on a loopback port) for the HTTP tests.

PostgreSQL: ``TSCOUT_TEST_PG_ADMIN_URL`` (default: the local trust-auth server, database ``test``); each run
creates its own database and drops it at the end. If the server is unreachable the PostgreSQL tests fail
loudly — they are never skipped silently.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from sqlalchemy import create_engine, text

from app.db import migrate
from app.db.base import Base
from app.db.session import make_engine
from app.main import create_app
from app.settings import Settings

REPO = Path(__file__).resolve().parents[1]
PG_ADMIN_URL = os.environ.get("TSCOUT_TEST_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
BACKENDS = ["sqlite", "postgres"]


def _pg_url(dbname: str) -> str:
    base, _, _ = PG_ADMIN_URL.rpartition("/")
    return f"{base}/{dbname}"


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
    url = _pg_url(name)
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


def _wipe(url: str) -> None:
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            for table in reversed(Base.metadata.sorted_tables):
                conn.execute(table.delete())
    finally:
        engine.dispose()


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A migrated database on each backend, emptied after the test."""
    url = request.getfixturevalue(f"_{request.param}_database")
    yield url
    _wipe(url)


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


def _free_port() -> int:
    with contextlib.closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    """The real app under uvicorn on a loopback port, with an httpx client pointed at it."""

    def __init__(self, settings: Settings, *, start_executor: bool | None = True) -> None:
        self.settings = settings
        self.app = create_app(settings, start_executor=start_executor)
        self.port = _free_port()
        config = uvicorn.Config(
            self.app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.url = f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("test server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)

    def client(self, key: str | None = None, **kwargs) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60, **kwargs)

    @property
    def runtime(self):
        return self.app.state.runtime


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
