"""Which database errors are an outage (503, re-queue without spending an attempt) and which are bugs or
caller mistakes — and the pool sizing that keeps request bursts from deadlocking."""

from __future__ import annotations

import sqlite3

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy import exc as sa_exc

from app.db.session import is_database_outage, make_engine
from app.settings import Settings


def _operational(orig: Exception) -> sa_exc.OperationalError:
    return sa_exc.OperationalError("SELECT 1", {}, orig)


def test_transient_errors_are_outages():
    import psycopg

    assert is_database_outage(_operational(sqlite3.OperationalError("database is locked")))
    assert is_database_outage(_operational(psycopg.OperationalError("connection refused")))
    assert is_database_outage(sa_exc.TimeoutError("QueuePool limit reached"))
    wrapped = RuntimeError("a stage failed")
    wrapped.__cause__ = _operational(psycopg.OperationalError("server closed the connection"))
    assert is_database_outage(wrapped)


def test_bugs_and_bad_input_are_not_outages():
    assert not is_database_outage(_operational(sqlite3.OperationalError("no such table: jobs")))
    assert not is_database_outage(sa_exc.IntegrityError("INSERT", {}, sqlite3.IntegrityError("UNIQUE")))
    assert not is_database_outage(ValueError("nothing to do with a database"))


def test_a_refused_connection_is_an_outage():
    engine = create_engine("postgresql+psycopg://postgres@127.0.0.1:1/none", pool_pre_ping=True)
    with pytest.raises(sa_exc.OperationalError) as caught, engine.connect() as conn:
        conn.execute(text("SELECT 1"))
    assert is_database_outage(caught.value)


def test_the_pool_holds_every_admitted_request_and_thread(tmp_path):
    settings = Settings(api_max_concurrent_requests=16, api_threads=32, worker_threads=2)
    assert settings.db_pool_capacity >= 16 + 32 + 3 * 2
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}", pool_capacity=settings.db_pool_capacity, pool_timeout=3)
    assert engine.pool.size() + engine.pool._max_overflow == settings.db_pool_capacity
    with pytest.raises(ValueError):
        make_engine("sqlite://", pool_capacity=0)
