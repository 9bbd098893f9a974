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
