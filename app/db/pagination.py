"""Keyset (cursor) pagination over ``(created_at, id)``: stable under inserts, no OFFSET scans."""

from __future__ import annotations

import base64
import binascii
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, and_, or_

from app.errors import InvalidInput


def encode_cursor(created_at: datetime, row_id: uuid.UUID) -> str:
    return base64.urlsafe_b64encode(f"{created_at.isoformat()}|{row_id}".encode()).decode()


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    """The (created_at, id) a cursor points after; a timestamp without a timezone is read as UTC (cursors this
    API returns always carry one), anything that is not a cursor is 422."""
    try:
        stamp, _, raw_id = base64.urlsafe_b64decode(cursor.encode()).decode().partition("|")
        when = datetime.fromisoformat(stamp)
        return (when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)), uuid.UUID(raw_id)
    except (ValueError, UnicodeDecodeError, binascii.Error):
        shown = cursor if len(cursor) <= 80 else f"{cursor[:80]}…"
        raise InvalidInput(f"cursor {shown!r} is not a cursor returned by this API") from None


def keyset(query: Select, model: Any, cursor: str | None, *, descending: bool = True, limit: int) -> Select:
    """``query`` ordered by (created_at, id), starting after ``cursor``, fetching one extra row to tell
    whether another page follows."""
    if cursor:
        stamp, last_id = decode_cursor(cursor)
        if descending:
            query = query.where(or_(model.created_at < stamp, and_(model.created_at == stamp, model.id < last_id)))
        else:
            query = query.where(or_(model.created_at > stamp, and_(model.created_at == stamp, model.id > last_id)))
    order = (model.created_at.desc(), model.id.desc()) if descending else (model.created_at, model.id)
    return query.order_by(*order).limit(limit + 1)


def split_page(rows: list[Any], limit: int) -> tuple[list[Any], str | None]:
    """The page's rows and the cursor of the next page (None on the last page)."""
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (encode_cursor(rows[-1].created_at, rows[-1].id) if more and rows else None)
