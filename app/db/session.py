"""Engine and session factories. Services only flush; the request or task commits or rolls back."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker


def make_engine(url: str, *, pool_capacity: int | None = None, pool_timeout: float = 10.0) -> Engine:
    """Create the engine; a SQLite file gets its folder, foreign keys and WAL for concurrent readers.

    ``pool_capacity`` bounds the connections held at once (``Settings.db_pool_capacity`` for a serving
    process); a checkout that waits past ``pool_timeout`` seconds raises ``sqlalchemy.exc.TimeoutError``,
    which the API answers with 503.
    """
    if pool_capacity is not None and pool_capacity < 1:
        raise ValueError(f"pool_capacity must be >= 1, got {pool_capacity}")
    if pool_timeout <= 0:
        raise ValueError(f"pool_timeout must be > 0, got {pool_timeout}")
    pool: dict = {}
    if pool_capacity is not None:
        # a few connections stay open; the rest are opened on demand and closed when returned
        pool = {"pool_size": min(pool_capacity, 8), "max_overflow": max(pool_capacity - 8, 0)}
    pool["pool_timeout"] = pool_timeout
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        memory = parsed.database in (None, "", ":memory:")
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30},
                               **({} if memory else pool))

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record) -> None:  # pragma: no cover - trivial
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True, **pool)


_SQLITE_TRANSIENT = ("database is locked", "unable to open database", "disk i/o error")


def is_database_outage(exc: BaseException) -> bool:
    """True if ``exc`` (or an exception it was raised from) says the database cannot be reached or used right
    now — a lost or refused connection, a pool timeout, a locked SQLite file — as opposed to a bad statement
    or a constraint, which retrying would not fix."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, sa_exc.TimeoutError | sa_exc.DisconnectionError):
            return True
        if isinstance(current, sa_exc.DBAPIError) and current.connection_invalidated:
            return True
        if isinstance(current, sa_exc.OperationalError | sa_exc.InterfaceError):
            orig = current.orig
            module = type(orig).__module__ if orig is not None else ""
            if module.startswith("psycopg"):
                return True  # psycopg's OperationalError/InterfaceError: the server or the connection is gone
            if module.startswith("sqlite3") and any(m in str(orig).lower() for m in _SQLITE_TRANSIENT):
                return True
        current = current.__cause__ or current.__context__
    return False


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def after_commit(session: Session, callback: Callable[[], None]) -> None:
    """Run ``callback`` once the session's transaction has committed (e.g. hand a job to the executor:
    it must never see an id whose row is not yet visible)."""
    session.info.setdefault("after_commit", []).append(callback)


def run_after_commit(session: Session) -> None:
    callbacks = session.info.pop("after_commit", [])
    for callback in callbacks:
        callback()


@contextmanager
def unit_of_work(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A transaction owned by the caller: commit on success, roll back on any error; callbacks registered
    with :func:`after_commit` run after a successful commit."""
    session = factory()
    try:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            session.info.pop("after_commit", None)
            raise
        run_after_commit(session)
    finally:
        session.close()
