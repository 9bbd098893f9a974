"""The schema is built by the migrations, matches the tables, and survives upgrade → downgrade → upgrade."""

from __future__ import annotations

import uuid

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text

from app.db import migrate
from app.db.base import Base
from app.db.session import make_engine
from tests.kits.databases import PG_ADMIN_URL
from tests.kits.databases import pg_url as _pg_url


def _roundtrip(url: str) -> None:
    migrate.upgrade(url)
    engine = make_engine(url)
    try:
        tables = set(inspect(engine).get_table_names())
        assert {t.name for t in Base.metadata.sorted_tables} <= tables
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        assert diff == [], f"tables and migrations disagree: {diff}"
        migrate.downgrade(url, "base")
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
        migrate.upgrade(url)
        assert migrate.current_revision(engine) == migrate.head_revision(url)
    finally:
        engine.dispose()


def test_roundtrip_sqlite(tmp_path):
    _roundtrip(f"sqlite:///{tmp_path / 'rt.db'}")


def test_roundtrip_postgres():
    name = f"tscout_rt_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        _roundtrip(_pg_url(name))
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_revision_files_are_date_prefixed():
    files = sorted(p.name for p in migrate.MIGRATIONS_DIR.joinpath("versions").glob("*.py"))
    assert files and all(f[:10].replace("_", "").isdigit() for f in files), files


def test_constraint_names_follow_the_convention(db_url):
    engine = make_engine(db_url)
    try:
        insp = inspect(engine)
        for table in Base.metadata.sorted_tables:
            for uq in insp.get_unique_constraints(table.name):
                assert uq["name"].startswith(f"uq_{table.name}_"), uq
            for fk in insp.get_foreign_keys(table.name):
                assert fk["name"].startswith(f"fk_{table.name}_"), fk
    finally:
        engine.dispose()
