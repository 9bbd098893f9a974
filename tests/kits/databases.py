"""The test databases: the PostgreSQL test server (``TSCOUT_TEST_PG_ADMIN_URL``, default the local trust-auth
server, database ``test``) and emptying every table between tests."""

from __future__ import annotations

import os

from app.db.base import Base
from app.db.session import make_engine

PG_ADMIN_URL = os.environ.get("TSCOUT_TEST_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def pg_url(dbname: str) -> str:
    base, _, _ = PG_ADMIN_URL.rpartition("/")
    return f"{base}/{dbname}"


def wipe(url: str) -> None:
    """Delete every row of every table (children first)."""
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            for table in reversed(Base.metadata.sorted_tables):
                conn.execute(table.delete())
    finally:
        engine.dispose()
