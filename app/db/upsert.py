"""Portable upsert keyed by a unique constraint: how tasks write results idempotently.

A unit of work that runs twice (a job re-queued after its worker died, a retried Ray task) updates the
row it wrote the first time instead of adding a duplicate.
"""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.db.base import Base

M = TypeVar("M", bound=Base)


def upsert(session: Session, model: type[M], key: dict[str, Any], values: dict[str, Any]) -> M:
    """Update the row matching ``key`` (the columns of a unique constraint) or insert it."""
    query = select(model).filter_by(**key)
    row = session.scalar(query)
    if row is None:
        try:
            with session.begin_nested():
                row = model(**key, **values)
                session.add(row)
            return row
        except IntegrityError:
            # another worker inserted the same key between our select and insert: update theirs
            row = session.scalar(query)
            if row is None:
                raise
    for name, value in values.items():
        setattr(row, name, value)
    session.flush()
    return row


def upsert_many(session: Session, model: type[M], rows: list[dict[str, Any]], key: list[str]) -> None:
    """:func:`upsert` of many rows in one statement: ``INSERT … ON CONFLICT (key) DO UPDATE`` of every other
    column the rows carry (all rows carry the same columns). A concurrent writer of the same keys cannot
    raise an IntegrityError: the database resolves the conflict row by row (the later write wins)."""
    if not rows:
        return
    columns = set(rows[0])
    if any(set(r) != columns for r in rows):
        raise ValueError("upsert_many: every row must carry the same columns")
    missing = [k for k in key if k not in columns]
    if missing:
        raise ValueError(f"upsert_many: the rows lack the key columns {missing}")
    statement = dialect_insert(session)(model)
    statement = statement.on_conflict_do_update(
        index_elements=key, set_={c: statement.excluded[c] for c in sorted(columns - set(key))})
    session.execute(statement.execution_options(synchronize_session=False), rows)


def dialect_insert(session: Session):
    """The ``insert`` construct of the session's database, which has ``on_conflict_do_nothing`` — SQLite or
    PostgreSQL, the two backends the service runs on."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert

        return insert
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert

        return insert
    raise ValueError(f"database dialect {dialect!r} is not supported: Transfer Scout runs on SQLite and PostgreSQL")


def insert_unless_exists(session: Session, model: type[M], values: dict[str, Any], conflict: list[str]) -> bool:
    """``INSERT … ON CONFLICT (conflict) DO NOTHING``: True if this call inserted the row, False if a row with
    the same ``conflict`` columns already existed — or was committed meanwhile by a concurrent transaction
    (PostgreSQL waits for it; SQLite serialises writers), so a race ends without an IntegrityError."""
    statement = dialect_insert(session)(model).values(**values).on_conflict_do_nothing(index_elements=conflict)
    return session.execute(statement.execution_options(synchronize_session=False)).rowcount == 1
