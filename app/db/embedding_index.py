"""The embedding cache's index over the ``embeddings`` table: the database half of
:class:`app.embeddings.cache.EmbeddingIndex` (that package knows no database; services pass this in)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db.tables import Embedding
from app.db.upsert import insert_unless_exists


class SqlEmbeddingIndex:
    """Index rows in the caller's session (its transaction is the caller's: nothing is committed here)."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def artifact(self, key: str) -> str | None:
        return self.session.scalar(select(Embedding.artifact_key).where(Embedding.cache_key == key))

    def record(self, entry: dict[str, Any]) -> None:
        """Insert-or-ignore on the unique ``cache_key``, so concurrent processes agree on one row."""
        insert_unless_exists(self.session, Embedding, entry, ["cache_key"])
